# Two commands: `make run` and `make test`. Both set everything up first (idempotent).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint typecheck unit demo bench clean infra-check package

setup: $(VENV)/.installed node_modules/.installed $(BIN)/liutong-admin

# The operators' CLI as a command (same as `python -m admin` from the checkout).
$(BIN)/liutong-admin: $(VENV)/.installed
	printf '#!/bin/sh\nPYTHONPATH="%s$${PYTHONPATH:+:$$PYTHONPATH}" exec "%s/python" -m admin "$$@"\n' "$(CURDIR)" "$(CURDIR)/$(BIN)" >$@
	chmod +x $@

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# checkov gets its own venv: it pins packaging<24, which pytest 9 cannot share.
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/.installed: infra/requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/requirements-checkov.txt
	touch $@

# Under `make run` the service's metrics are at http://127.0.0.1:7071/metrics (Prometheus text).
run: setup
	LIUTONG_METRICS_EXPORTER=$${LIUTONG_METRICS_EXPORTER:-prometheus} $(BIN)/python -m localdev.run

demo: setup
	$(BIN)/python -m localdev.demo

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

unit: setup chromium prometheus
	$(BIN)/python -m pytest

# Debian's Chromium for the browser tests (tests/admin/test_ui_browser.py); they fail without it.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || command -v sudo)
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || $(SUDO) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium'

# Debian's Prometheus server for the metrics round trip (tests/localdev/test_prometheus_roundtrip.py); it fails without.
.PHONY: prometheus
prometheus:
	@command -v prometheus >/dev/null || $(SUDO) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus'

# checkov on infra/ (Bicep); fails on any failed check and on files checkov could not parse.
infra-check: setup $(CHECKOV_VENV)/.installed
	$(BIN)/python scripts/check_infra.py --checkov $(CHECKOV_VENV)/bin/checkov infra

test: lint typecheck infra-check unit

# The managed-application package for Partner Center (needs a Bicep CLI, or az with `az bicep install`):
#   make package LIUTONG_SERVICE_URL=https://<host> LIUTONG_API_APP_ID_URI=api://... LIUTONG_API_CLIENT_ID=<id>
package: setup
	$(BIN)/python scripts/package_marketplace.py

# The benchmarks: key exchange, the proxy (without LiteLLM unless LITELLM=1; ARGS=... replaces that default,
# as for bench-proxy), Liutong's CPU per call by feature, then the streams one pinned core holds (about 10
# minutes). The usage benchmark runs apart (`make bench-usage`: it takes minutes).
bench: setup
	$(BIN)/python -m bench.key_exchange
	$(BIN)/python -m bench.proxy $(or $(ARGS),$(if $(filter 1,$(LITELLM)),,--no-litellm))
	$(BIN)/python -m bench.budget
	$(BIN)/python -m bench.streams

# In process, pinned: CPU per non-streamed call of the floor and of Liutong as deployed, without its usage record,
# without its limits, without both. ARGS=..., e.g. ARGS="--rounds 5 --calls 10000".
.PHONY: bench-budget
bench-budget: setup
	$(BIN)/python -m bench.budget $(ARGS)

# Concurrent long streams through Liutong and the floor, each pinned to one core, N stepping up until the added
# time to first token or chunk lateness breaks its bound. ARGS=..., e.g. ARGS="--steps 100,500 --duration 10".
.PHONY: bench-streams
bench-streams: setup
	$(BIN)/python -m bench.streams $(ARGS)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules .mypy_cache .ruff_cache .pytest_cache dist

# The proxy against the mock upstream directly and against LiteLLM (installs wrk and LiteLLM's venv on
# first use). ARGS=... passes options, e.g. `make bench-proxy ARGS="--rounds 3 --profile"`.
.PHONY: bench-proxy
bench-proxy: setup
	$(BIN)/python -m bench.proxy $(ARGS)

# Usage aggregates at 100,000 and 1,000,000 records: write rate, 7-day report, metering run, verify of one hour.
# ARGS=... passes options, e.g. `make bench-usage ARGS="--sizes 10000,100000 --groups 500"`.
.PHONY: bench-usage
bench-usage: setup
	$(BIN)/python -m bench.usage $(ARGS)

# One key limited to 600 RPM on two service processes sharing one Azurite, for a minute: admitted per process and in
# all against 600 + the bound, CPU per request, and the same with the shared budget off (the baseline).
# ARGS=... passes options, e.g. `make bench-limits ARGS="--duration 20 --rounds 2"`.
.PHONY: bench-limits
bench-limits: setup
	$(BIN)/python -m bench.shared_limits $(ARGS)

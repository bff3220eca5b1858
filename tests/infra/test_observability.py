"""infra/bicep/modules/observability.bicep: the workbook and alerts read metrics the service really emits."""

from __future__ import annotations

import json
import re
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from core.metrics import Metrics
from tests.infra.bicep_ast import BICEP_DIR, MODULES, body, module, param, parse, resources

ALERT = "Microsoft.Insights/scheduledQueryRules"


def emitted_names() -> set[str]:
    """Every instrument core.metrics creates (observable ones show up once they have a value)."""
    created: set[str] = set()

    class Recording:
        def __getattr__(self, name: str) -> Any:
            inner = getattr(MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("t"), name)

            def create(metric: str, *args: Any, **kwargs: Any) -> Any:
                created.add(metric)
                return inner(metric, *args, **kwargs)

            return create

    Metrics(Recording())  # type: ignore[arg-type]
    return created


def queried_names(text: str) -> set[str]:
    return set(re.findall(r'"(liutong\.[a-z_.]+)"', text))


def test_the_workbook_charts_what_the_service_emits() -> None:
    workbook = json.loads((MODULES / "workbook.json").read_text())
    queries = [item["content"]["query"] for item in workbook["items"] if item["type"] == 3]
    titles = " ".join(item["content"]["title"] for item in workbook["items"] if item["type"] == 3)
    for topic in ("Tokens per plan and model", "429s by reason", "p95 time to first token per model",
                  "Marketplace submissions by outcome"):
        assert topic in titles
    names = set().union(*(queried_names(q.replace('\\"', '"')) for q in queries))
    assert names and names <= emitted_names()


def test_the_alerts_query_emitted_metrics_and_notify_the_action_group() -> None:
    doc = parse(MODULES / "observability.bicep")
    alerts = resources(doc, ALERT)
    assert set(alerts) == {"meteringErrors", "journalBacklog", "serverErrors"}
    text = (MODULES / "observability.bicep").read_text()
    assert queried_names(text) <= emitted_names()
    assert text.count("actions: actions") == len(alerts)
    assert "param actionGroupId string = ''" in text
    for name in ("journalBacklogAlertBytes", "serverErrorAlertPercent"):
        assert param(doc, name)


def test_main_deploys_the_module_with_its_parameters() -> None:
    main = parse(BICEP_DIR / "main.bicep")
    given = module(main, "modules/observability.bicep")["config"]["params"]
    assert set(given) >= {"appInsightsName", "actionGroupId", "journalBacklogAlertBytes", "serverErrorAlertPercent"}
    for name in ("alertActionGroupId", "journalBacklogAlertBytes", "serverErrorAlertPercent"):
        assert param(main, name)
    assert body(resources(parse(MODULES / "observability.bicep"), "Microsoft.Insights/workbooks")["workbook"])

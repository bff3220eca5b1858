"""Starting the targets other than Liutong (bench/liutong.py): the mock upstream, the floor and LiteLLM."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx

from bench.common import ALIAS, CHAT, DIRECT, FLOOR, HOST, LITELLM_PREFIX, LegUnavailable, Target, chat_body, say
from bench.processes import Processes, wait_http, wait_port_or_exit
from localdev.azurite import free_port


def probe(target: Target, stream: bool = False) -> None:
    """One real chat completion through the target; raises LegUnavailable with what it answered."""
    headers = {"authorization": f"Bearer {target.key}"} if target.key else {}
    try:
        response = httpx.post(target.base_url + CHAT, json=chat_body(stream), headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        raise LegUnavailable(f"POST {CHAT} failed: {exc!r}") from exc
    if response.status_code != 200:
        raise LegUnavailable(f"POST {CHAT} answered {response.status_code}: {response.text[:300]}")
    if stream and b"data:" not in response.content:
        raise LegUnavailable(f"streaming POST {CHAT} sent no SSE data: {response.text[:300]}")
    if not stream and "choices" not in response.json():
        raise LegUnavailable(f"POST {CHAT} answered without choices: {response.text[:300]}")


def probe_both(target: Target, processes: Processes, log_name: str) -> None:
    """Both probes; a failure carries the tail of the target's log."""
    try:
        probe(target)
        probe(target, stream=True)
    except LegUnavailable as exc:
        raise LegUnavailable(f"{exc}\n{processes.log_tail(log_name)}".strip()) from exc


def with_pythonpath(env: dict[str, str], extra_path: str | None) -> dict[str, str]:
    if extra_path:  # experiments only: e.g. a folder with uvloop + httptools, which uvicorn then picks
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, env.get("PYTHONPATH")) if p)
    return env


def start_mock(processes: Processes, latency_ms: float) -> Target:
    port = free_port()
    process = processes.start("mock-upstream", [
        sys.executable, "-m", "localdev.mock_upstream",
        "--host", HOST, "--port", str(port), "--latency-ms", str(latency_ms), "--no-record",
    ])
    base = f"http://{HOST}:{port}"
    try:
        wait_http(base + "/v1/models", process, timeout=30)
    except LegUnavailable as exc:
        raise SystemExit(f"the mock upstream did not start: {exc}\n{processes.log_tail('mock-upstream')}") from exc
    return Target(DIRECT, base, pid=process.pid)


def start_floor(processes: Processes, mock_url: str, extra_path: str | None = None) -> Target:
    """bench/passthrough.py in its own process; `extra_path` as Liutong's, so both run the same loop and parser."""
    port = free_port()
    env = with_pythonpath(dict(os.environ), extra_path)
    process = processes.start("floor", [
        sys.executable, "-m", "bench.passthrough", "--upstream", mock_url, "--host", HOST, "--port", str(port),
    ], env)
    target = Target(FLOOR, f"http://{HOST}:{port}", pid=process.pid)
    try:
        wait_http(target.base_url + CHAT, process, timeout=30)  # GET answers 405 once it serves
    except LegUnavailable as exc:
        raise LegUnavailable(f"{exc}\n{processes.log_tail('floor')}".strip()) from exc
    probe_both(target, processes, "floor")
    return target


def ensure_litellm(venv: Path, spec: str) -> Path:
    executable = venv / "bin" / "litellm"
    marker = venv / ".installed"
    if executable.exists() and marker.exists():
        return executable
    say(f"installing {spec} into {venv} (first run only; a few minutes)")
    try:
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", spec],
            check=True, capture_output=True, text=True, timeout=1800,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", None) or ""
        raise LegUnavailable(f"could not install {spec}: {exc!r} {str(detail)[-500:]}") from exc
    marker.write_text(spec + "\n")
    return executable


def litellm_version(venv: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "?"


def write_litellm_config(path: Path, mock_url: str, master_key: str) -> None:
    # JSON is YAML: no PyYAML needed here. An openai-compatible model on the same mock, no database.
    path.write_text(json.dumps({
        "model_list": [{"model_name": ALIAS, "litellm_params": {
            "model": "openai/mock-model", "api_base": f"{mock_url}/v1", "api_key": "sk-mock-upstream"}}],
        "general_settings": {"master_key": master_key},
        "litellm_settings": {"telemetry": False},
    }, indent=2))


def start_litellm(processes: Processes, mock_url: str, work: Path, args: argparse.Namespace) -> Target:
    venv = Path(args.cache_dir) / "litellm-venv"
    executable = ensure_litellm(venv, args.litellm_spec)
    master_key = "sk-bench-" + secrets.token_urlsafe(16)
    config = work / "litellm_config.yaml"
    write_litellm_config(config, mock_url, master_key)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LITELLM_MASTER_KEY")}
    env.update({"LITELLM_MASTER_KEY": master_key, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_TELEMETRY": "False", "NO_DOCS": "True"})
    port = free_port()
    process = processes.start("litellm", [
        str(executable), "--config", str(config), "--host", HOST, "--port", str(port), "--num_workers", "1",
    ], env)
    name = f"{LITELLM_PREFIX} {litellm_version(venv)}"
    target = Target(name, f"http://{HOST}:{port}", key=master_key, pid=process.pid)
    try:
        wait_port_or_exit(port, process, timeout=180)
        wait_http(target.base_url + "/health/liveliness", process, timeout=60)
    except LegUnavailable as exc:
        raise LegUnavailable(f"{exc}\n{processes.log_tail('litellm')}".strip()) from exc
    probe_both(target, processes, "litellm")
    return target

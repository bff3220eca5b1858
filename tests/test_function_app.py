"""What the Functions host would index, checked through app.get_functions()."""

import importlib
import inspect
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
import azurefunctions.extensions.http.fastapi as streaming
from starlette.responses import Response

from routes import ROUTES

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {
    ("api/marketplace/resource", ("POST",)),
    ("api/provisioning/key", ("POST",)),
    ("api/provisioning/key/rotate", ("POST",)),
    ("api/health", ("GET",)),
    ("v1/chat/completions", ("POST",)),
    ("v1/embeddings", ("POST",)),
    ("v1/responses", ("POST",)),
    ("v1/images/generations", ("POST",)),
    ("v1/audio/transcriptions", ("POST",)),
    ("v1/audio/speech", ("POST",)),
    ("v1/models", ("GET",)),
    ("v1/usage", ("GET",)),
    ("api/admin/teams", ("GET", "POST")),
    ("api/admin/teams/{team}", ("GET", "PATCH")),
    ("api/admin/teams/{team}/suspend", ("POST",)),
    ("api/admin/teams/{team}/resume", ("POST",)),
    ("api/admin/teams/{team}/keys", ("GET", "POST")),
    ("api/admin/teams/{team}/keys/{key_id}/revoke", ("POST",)),
    ("api/admin/teams/{team}/keys/{key_id}/rotate", ("POST",)),
    ("api/admin/deployments", ("GET",)),
    ("api/admin/deployments/{deployment_id}", ("GET",)),
    ("api/admin/deployments/{deployment_id}/rotate", ("POST",)),
    ("api/admin/deployments/{deployment_id}/revoke", ("POST",)),
    ("api/admin/deployments/{deployment_id}/suspend", ("POST",)),
    ("api/admin/deployments/{deployment_id}/resume", ("POST",)),
    ("api/admin/deployments/{deployment_id}/limits", ("PUT", "DELETE")),
    ("api/admin/teams/{team}/limits", ("PUT", "DELETE")),
    ("api/admin/credits", ("GET",)),
    ("api/admin/teams/{team}/credits", ("GET", "POST")),
    ("api/admin/teams/{team}/credits/ledger", ("GET",)),
    ("api/admin/teams/{team}/credits/adjust", ("POST",)),
    ("api/admin/teams/{team}/credits/convert", ("POST",)),
    ("api/admin/deployments/{deployment_id}/credits", ("GET", "POST")),
    ("api/admin/deployments/{deployment_id}/credits/ledger", ("GET",)),
    ("api/admin/deployments/{deployment_id}/credits/adjust", ("POST",)),
    ("api/admin/deployments/{deployment_id}/credits/convert", ("POST",)),
    ("api/admin/teams/{team}/byok", ("GET",)),
    ("api/admin/teams/{team}/byok/{alias}", ("PUT", "DELETE")),
    ("api/admin/audit", ("GET",)),
    ("api/admin/usage", ("GET",)),
    ("api/admin/usage/verify", ("GET",)),
    ("api/admin/metering/ledger", ("GET",)),
    ("api/admin/models", ("GET",)),
    ("api/admin/models/callers", ("GET",)),
    ("api/admin/ui", ("GET",)),
    ("api/admin/ui/{asset}", ("GET",)),
}


def fresh_function_app() -> ModuleType:
    # get_functions() may run only once per app object: import a fresh module each time.
    sys.modules.pop("function_app", None)
    return importlib.import_module("function_app")


def http_functions() -> list[Any]:
    module = fresh_function_app()
    return [f for f in module.app.get_functions() if f.get_trigger().get_binding_name() == "httpTrigger"]


def test_every_route_method_and_auth_level_is_indexed() -> None:
    indexed = set()
    for function in http_functions():
        trigger = function.get_trigger()
        methods = tuple(str(m.value if hasattr(m, "value") else m) for m in trigger.methods)
        indexed.add((trigger.route, methods))
        assert trigger.auth_level == func.AuthLevel.ANONYMOUS
    assert indexed == EXPECTED
    assert {(r.route, r.methods) for r in ROUTES} == EXPECTED


def test_function_names_are_unique() -> None:
    names = [f.get_function_name() for f in fresh_function_app().app.get_functions()]
    assert len(names) == len(set(names))


def test_every_http_function_uses_the_streaming_extension_types() -> None:
    # Mixing streaming and classic HTTP functions is unsupported and nothing offline catches it.
    for function in http_functions():
        user_function = function.get_user_function()
        assert inspect.iscoroutinefunction(user_function)
        parameters = list(inspect.signature(user_function).parameters.values())
        trigger_name = function.get_trigger().name
        assert [p.name for p in parameters] == [trigger_name]
        assert parameters[0].annotation is streaming.Request
        returned = inspect.signature(user_function).return_annotation
        assert isinstance(returned, type) and issubclass(returned, Response)
        bindings = function.get_bindings_dict()["bindings"]
        assert {b["type"] for b in bindings} == {"httpTrigger", "http"}


def test_host_json_serves_openai_paths_without_a_prefix() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["http"]["routePrefix"] == ""
    assert host["version"] == "2.0"


def test_init_indexing_is_enabled_for_the_streaming_extension() -> None:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert values["PYTHON_ENABLE_INIT_INDEXING"] == "1"
    requirements = (ROOT / "requirements.txt").read_text()
    assert "azurefunctions-extensions-http-fastapi" in requirements


def test_the_hourly_metering_timer_is_indexed() -> None:
    functions = fresh_function_app().app.get_functions()
    timers = [f for f in functions if f.get_trigger().get_binding_name() == "timerTrigger"]
    assert len(timers) == 1
    binding = timers[0].get_bindings_dict()["bindings"][0]
    assert binding["schedule"] == "0 5 * * * *"
    assert inspect.iscoroutinefunction(timers[0].get_user_function())

"""Reading Bicep through pycep-parser (the parser checkov uses), for assertions on templates.

pycep gives plain JSON: literals stay literals, identifiers become bare strings, and expressions
become {"function": ...} / {"operator": ...} nodes. These helpers cover what the tests need.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
BICEP_DIR = INFRA / "bicep"
MODULES = BICEP_DIR / "modules"
MARKETPLACE = INFRA / "marketplace"
SAMPLE_SETTINGS = REPO / "local.settings.sample.json"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def _parser() -> BicepParser:
    # Building the Lark parser takes seconds: one per test session.
    return BicepParser()


@cache
def parse(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = dict(_parser().parse(file_path=path))
    return document


def body(block: dict[str, Any]) -> dict[str, Any]:
    """A resource's or module's configuration, unwrapped from `if (...)` and `for` forms."""
    config: dict[str, Any] = block["config"]
    while "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


def condition(block: dict[str, Any]) -> Any:
    return block["config"].get("condition")


def resources(doc: dict[str, Any], type_: str | None = None, *, existing: bool = False) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in (doc.get("resources") or {}).items()
        if (type_ is None or resource["type"] == type_) and resource["existing"] == existing
    }


def one(doc: dict[str, Any], type_: str) -> dict[str, Any]:
    found = resources(doc, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return body(next(iter(found.values())))


def dotted(expr: Any) -> str | None:
    """`a.b.c` for a property-access chain (identifiers only), else None."""
    if isinstance(expr, str):
        return expr
    operator = expr.get("operator") if isinstance(expr, dict) else None
    if not operator or operator.get("type") != "property_accessor":
        return None
    left = dotted(operator["operands"]["operand_1"])
    right = dotted(operator["operands"]["operand_2"])
    return f"{left}.{right}" if left and right else None


def function(expr: Any, name: str) -> dict[str, Any]:
    """The parameters of a call to `name` (pycep's snake_case name, e.g. 'subscription_resource_id');
    fails the test when `expr` is not such a call."""
    assert isinstance(expr, dict) and isinstance(expr.get("function"), dict), f"not a function call: {expr!r}"
    assert expr["function"].get("type") == name, f"not a call to {name}: {expr!r}"
    parameters: dict[str, Any] = expr["function"].get("parameters") or {}
    return parameters


def union_args(expr: Any) -> list[Any]:
    parameters = function(expr, "union")
    return [parameters[key] for key in sorted(parameters, key=lambda k: int(k.split("_")[1]))]


def variable(doc: dict[str, Any], name: str) -> Any:
    return doc["variables"][name]["value"]


def param(doc: dict[str, Any], name: str) -> dict[str, Any]:
    parameter: dict[str, Any] = doc["parameters"][name]
    return parameter


def decorators(declaration: dict[str, Any]) -> set[str]:
    return {decorator["type"] for decorator in declaration.get("decorators", [])}


def module(doc: dict[str, Any], path: str) -> dict[str, Any]:
    """The module declaration that uses the file at `path` (relative, as written in the template)."""
    found: list[dict[str, Any]] = [m for m in (doc.get("modules") or {}).values() if m["detail"]["path"] == path]
    assert len(found) == 1, f"expected one module {path}, found {len(found)}"
    return found[0]

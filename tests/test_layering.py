"""Imports point downward: no circles between modules, and each package imports only the layers below it.

Read from the source (ast), module-level imports only: an import inside a function is a late lookup, not a
dependency of the module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "keystore", "provisioning", "usage", "limits", "metering", "proxy", "admin", "localdev", "bench")
TOP_MODULES = ("function_app", "routes", "services", "wiring")
# Handlers look the worker's services up (the composition root); nothing below them imports a handler.
EDGES = {"core.health", "provisioning.handlers", "proxy.handlers"}
# What each package may import from the project, besides itself.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "keystore": {"core"},
    "provisioning": {"core", "keystore"},
    "usage": {"core"},
    "limits": {"core", "keystore", "usage"},
    "metering": {"core", "usage", "limits", "provisioning"},
    "proxy": {"core", "keystore", "provisioning", "usage", "limits"},
    # proxy: the upstreams file and its model lifecycle, for the operators' model list (admin.model_callers).
    "admin": {"core", "keystore", "provisioning", "usage", "limits", "metering", "proxy"},
}


def modules() -> dict[str, Path]:
    found = {name: ROOT / f"{name}.py" for name in TOP_MODULES}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def module_level(nodes: list[ast.stmt]) -> Iterator[ast.stmt]:
    for node in nodes:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                yield from module_level([c for c in children if isinstance(c, ast.stmt)])
                for handler in children:
                    if isinstance(handler, ast.ExceptHandler):
                        yield from module_level(handler.body)


def imports(path: Path, known: set[str]) -> set[str]:
    targets: set[str] = set()
    for node in module_level(ast.parse(path.read_text()).body):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            # `from package import module` depends on that module (the package is being imported already).
            names = [*submodules] if all(name in known for name in submodules) else [node.module, *submodules]
        targets |= {name for name in names if name in known}
    return targets


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found)) - {name} for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    result: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return result


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_packages_import_only_the_layers_below() -> None:
    wrong = []
    for module, targets in graph().items():
        package = module.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            if module in EDGES and target == "services":
                continue
            if package in ALLOWED and other != package and other not in ALLOWED[package]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]

"""Every Bicep file parses with pycep-parser, the parser checkov uses: a file it cannot read is a
file checkov silently leaves out. Keep to the classic Bicep subset (no user-defined types, `func`,
`import`, nullable types or spread)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.infra.bicep_ast import INFRA, bicep_files, parse

NEWER_SYNTAX = {
    "user-defined type": re.compile(r"^\s*(@export\(\)\s*)?type\s+\w+\s*=", re.MULTILINE),
    "func": re.compile(r"^\s*func\s+\w+", re.MULTILINE),
    "import": re.compile(r"^\s*import\s", re.MULTILINE),
    "nullable type": re.compile(r"^\s*param\s+\w+\s+\w+\?", re.MULTILINE),
    "spread": re.compile(r"\.\.\.\w"),
}


def test_there_are_bicep_files() -> None:
    names = {path.relative_to(INFRA).as_posix() for path in bicep_files()}
    assert {"bicep/main.bicep", "marketplace/mainTemplate.bicep"} <= names


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_file_parses(path: Path) -> None:
    document = parse(path)
    assert document.get("resources") or document.get("modules"), f"{path} declares nothing"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_file_keeps_to_the_classic_subset(path: Path) -> None:
    text = "\n".join(line.split("//")[0] if "'" not in line else line for line in path.read_text().splitlines())
    found = [name for name, pattern in NEWER_SYNTAX.items() if pattern.search(text)]
    assert not found, f"{path.name} uses {found}, which pycep-parser (and so checkov) may not read"


def test_a_file_pycep_cannot_read_is_reported(tmp_path: Path) -> None:
    # The premise of the checks above: unsupported syntax raises instead of parsing to nothing.
    bad = tmp_path / "bad.bicep"
    bad.write_text("func add(a int, b int) int => a + b\n")
    with pytest.raises(Exception):
        parse(bad)

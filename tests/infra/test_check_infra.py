"""scripts/check_infra.py: the checkov gate `make infra-check` runs. checkov exits 0 when it cannot
parse a file, so the gate reads the JSON report instead of trusting the exit code."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep_ast import MODULES, REPO

sys.path.insert(0, str(REPO / "scripts"))
import check_infra

CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"


def report(**summary: Any) -> dict[str, Any]:
    results = summary.pop("results", {})
    base = {"passed": 3, "failed": 0, "skipped": 0, "parsing_errors": 0, "resource_count": 4}
    base.update(summary)
    return {"check_type": "bicep", "results": {"failed_checks": [], "skipped_checks": [], "parsing_errors": [],
                                                **results}, "summary": base}


def test_a_clean_report_passes() -> None:
    verdict = check_infra.evaluate(report())
    assert verdict.ok
    assert verdict.passed == 3


def test_a_failed_check_fails() -> None:
    failed = {"check_id": "CKV_AZURE_1", "file_path": "/bicep/x.bicep", "resource": "r", "check_name": "n"}
    verdict = check_infra.evaluate(report(failed=1, results={"failed_checks": [failed]}))
    assert not verdict.ok
    assert verdict.failed == ["CKV_AZURE_1 /bicep/x.bicep r: n"]


def test_a_parsing_error_fails_even_though_checkov_exits_0() -> None:
    verdict = check_infra.evaluate(report(parsing_errors=1, results={"parsing_errors": ["/infra/bad.bicep"]}))
    assert not verdict.ok
    assert verdict.parsing_errors == ["/infra/bad.bicep"]


def test_a_parsing_error_counted_only_in_the_summary_fails() -> None:
    verdict = check_infra.evaluate(report(parsing_errors=2))
    assert not verdict.ok


def test_scanning_nothing_fails() -> None:
    # What checkov prints for a directory without any readable Bicep: a bare summary.
    verdict = check_infra.evaluate({"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0,
                                    "resource_count": 0, "checkov_version": "3"})
    assert not verdict.ok
    assert "no Bicep resources" in verdict.problems()[0]


def test_skips_are_listed_with_their_reason() -> None:
    skipped = {"check_id": "CKV_AZURE_35", "file_path": "/f", "resource": "r",
               "check_result": {"result": "SKIPPED", "suppress_comment": "Flex without VNet"}}
    verdict = check_infra.evaluate(report(skipped=1, results={"skipped_checks": [skipped]}))
    assert verdict.ok
    assert verdict.skipped == ["CKV_AZURE_35 /f r: Flex without VNet"]


def test_a_list_of_reports_is_judged_whole() -> None:
    failed = {"check_id": "X", "file_path": "f", "resource": "r", "check_name": "n"}
    verdict = check_infra.evaluate([report(), report(failed=1, results={"failed_checks": [failed]})])
    assert not verdict.ok


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov is installed by `make infra-check` (.venv-checkov)")
def test_real_checkov_on_an_unparsable_file_fails_the_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(MODULES / "identity.bicep", tmp_path / "identity.bicep")
    (tmp_path / "newer.bicep").write_text("func add(a int, b int) int => a + b\n")
    assert check_infra.main(["--checkov", str(CHECKOV), str(tmp_path)]) == 1
    assert "newer.bicep" in capsys.readouterr().err

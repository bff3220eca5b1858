#!/usr/bin/env python3
"""Run checkov on infra/ (Bicep) and fail on anything it did not pass.

checkov exits 0 when it cannot parse a file (it just leaves the file out), so its exit code is
not enough: this reads its JSON report and fails when any check failed, when the summary or the
report lists a parsing error, or when it scanned no Bicep at all. Skipped checks are listed with
the reason written next to them (`// checkov:skip=ID:reason` inside the resource).

    python scripts/check_infra.py --checkov .venv-checkov/bin/checkov infra

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Verdict:
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    parsing_errors: list[str] = field(default_factory=list)
    resources: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.parsing_errors and self.resources > 0

    def problems(self) -> list[str]:
        found = [f"failed: {line}" for line in self.failed]
        found += [f"parsing error (checkov skipped this file): {path}" for path in self.parsing_errors]
        if self.resources == 0:
            found.append("checkov scanned no Bicep resources (wrong directory, or every file failed to parse)")
        return found


def _reports(document: Any) -> list[dict[str, Any]]:
    # One framework gives one report object; several give a list. An empty scan gives a bare summary.
    if isinstance(document, list):
        return [report for report in document if isinstance(report, dict)]
    if isinstance(document, dict):
        return [document]
    raise ValueError(f"unexpected checkov output: {type(document).__name__}")


def evaluate(document: Any) -> Verdict:
    """Judge checkov's `-o json` output."""
    verdict = Verdict()
    for report in _reports(document):
        summary = report.get("summary", report)
        results = report.get("results", {})
        verdict.passed += int(summary.get("passed", 0))
        verdict.resources += int(summary.get("resource_count", 0))
        for check in results.get("failed_checks", []):
            verdict.failed.append(
                f"{check.get('check_id')} {check.get('file_path')} {check.get('resource')}: {check.get('check_name')}"
            )
        if int(summary.get("failed", 0)) and not results.get("failed_checks"):
            verdict.failed.append(f"{summary['failed']} failed check(s) (no details in the report)")
        for check in results.get("skipped_checks", []):
            reason = (check.get("check_result") or {}).get("suppress_comment", "no reason given")
            where = f"{check.get('check_id')} {check.get('file_path')} {check.get('resource')}"
            verdict.skipped.append(f"{where}: {reason}")
        errors = list(results.get("parsing_errors", []))
        count = int(summary.get("parsing_errors", 0))
        if count > len(errors):
            errors += [f"{count - len(errors)} more file(s)"]
        verdict.parsing_errors += errors
    return verdict


def run_checkov(checkov: str, directory: Path) -> Any:
    # No --quiet: it would drop the skipped checks and the list of unparsable files from the report.
    command = [checkov, "--directory", str(directory), "--framework", "bicep", "--skip-download",
               "--output", "json", "--compact"]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our own argv
    if completed.returncode not in (0, 1):
        raise RuntimeError(f"checkov exited {completed.returncode}: {completed.stderr.strip()[-2000:]}")
    try:
        return json.loads(completed.stdout)
    except json.JSONDecodeError as error:
        raise RuntimeError(f"checkov printed no JSON report: {completed.stdout[:500]!r}") from error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkov", default="checkov", help="checkov executable")
    parser.add_argument("directory", type=Path, nargs="?", default=Path("infra"))
    args = parser.parse_args(argv)

    try:
        verdict = evaluate(run_checkov(args.checkov, args.directory))
    except (OSError, RuntimeError, ValueError) as error:
        print(f"check_infra: {error}", file=sys.stderr)
        return 2

    for line in sorted(verdict.skipped):
        print(f"checkov skipped {line}")
    print(
        f"checkov on {args.directory}: {verdict.passed} passed, {len(verdict.failed)} failed, "
        f"{len(verdict.skipped)} skipped, {len(verdict.parsing_errors)} parsing errors, "
        f"{verdict.resources} resources"
    )
    if verdict.ok:
        return 0
    for problem in verdict.problems():
        print(f"check_infra: {problem}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

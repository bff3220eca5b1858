import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_benchmark_runs_and_reports_ratios() -> None:
    # Only that it runs and reports; timings are never asserted.
    result = subprocess.run(
        [sys.executable, "-m", "bench.key_exchange", "--rounds", "20"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("azurite point read (baseline)") for line in lines)
    assert any(line.startswith("key exchange over HTTP") for line in lines)

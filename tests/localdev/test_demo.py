import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_make_demo_walkthrough_behaves() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "localdev.demo"], cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all steps behaved" in result.stdout
    assert "FAIL" not in result.stdout

"""The Function app package (scripts/build_app_package.py + .funcignore): the runtime goes in,
development files stay out, and the packaged code imports on its own."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from tests.infra.bicep_ast import REPO

sys.path.insert(0, str(REPO / "scripts"))
import build_app_package


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("package") / "app.zip"
    build_app_package.build(REPO, output)
    return output


def entries(package: Path) -> set[str]:
    with zipfile.ZipFile(package) as archive:
        return set(archive.namelist())


def test_the_runtime_is_in_the_package(package: Path) -> None:
    names = entries(package)
    assert {"function_app.py", "routes.py", "services.py", "host.json", "requirements.txt"} <= names
    for package_dir in ("core", "keystore", "provisioning", "proxy", "metering", "config"):
        if (REPO / package_dir).is_dir():
            assert any(name.startswith(f"{package_dir}/") for name in names), f"{package_dir}/ is missing"


def test_development_files_stay_out(package: Path) -> None:
    tops = {PurePosixPath(name).parts[0] for name in entries(package)}
    for left_out in ("tests", "localdev", "bench", "infra", "scripts", "docs", ".venv", "node_modules", ".git",
                     "local.settings.sample.json", "local.settings.json", "requirements-dev.txt", "Makefile"):
        assert left_out not in tops
    assert not [name for name in entries(package) if "__pycache__" in name or name.endswith(".pyc")]


def test_every_shipped_package_is_importable_from_the_package(package: Path, tmp_path: Path) -> None:
    # What the Functions host does first: import function_app from the deployed files alone.
    here = subprocess.run([sys.executable, "-c", "import function_app"], cwd=REPO, capture_output=True,
                          text=True, check=False)
    if here.returncode != 0:
        pytest.skip(f"function_app does not import from the work tree either: {here.stderr.strip()[-300:]}")
    with zipfile.ZipFile(package) as archive:
        archive.extractall(tmp_path)
    shipped = subprocess.run(
        [sys.executable, "-P", "-c", "import sys; sys.path.insert(0, '.'); import function_app"],
        cwd=tmp_path, capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin"},
    )
    assert shipped.returncode == 0, f"the packaged app does not import: {shipped.stderr[-1500:]}"


def test_the_package_is_reproducible(package: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.zip"
    build_app_package.build(REPO, again)
    assert again.read_bytes() == package.read_bytes()


def test_funcignore_rules() -> None:
    rules = build_app_package.parse_funcignore("# c\n\ntests/\n*.pyc\n/Makefile\nconfig/local.json\n")
    def ignored(path: str, *, is_dir: bool = False) -> bool:
        return any(rule.matches(PurePosixPath(path), is_dir=is_dir) for rule in rules)

    assert ignored("tests", is_dir=True)
    assert not ignored("tests")  # a file named tests: the rule is for directories
    assert ignored("core/x.pyc")
    assert ignored("Makefile")
    assert not ignored("docs/Makefile")  # anchored to the root
    assert ignored("config/local.json")
    assert not ignored("config/plans.json")


@pytest.mark.parametrize("line", ["!keep.py", "**/x"])
def test_unsupported_funcignore_syntax_is_refused(line: str) -> None:
    with pytest.raises(ValueError, match="not supported"):
        build_app_package.parse_funcignore(line)


def test_a_package_without_the_entry_point_is_refused(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text("{}")
    (tmp_path / "requirements.txt").write_text("")
    with pytest.raises(ValueError, match=r"function_app\.py"):
        build_app_package.build(tmp_path, tmp_path / "dist" / "app.zip")

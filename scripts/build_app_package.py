#!/usr/bin/env python3
"""Zip the Function app for `az functionapp deployment source config-zip` (Flex Consumption).

Everything under the project root goes in except what `.funcignore` lists, which is the same file
`func azure functionapp publish` reads. Dependencies are not vendored: the deployment asks for a
remote build, which installs requirements.txt on the platform.

.funcignore subset understood here (the same meaning as in .gitignore):
  `# comment`, blank lines, `name` (any file or directory of that name, at any depth),
  `dir/` (directories only), `/path` (anchored at the root), and `*`, `?`, `[...]` globs.
Negation (`!pattern`) and `**` are refused rather than guessed at.

The archive is reproducible: sorted entries, fixed timestamps and permissions.

    python3 scripts/build_app_package.py [--root .] [--output dist/app.zip]

Standard library only (operators run it with any Python 3).
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

FIXED_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Rule:
    pattern: str
    directory_only: bool
    anchored: bool

    def matches(self, relative: PurePosixPath, *, is_dir: bool) -> bool:
        if self.directory_only and not is_dir:
            return False
        if self.anchored or "/" in self.pattern:
            return fnmatch.fnmatchcase(relative.as_posix(), self.pattern)
        return fnmatch.fnmatchcase(relative.name, self.pattern)


def parse_funcignore(text: str) -> list[Rule]:
    rules: list[Rule] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!") or "**" in line:
            raise ValueError(f".funcignore line {number}: {line!r} is not supported (no '!' or '**')")
        directory_only = line.endswith("/")
        anchored = line.startswith("/")
        pattern = line.strip("/")
        if not pattern:
            raise ValueError(f".funcignore line {number}: empty pattern")
        rules.append(Rule(pattern=pattern, directory_only=directory_only, anchored=anchored))
    return rules


def package_files(root: Path, rules: list[Rule]) -> list[PurePosixPath]:
    """Files to ship, relative to root, sorted. Ignored directories are not descended into."""
    shipped: list[PurePosixPath] = []

    def walk(directory: Path) -> None:
        for entry in sorted(directory.iterdir(), key=lambda p: p.name):
            relative = PurePosixPath(entry.relative_to(root).as_posix())
            is_dir = entry.is_dir() and not entry.is_symlink()
            if any(rule.matches(relative, is_dir=is_dir) for rule in rules):
                continue
            if is_dir:
                walk(entry)
            elif entry.is_file():
                shipped.append(relative)

    walk(root)
    return shipped


def build(root: Path, output: Path) -> list[PurePosixPath]:
    ignore_file = root / ".funcignore"
    rules = parse_funcignore(ignore_file.read_text(encoding="utf-8")) if ignore_file.exists() else []
    # Never zip the output into itself.
    if output.resolve().is_relative_to(root.resolve()):
        rules.append(Rule(pattern=output.resolve().relative_to(root.resolve()).as_posix(),
                          directory_only=False, anchored=True))
    files = package_files(root, rules)
    for required in ("function_app.py", "host.json", "requirements.txt"):
        if PurePosixPath(required) not in files:
            raise ValueError(f"{required} is missing from the package (check .funcignore)")
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in files:
            info = zipfile.ZipInfo(relative.as_posix(), date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / relative).read_bytes())
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Zip the Function app for a Flex Consumption deployment.")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--output", type=Path, default=None, help="default: <root>/dist/app.zip")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    output: Path = (args.output or root / "dist" / "app.zip").resolve()
    try:
        files = build(root, output)
    except (OSError, ValueError) as error:
        print(f"build_app_package: {error}", file=sys.stderr)
        return 1
    print(f"{output}: {len(files)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Build the managed-application package a publisher uploads to Partner Center (`make package`).

    python3 scripts/package_marketplace.py --service-url https://<function host> \\
        --audience api://liutong --api-client-id <client id> [--bicep bicep] [--out dist/marketplace]

(each option may come from the environment instead: LIUTONG_SERVICE_URL, LIUTONG_API_APP_ID_URI,
LIUTONG_API_CLIENT_ID, BICEP).

1. Compiles infra/marketplace/mainTemplate.bicep to mainTemplate.json with the Bicep CLI
   (`bicep build`, or `az bicep build` when only az is installed): the Marketplace takes ARM JSON only.
2. Writes the publisher's constants (the service URL and the API's App ID URI) as the defaults of
   the template's parameters, and the API's client ID into createUiDefinition.json.
3. Checks that every createUiDefinition output is a template parameter (or one the portal itself
   consumes), and that every parameter without a default is an output.
4. Zips mainTemplate.json and createUiDefinition.json at the root of the archive, as Partner
   Center expects.

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "infra" / "marketplace"
CLIENT_ID_PLACEHOLDER = "__LIUTONG_API_CLIENT_ID__"
# Outputs the portal consumes itself rather than passing to the template.
PORTAL_OUTPUTS = {"applicationResourceName", "managedIdentity", "jitAccessPolicy"}
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class PackageError(Exception):
    pass


def compile_template(source: Path, output: Path, bicep: str | None) -> None:
    """Compile with the Bicep CLI, or with az's bundled Bicep."""
    if bicep:
        command = [bicep, "build", str(source), "--outfile", str(output)]
    elif shutil.which("bicep"):
        command = ["bicep", "build", str(source), "--outfile", str(output)]
    elif shutil.which("az"):
        command = ["az", "bicep", "build", "--file", str(source), "--outfile", str(output)]
    else:
        raise PackageError(
            "no Bicep compiler found: install the Bicep CLI (or the Azure CLI and run 'az bicep install'), "
            "or name one with --bicep / BICEP"
        )
    completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our own argv
    if completed.returncode != 0 or not output.exists():
        raise PackageError(f"{' '.join(command[:2])} failed: {completed.stderr.strip() or completed.stdout.strip()}")


def set_publisher_defaults(template: dict[str, Any], values: dict[str, str]) -> None:
    parameters = template.get("parameters", {})
    for name, value in values.items():
        if name not in parameters:
            raise PackageError(f"mainTemplate has no parameter {name!r}")
        parameters[name]["defaultValue"] = value


def fill_placeholders(document: Any, replacements: dict[str, str]) -> Any:
    if isinstance(document, str):
        for placeholder, value in replacements.items():
            document = document.replace(placeholder, value)
        return document
    if isinstance(document, list):
        return [fill_placeholders(item, replacements) for item in document]
    if isinstance(document, dict):
        return {key: fill_placeholders(value, replacements) for key, value in document.items()}
    return document


def check_outputs_match(template: dict[str, Any], ui: dict[str, Any]) -> None:
    parameters = template.get("parameters", {})
    outputs = ui["parameters"]["outputs"]
    unknown = sorted(set(outputs) - PORTAL_OUTPUTS - set(parameters))
    if unknown:
        raise PackageError(f"createUiDefinition outputs that are not template parameters: {unknown}")
    missing = sorted(name for name, spec in parameters.items() if "defaultValue" not in spec and name not in outputs)
    if missing:
        raise PackageError(f"template parameters without a default that createUiDefinition does not set: {missing}")


def build(*, service_url: str, audience: str, api_client_id: str, out: Path, bicep: str | None) -> Path:
    for label, value in (("service URL", service_url), ("audience", audience), ("API client ID", api_client_id)):
        if not value:
            raise PackageError(f"the {label} is required (see --help)")
    if not service_url.startswith("https://"):
        raise PackageError("the service URL must start with https://")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        compiled = Path(scratch) / "mainTemplate.json"
        compile_template(SOURCE / "mainTemplate.bicep", compiled, bicep)
        template = json.loads(compiled.read_text(encoding="utf-8"))
    set_publisher_defaults(template, {"liutongServiceUrl": service_url.rstrip("/"), "liutongAudience": audience})
    ui = json.loads((SOURCE / "createUiDefinition.json").read_text(encoding="utf-8"))
    ui = fill_placeholders(ui, {CLIENT_ID_PLACEHOLDER: api_client_id})
    if CLIENT_ID_PLACEHOLDER in json.dumps(ui):
        raise PackageError("createUiDefinition.json still holds a placeholder")
    check_outputs_match(template, ui)

    files = {
        "mainTemplate.json": json.dumps(template, indent=2) + "\n",
        "createUiDefinition.json": json.dumps(ui, indent=2) + "\n",
    }
    view = SOURCE / "viewDefinition.json"
    if view.exists():
        files["viewDefinition.json"] = view.read_text(encoding="utf-8")
    archive_path = out / "liutong-managed-app.zip"
    with zipfile.ZipFile(archive_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in sorted(files.items()):
            (out / name).write_text(text, encoding="utf-8")
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
    return archive_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Partner Center managed-application package.")
    parser.add_argument("--service-url", default=os.environ.get("LIUTONG_SERVICE_URL", ""),
                        help="https://<function app host> (env LIUTONG_SERVICE_URL)")
    parser.add_argument("--audience", default=os.environ.get("LIUTONG_API_APP_ID_URI", ""),
                        help="App ID URI of the Liutong API (env LIUTONG_API_APP_ID_URI)")
    parser.add_argument("--api-client-id", default=os.environ.get("LIUTONG_API_CLIENT_ID", ""),
                        help="client ID of the Liutong API app registration (env LIUTONG_API_CLIENT_ID)")
    parser.add_argument("--bicep", default=os.environ.get("BICEP") or None, help="Bicep CLI to use (env BICEP)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "marketplace")
    args = parser.parse_args(argv)
    try:
        archive = build(service_url=args.service_url, audience=args.audience, api_client_id=args.api_client_id,
                        out=args.out, bicep=args.bicep)
    except (OSError, PackageError, json.JSONDecodeError) as error:
        print(f"package_marketplace: {error}", file=sys.stderr)
        return 2
    print(f"{archive}: upload it in Partner Center (plan > Technical configuration)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A stand-in for `bicep build <file> --outfile <out>` (no Bicep CLI here).

It writes the ARM JSON skeleton the packaging script works on: the parameters (type, and
defaultValue when the Bicep default is a literal) and the resources' types. Each call is
appended to $FAKE_BICEP_LOG when set.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from pycep import BicepParser

TYPES = {"string": "string", "int": "int", "bool": "bool", "object": "object", "array": "array"}


def main(argv: list[str]) -> int:
    if os.environ.get("FAKE_BICEP_LOG"):
        with open(os.environ["FAKE_BICEP_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps(argv) + "\n")
    if argv[:1] != ["build"] or "--outfile" not in argv:
        print(f"fake bicep: unsupported arguments {argv}", file=sys.stderr)
        return 2
    source, out = Path(argv[1]), Path(argv[argv.index("--outfile") + 1])
    document = BicepParser().parse(file_path=source)
    parameters = {}
    for name, spec in document.get("parameters", {}).items():
        compiled: dict[str, object] = {"type": TYPES[spec["type"]]}
        default = spec.get("default")
        if isinstance(default, (bool, int)) or (isinstance(default, str) and "${" not in default):
            compiled["defaultValue"] = default
        elif default is not None:
            compiled["defaultValue"] = "[expression]"
        parameters[name] = compiled
    template = {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": parameters,
        "resources": [{"type": r["type"], "apiVersion": r["api_version"]}
                      for r in document.get("resources", {}).values()],
    }
    out.write_text(json.dumps(template, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

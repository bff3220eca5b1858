"""A stand-in for the Azure CLI, put on PATH as `az` by the deploy.sh tests.

Each call appends {"argv": [...], "env": {LIUTONG_CREATE_*}} (one JSON object per line) to
$FAKE_AZ_LOG. Behaviour comes from the environment:

  FAKE_AZ_LOGGED_IN     "1" (default) or "0": `az account show` fails like az does when logged out
  FAKE_AZ_GROUP_EXISTS  "true" (default) or "false"
  FAKE_AZ_VAULT_ID      the service vault's resource ID, or "" (default) when there is none yet
  FAKE_AZ_SECRETS       comma-separated names of secrets that exist in that vault
  FAKE_AZ_DEPLOYED      "1" (default) or "0": whether `az deployment group show` finds a deployment
  FAKE_AZ_FAIL          a command prefix (e.g. "deployment group create") that exits 1

`config-zip` also records the names inside the zip it was given (as "zip_entries").
"""

from __future__ import annotations

import json
import os
import sys
import zipfile

OUTPUTS = {
    "FUNCTION_APP_NAME": "func-liutong-abc123",
    "FUNCTION_APP_HOST": "func-liutong-abc123.azurewebsites.net",
    "NOTIFICATION_ENDPOINT_URL": "https://func-liutong-abc123.azurewebsites.net/api/marketplace",
    "MANAGED_IDENTITY_CLIENT_ID": "11111111-1111-1111-1111-111111111111",
    "MANAGED_IDENTITY_PRINCIPAL_ID": "22222222-2222-2222-2222-222222222222",
    "MANAGED_IDENTITY_TENANT_ID": "33333333-3333-3333-3333-333333333333",
    "KEY_VAULT_NAME": "kv-abc123",
    "KEY_VAULT_URI": "https://kv-abc123.vault.azure.net/",
    "WEBHOOK_SECRET_NAME": "liutong-webhook-secret",
    "MASTER_SECRET_NAME": "liutong-key-master",
}


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def main(argv: list[str]) -> int:
    entry: dict[str, object] = {
        "argv": argv,
        "env": {name: value for name, value in os.environ.items() if name.startswith("LIUTONG_CREATE_")},
    }
    command = " ".join(arg for arg in argv if not arg.startswith("-"))
    env = os.environ
    status, out, err = 0, "", ""

    if env.get("FAKE_AZ_FAIL") and command.startswith(env["FAKE_AZ_FAIL"]):
        status, err = 1, f"ERROR: {env['FAKE_AZ_FAIL']} failed (fake)"
    elif argv[:2] == ["account", "show"]:
        if env.get("FAKE_AZ_LOGGED_IN", "1") == "1":
            out = "Contoso Production\t44444444-4444-4444-4444-444444444444\t33333333-3333-3333-3333-333333333333"
        else:
            status, err = 1, "ERROR: Please run 'az login' to setup account."
    elif argv[:2] == ["group", "exists"]:
        out = env.get("FAKE_AZ_GROUP_EXISTS", "true")
    elif argv[:2] == ["keyvault", "list"]:
        out = env.get("FAKE_AZ_VAULT_ID", "")
    elif argv[:2] == ["resource", "show"]:
        resource_id = option(argv, "--ids") or ""
        vault, _, name = resource_id.rpartition("/secrets/")
        existing = {n for n in env.get("FAKE_AZ_SECRETS", "").split(",") if n}
        if vault == env.get("FAKE_AZ_VAULT_ID") and name in existing:
            out = name
        else:
            status, err = 3, f"ERROR: (ResourceNotFound) {resource_id} was not found."
    elif argv[:3] == ["deployment", "group", "create"]:
        out = json.dumps({name: {"type": "String", "value": value} for name, value in OUTPUTS.items()})
    elif argv[:3] == ["deployment", "group", "show"]:
        if env.get("FAKE_AZ_DEPLOYED", "1") == "1":
            out = json.dumps({name: {"type": "String", "value": value} for name, value in OUTPUTS.items()})
        else:
            status, err = 3, "ERROR: (DeploymentNotFound) Deployment 'liutong' could not be found."
    elif argv[:3] == ["deployment", "group", "what-if"]:
        out = "Resource and property changes are indicated with these symbols: (fake)"
    elif argv[:4] == ["functionapp", "deployment", "source", "config-zip"]:
        with zipfile.ZipFile(option(argv, "--src") or "") as archive:
            entry["zip_entries"] = archive.namelist()

    with open(env["FAKE_AZ_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")
    if out:
        print(out)
    if err:
        print(err, file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

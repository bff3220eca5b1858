"""`make run`: Azurite + the Azure stand-in + the service on loopback, service in the foreground."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import uvicorn

from admin.cli.config import PROFILE_ENV, profile_path, write_local_profile
from localdev.server import UVICORN_OPTIONS, build_app
from localdev.stack import ADMIN_AUTOMATION_CLIENT_ID, API_APP_ID_URI, HOST, LocalStack, Ports

WALKTHROUGH = """\
Liutong provisioning is running locally (Ctrl-C stops everything):
  service        {service}
  Azure stand-in {standin}   (Entra OIDC/JWKS, managed identity endpoint, ARM)
  Azurite tables http://{host}:{azurite}/devstoreaccount1
  model upstream {upstream}
  stand-in keys  {state_dir}   (kept across restarts: tokens cached before one stay valid)

  webhook secret         {secret}
  IDENTITY_ENDPOINT={identity_endpoint}
  IDENTITY_HEADER={identity_header}

Walkthrough (a second shell, from this directory; `make demo` runs the same as a script):

  export IDENTITY_ENDPOINT={identity_endpoint} IDENTITY_HEADER={identity_header}
  APP=/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg/providers/Microsoft.Solutions/applications/demo
  ARM=$(.venv/bin/python -c "from azure.identity import ManagedIdentityCredential as C; \\
print(C().get_token('https://management.azure.com/.default').token)")
  # 1. register a managed app (with a system-assigned identity) in the stand-in's ARM
  curl -s -X PUT "{standin}$APP?api-version=2021-07-01" -H "Authorization: Bearer $ARM" \\
    -H 'content-type: application/json' -d '{{"kind":"MarketPlace","location":"westeurope",
    "plan":{{"name":"standard","product":"liutong","publisher":"liutong","version":"1.0.0"}},
    "identity":{{"type":"SystemAssigned"}},"properties":{{"managedResourceGroupId":"/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/mrg"}}}}'
  USAGE=$(curl -s "{standin}$APP?api-version=2021-07-01" -H "Authorization: Bearer $ARM" | .venv/bin/python -c \\
    "import json,sys; print(json.load(sys.stdin)['properties']['billingDetails']['resourceUsageId'])")
  # 2. the Marketplace notification ARM would send
  curl -s -X POST "{service}/api/marketplace/resource?sig={secret}" -H 'content-type: application/json' \\
    -d '{{"eventType":"PUT","applicationId":"'$APP'","eventTime":"2026-01-01T00:00:00.0000000Z",
    "provisioningState":"Succeeded","plan":{{"name":"standard","product":"liutong","publisher":"liutong",
    "version":"1.0.0"}},"billingDetails":{{"resourceUsageId":"'$USAGE'"}}}}'
  # 3. the managed app's identity token for Liutong's API, then its key
  TOKEN=$(.venv/bin/python -c "from azure.identity import ManagedIdentityCredential as C; \\
print(C(identity_config={{'resource_id': '$APP'}}).get_token('{audience}/.default').token)")
  KEY=$(curl -s -X POST {service}/api/provisioning/key -H "Authorization: Bearer $TOKEN" \\
    -H 'content-type: application/json' -d '{{"application_id":"'$APP'"}}' \\
    | .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)['key'])")
  # 4. call a model through the proxy (any OpenAI SDK: base_url={service}/v1, api_key=$KEY)
  curl -s {service}/v1/chat/completions -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \\
    -d '{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"Hello"}}],"stream":true}}'

Admin API and CLI ({profile_note}):
  .venv/bin/python -m admin login      # open {device_login}, enter the code, approve as operator@liutong.local
  .venv/bin/python -m admin teams create demo --plan starter
  .venv/bin/python -m admin keys mint demo
  .venv/bin/python -m admin usage      # --help for the rest: keys, deployments, usage --csv, ledger, audit, ui
  # automation (client credentials; the app holds Liutong.Admin):
  LIUTONG_ADMIN_CLIENT_SECRET={automation_secret} .venv/bin/python -m admin --client-id {automation_id} teams list
"""


def standin_state_dir(environ: Mapping[str, str]) -> Path:
    """The stand-in's signing key and TLS certificate, beside the CLI's token cache (XDG_CACHE_HOME)."""
    cache = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return Path(cache) / "liutong-local" / "standin"


def main() -> None:
    logging.basicConfig(level=os.environ.get("LIUTONG_LOG_LEVEL", "INFO"), format="%(levelname)s %(name)s %(message)s")
    # The Azure SDK logs every request's headers at INFO; the service's own lines are what matter here.
    logging.getLogger("azure").setLevel(logging.WARNING)
    stack = LocalStack(ports=Ports(), standin_state_dir=standin_state_dir(os.environ))
    try:
        settings = stack.start_dependencies()
        assert stack.standin is not None
        profile = write_local_profile(stack.admin_profile(), os.environ)
        default = profile == profile_path(os.environ)
        print(
            WALKTHROUGH.format(
                service=stack.service_url,
                standin=stack.standin.base_url,
                host=HOST,
                azurite=stack.ports.azurite,
                secret=stack.webhook_secret,
                identity_endpoint=stack.standin.msi_endpoint,
                identity_header=stack.standin.identity_header,
                audience=API_APP_ID_URI,
                upstream=stack.upstream.base_url if stack.upstream else "LIUTONG_UPSTREAMS_FILE",
                state_dir=stack.standin_state_dir,
                profile_note=f"profile {profile}" if default else f"export {PROFILE_ENV}={profile}",
                device_login=f"{stack.standin.base_url}/devicelogin",
                automation_secret=stack.admin_automation_secret,
                automation_id=ADMIN_AUTOMATION_CLIENT_ID,
            ),
            flush=True,
        )
        uvicorn.run(build_app(settings), host=HOST, port=stack.ports.service, log_level="info", **UVICORN_OPTIONS)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()

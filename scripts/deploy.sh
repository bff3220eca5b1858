#!/usr/bin/env bash
# Deploy Liutong to Azure: the infrastructure (infra/bicep), then the app package, then print the
# values to enter in Partner Center.
#
#   scripts/deploy.sh -g <resource group> [-l <location>] [-p <file.bicepparam>] [-n <deployment name>]
#                     [--what-if] [--skip-code] [--code-only]
#
#   -g, --resource-group   target resource group (or LIUTONG_RESOURCE_GROUP)
#   -l, --location         create the resource group there if it does not exist
#   -p, --parameters       parameters file (default infra/bicep/main.bicepparam)
#   -n, --name             deployment name (default liutong)
#   --what-if              show what the deployment would change (az deployment group what-if), nothing else
#   --skip-code            deploy the infrastructure only
#   --code-only            deploy the app package only, to the app of the last deployment (upgrade, roll back)
#
# Needs: the Azure CLI (az, logged in with `az login`), python3, and the environment variables the
# parameters file reads (LIUTONG_API_APP_ID_URI, LIUTONG_API_CLIENT_ID for main.bicepparam).
# Writes dist/app.zip and dist/deployment-outputs.json (LIUTONG_DIST_DIR moves them).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPLATE="$ROOT/infra/bicep/main.bicep"
PARAMS="$ROOT/infra/bicep/main.bicepparam"
DIST="${LIUTONG_DIST_DIR:-$ROOT/dist}"
OUTPUTS="$DIST/deployment-outputs.json"
RESOURCE_GROUP="${LIUTONG_RESOURCE_GROUP:-}"
LOCATION=""
DEPLOYMENT_NAME="liutong"
WHAT_IF=0
SKIP_CODE=0
CODE_ONLY=0
PYTHON="${PYTHON:-python3}"
# The template's default secret names (infra/bicep/main.bicep; a test keeps them equal).
MASTER_SECRET_NAME="liutong-key-master"
WEBHOOK_SECRET_NAME="liutong-webhook-secret"
# The tag the template puts on the service's Key Vault.
VAULT_QUERY="[?tags.\"liutong-component\"=='service-vault'].id | [0]"

die() {
  echo "deploy.sh: error: $*" >&2
  exit 1
}

usage() {
  # The comment block at the top of this file.
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

parse_arguments() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      -g | --resource-group) RESOURCE_GROUP="${2:-}"; shift 2 ;;
      -l | --location) LOCATION="${2:-}"; shift 2 ;;
      -p | --parameters) PARAMS="${2:-}"; shift 2 ;;
      -n | --name) DEPLOYMENT_NAME="${2:-}"; shift 2 ;;
      --what-if) WHAT_IF=1; shift ;;
      --skip-code) SKIP_CODE=1; shift ;;
      --code-only) CODE_ONLY=1; shift ;;
      -h | --help) usage; exit 0 ;;
      *) usage >&2; die "unknown argument: $1" ;;
    esac
  done
  [[ -n "$RESOURCE_GROUP" ]] || die "no resource group: pass -g <resource group> (or set LIUTONG_RESOURCE_GROUP)"
  [[ -f "$PARAMS" ]] || die "parameters file not found: $PARAMS"
  if [[ $CODE_ONLY -eq 1 && ($SKIP_CODE -eq 1 || $WHAT_IF -eq 1) ]]; then
    die "--code-only deploys the code alone: it combines with neither --skip-code nor --what-if"
  fi
}

check_tools() {
  command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not on PATH: install it, then run 'az login'"
  command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON is not on PATH (needed to build the app package)"
}

# Values the parameters file reads with readEnvironmentVariable('NAME') (no default) must be set.
check_parameter_environment() {
  local name
  while read -r name; do
    [[ -n "${!name:-}" ]] || die "$name is not set: $(basename "$PARAMS") reads it (see docs/operators.md)"
  done < <(grep -v '^[[:space:]]*//' "$PARAMS" | grep -o "readEnvironmentVariable('[A-Za-z_][A-Za-z0-9_]*')" \
    | sed "s/.*('\(.*\)')/\1/" | sort -u)
}

check_login() {
  local account name id tenant
  if ! account=$(az account show --query "{name:name, id:id, tenant:tenantId}" -o tsv 2>/dev/null); then
    die "not logged in to Azure: run 'az login' (and 'az account set --subscription <id>' to pick a subscription)"
  fi
  IFS=$'\t' read -r name id tenant <<<"$account" || true
  echo "Subscription: ${name:-?} (${id:-?}), tenant ${tenant:-?}"
}

ensure_resource_group() {
  [[ "$(az group exists --name "$RESOURCE_GROUP" -o tsv)" == "true" ]] && return 0
  if [[ -n "$LOCATION" && $WHAT_IF -eq 0 ]]; then
    echo "Creating resource group $RESOURCE_GROUP in $LOCATION"
    az group create --name "$RESOURCE_GROUP" --location "$LOCATION" -o none
  else
    die "resource group $RESOURCE_GROUP does not exist: create it, or pass --location to have it created"
  fi
}

# "true" when the secret does not exist yet, so the template may generate it. Never regenerate one:
# a new master secret is a master rotation, a new webhook secret breaks the URL in Partner Center.
secret_missing() {
  local vault_id="$1" name="$2" answer
  [[ -z "$vault_id" ]] && { echo true; return; }
  # ARM's control plane shows a secret's metadata (never its value) to a Reader of the vault.
  if answer=$(az resource show --ids "$vault_id/secrets/$name" --api-version 2023-07-01 --query name -o tsv 2>&1); then
    echo false
  elif grep -qiE "not ?found" <<<"$answer"; then
    echo true
  else
    # Guessing "missing" would overwrite a live secret: stop instead.
    die "cannot tell whether secret $name exists in $vault_id: $answer"
  fi
}

deploy_infrastructure() {
  local vault_id create_master create_webhook
  vault_id=$(az keyvault list --resource-group "$RESOURCE_GROUP" --query "$VAULT_QUERY" -o tsv)
  create_master=$(secret_missing "$vault_id" "$MASTER_SECRET_NAME")
  create_webhook=$(secret_missing "$vault_id" "$WEBHOOK_SECRET_NAME")
  echo "Secrets to generate: master secret $create_master, webhook secret $create_webhook"
  # main.bicepparam reads these (az takes no inline overrides next to a .bicepparam file).
  export LIUTONG_CREATE_MASTER_SECRET="$create_master" LIUTONG_CREATE_WEBHOOK_SECRET="$create_webhook"
  local arguments=(
    --resource-group "$RESOURCE_GROUP"
    --name "$DEPLOYMENT_NAME"
    --template-file "$TEMPLATE"
    --parameters "$PARAMS"
  )
  if [[ $WHAT_IF -eq 1 ]]; then
    exec az deployment group what-if "${arguments[@]}"
  fi
  echo "Deploying $TEMPLATE to $RESOURCE_GROUP (deployment $DEPLOYMENT_NAME)"
  az deployment group create "${arguments[@]}" --query properties.outputs -o json >"$OUTPUTS"
}

# --code-only: the app and its names come from the last deployment of the infrastructure.
load_last_outputs() {
  az deployment group show --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT_NAME" \
    --query properties.outputs -o json >"$OUTPUTS" \
    || die "no deployment $DEPLOYMENT_NAME in $RESOURCE_GROUP: deploy the infrastructure first (without --code-only)"
}

output() {
  "$PYTHON" - "$OUTPUTS" "$1" <<'PY'
import json, sys
outputs = json.load(open(sys.argv[1], encoding="utf-8")) or {}
value = (outputs.get(sys.argv[2]) or {}).get("value")
if value is None:
    sys.exit(f"deploy.sh: error: the deployment has no output {sys.argv[2]}")
print(value)
PY
}

deploy_code() {
  local app package="$DIST/app.zip"
  app=$(output FUNCTION_APP_NAME)
  "$PYTHON" "$ROOT/scripts/build_app_package.py" --root "$ROOT" --output "$package"
  echo "Deploying the app package to $app (a remote build installs requirements.txt)"
  az functionapp deployment source config-zip \
    --resource-group "$RESOURCE_GROUP" --name "$app" --src "$package" --build-remote true -o none
}

print_partner_center_values() {
  local host notification_url client_id principal_id tenant_id vault webhook_secret
  host=$(output FUNCTION_APP_HOST)
  notification_url=$(output NOTIFICATION_ENDPOINT_URL)
  client_id=$(output MANAGED_IDENTITY_CLIENT_ID)
  principal_id=$(output MANAGED_IDENTITY_PRINCIPAL_ID)
  tenant_id=$(output MANAGED_IDENTITY_TENANT_ID)
  vault=$(output KEY_VAULT_NAME)
  webhook_secret=$(output WEBHOOK_SECRET_NAME)
  cat <<EOF

Liutong is deployed: https://$host  (health: https://$host/api/health)

Partner Center > your offer > plan > Technical configuration
  Notification endpoint URL:      $notification_url?sig=<webhook secret>
                                  (ARM appends /resource; the secret is never printed here. Read it with
                                   az keyvault secret show --vault-name $vault --name $webhook_secret --query value -o tsv
                                   which needs the Key Vault Secrets User role on the vault.)
  Microsoft Entra tenant ID:      $tenant_id
  Microsoft Entra application ID: $client_id   (the service's managed identity, for metering)
  Authorizations:                 principal ID $principal_id with the Reader role
                                  (lets the service read the customers' managed applications)

Liutong API app registration (customers' managed identities request tokens for it):
  App ID URI: ${LIUTONG_API_APP_ID_URI:-see your parameters file}   client ID: ${LIUTONG_API_CLIENT_ID:-see your parameters file}
EOF
}

main() {
  parse_arguments "$@"
  check_tools
  [[ $CODE_ONLY -eq 1 ]] || check_parameter_environment
  check_login
  mkdir -p "$DIST"
  if [[ $CODE_ONLY -eq 1 ]]; then
    load_last_outputs
  else
    ensure_resource_group
    deploy_infrastructure
  fi
  [[ $SKIP_CODE -eq 1 ]] || deploy_code
  print_partner_center_values
}

main "$@"

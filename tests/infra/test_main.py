"""main.bicep: app settings in step with local.settings.sample.json, wiring, names, outputs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra.bicep_ast import (
    BICEP_DIR,
    REPO,
    SAMPLE_SETTINGS,
    decorators,
    dotted,
    function,
    module,
    param,
    parse,
    union_args,
    variable,
)

MAIN = BICEP_DIR / "main.bicep"


@pytest.fixture(scope="module")
def main() -> dict[str, Any]:
    return parse(MAIN)


def sample_liutong_names() -> set[str]:
    # Read at test time: others add settings to the sample, and Bicep must follow.
    values = json.loads(SAMPLE_SETTINGS.read_text())["Values"]
    return {name for name in values if name.startswith("LIUTONG_")}


def test_every_liutong_setting_of_the_sample_is_set_in_azure_and_nothing_else(main: dict[str, Any]) -> None:
    tunable = set(variable(main, "tunableSettings"))
    wired = set(variable(main, "wiredSettings"))
    assert not tunable & wired, f"set twice: {sorted(tunable & wired)}"
    missing = sample_liutong_names() - (tunable | wired)
    stale = (tunable | wired) - sample_liutong_names()
    assert not missing, f"add these to tunableSettings (or wiredSettings) in infra/bicep/main.bicep: {sorted(missing)}"
    assert not stale, f"no longer in local.settings.sample.json, remove from main.bicep: {sorted(stale)}"


def test_the_function_app_gets_tunables_then_overrides_then_wired_settings(main: dict[str, Any]) -> None:
    service_settings = module(main, "modules/functionApp.bicep")["config"]["params"]["serviceSettings"]
    # Later arguments of union() win: overrides can tune, but never rewire storage, identity or secrets.
    assert union_args(service_settings) == ["tunableSettings", "settingOverrides", "wiredSettings"]
    assert param(main, "settingOverrides")["default"] == {}


def test_tunable_defaults_suit_public_azure(main: dict[str, Any]) -> None:
    tunable = variable(main, "tunableSettings")
    assert tunable["LIUTONG_ENTRA_AUTHORITY"] == "https://login.microsoftonline.com"
    assert tunable["LIUTONG_ENTRA_V1_ISSUER_HOST"] == "https://sts.windows.net"
    assert tunable["LIUTONG_ARM_ENDPOINT"] == "https://management.azure.com"
    assert tunable["LIUTONG_METERING_ENDPOINT"] == "https://marketplaceapi.microsoft.com"
    assert tunable["LIUTONG_ARM_CREDENTIAL"] == "managed_identity"
    # Every tunable is a literal string (app settings are strings), never an expression.
    assert all(isinstance(value, str) for value in tunable.values())


def test_wired_settings_use_identity_endpoints_and_key_vault(main: dict[str, Any]) -> None:
    wired = variable(main, "wiredSettings")
    assert wired["LIUTONG_STORAGE_CONNECTION_STRING"] == ""
    assert dotted(wired["LIUTONG_STORAGE_TABLE_ENDPOINT"]) == "storage.outputs.tableEndpoint"
    assert wired["LIUTONG_TABLE_PREFIX"] == "tablePrefix"
    assert dotted(wired["LIUTONG_MANAGED_IDENTITY_CLIENT_ID"]) == "identity.outputs.clientId"
    assert wired["LIUTONG_WEBHOOK_SECRET"] == "@Microsoft.KeyVault(SecretUri=${keyVault.outputs.webhookSecretUri})"
    assert dotted(wired["LIUTONG_KEY_VAULT_URL"]) == "keyVault.outputs.uri"
    assert wired["LIUTONG_MASTER_SECRET_NAME"] == "masterSecretName"
    assert wired["LIUTONG_MASTER_SECRET"] == ""
    assert wired["LIUTONG_API_APP_ID_URI"] == "apiAppIdUri"
    assert wired["LIUTONG_API_CLIENT_ID"] == "apiClientId"


def test_operator_specific_values_are_parameters_without_defaults(main: dict[str, Any]) -> None:
    for name in ("apiAppIdUri", "apiClientId"):
        assert param(main, name)["default"] is None


def test_secrets_come_from_new_guid_and_are_created_only_on_request(main: dict[str, Any]) -> None:
    for name in ("masterSecretSeed", "masterSecretSeed2", "webhookSecretSeed"):
        declaration = param(main, name)
        assert "secure" in decorators(declaration)
        function(declaration["default"], "new_guid")  # fails unless the default is newGuid()
    # Off by default: a plain redeploy must never replace a secret (deploy.sh turns them on when missing).
    assert param(main, "createMasterSecret")["default"] is False
    assert param(main, "createWebhookSecret")["default"] is False
    key_vault = module(main, "modules/keyVault.bicep")["config"]["params"]
    for name in ("createMasterSecret", "createWebhookSecret", "masterSecretSeed", "masterSecretSeed2",
                 "webhookSecretSeed", "masterSecretName", "webhookSecretName"):
        assert key_vault[name] == name


def test_the_tables_the_service_uses_are_created_with_the_prefix(main: dict[str, Any]) -> None:
    assert {"keys", "keyindex", "deployments", "audit"} <= set(variable(main, "serviceTables"))
    table_names = module(main, "modules/storage.bicep")["config"]["params"]["tableNames"]
    assert table_names["loop_type"]["detail"]["array_name"] == "serviceTables"
    assert table_names["config"] == "${tablePrefix}${table}"
    assert param(main, "tablePrefix")["default"] == "liutong"


def test_bicep_creates_only_tables_the_code_uses(main: dict[str, Any]) -> None:
    # The code creates any further tables itself (Storage Table Data Contributor allows it).
    from core.tables import TABLES

    assert set(variable(main, "serviceTables")) <= set(TABLES)


def test_names_come_from_abbreviations_and_the_resource_token(main: dict[str, Any]) -> None:
    abbreviations = json.loads((BICEP_DIR / "abbreviations.json").read_text())
    assert function(variable(main, "abbrs"), "load_json_content")["file_path"] == "abbreviations.json"
    function(variable(main, "resourceToken"), "to_lower")
    for key, name in variable(main, "names").items():
        assert "${resourceToken}" in name, f"{key} name is not unique per resource group: {name}"
        for used in re.findall(r"\$\{abbrs\.(\w+)\}", name):
            assert used in abbreviations, f"{used} is not in abbreviations.json"


def test_modules_get_the_names(main: dict[str, Any]) -> None:
    expected = {
        "modules/identity.bicep": {"name": "names.identity"},
        "modules/storage.bicep": {"name": "names.storage", "deploymentContainerName": "names.deploymentContainer"},
        "modules/keyVault.bicep": {"name": "names.keyVault"},
        "modules/monitoring.bicep": {"logAnalyticsName": "names.logAnalytics", "appInsightsName": "names.appInsights"},
        "modules/functionApp.bicep": {"planName": "names.plan", "appName": "names.functionApp"},
    }
    for path, params in expected.items():
        given = module(main, path)["config"]["params"]
        for key, value in params.items():
            assert dotted(given[key]) == value, f"{path}: {key}"


def test_the_function_app_waits_for_its_roles(main: dict[str, Any]) -> None:
    assert module(main, "modules/functionApp.bicep")["config"]["dependsOn"] == ["roles"]


REQUIRED_OUTPUTS = {
    "FUNCTION_APP_NAME",
    "FUNCTION_APP_HOST",
    "NOTIFICATION_ENDPOINT_URL",
    "MANAGED_IDENTITY_CLIENT_ID",
    "MANAGED_IDENTITY_TENANT_ID",
    "MANAGED_IDENTITY_PRINCIPAL_ID",
    "KEY_VAULT_NAME",
    "WEBHOOK_SECRET_NAME",
}


def test_outputs_are_upper_snake_and_complete(main: dict[str, Any]) -> None:
    outputs = main["outputs"]
    assert set(outputs) >= REQUIRED_OUTPUTS
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in outputs)


def test_the_notification_url_output_carries_no_secret(main: dict[str, Any]) -> None:
    url = main["outputs"]["NOTIFICATION_ENDPOINT_URL"]["value"]
    assert url == "https://${functionApp.outputs.defaultHostName}/api/marketplace"
    assert not re.search(r"[?&]sig=", json.dumps(main["outputs"]))
    assert "secure" not in {d for output in main["outputs"].values() for d in decorators(output)}


def test_identity_outputs_come_from_the_identity(main: dict[str, Any]) -> None:
    outputs = main["outputs"]
    assert dotted(outputs["MANAGED_IDENTITY_CLIENT_ID"]["value"]) == "identity.outputs.clientId"
    assert dotted(outputs["MANAGED_IDENTITY_TENANT_ID"]["value"]) == "identity.outputs.tenantId"
    assert dotted(outputs["MANAGED_IDENTITY_PRINCIPAL_ID"]["value"]) == "identity.outputs.principalId"


def bicepparam_assignments() -> dict[str, str]:
    text = (BICEP_DIR / "main.bicepparam").read_text()
    assert re.search(r"^using './main.bicep'$", text, re.MULTILINE)
    return dict(re.findall(r"^param (\w+) = (.+)$", text, re.MULTILINE))


def test_the_parameters_file_sets_only_known_parameters_and_every_required_one(main: dict[str, Any]) -> None:
    assigned = bicepparam_assignments()
    assert set(assigned) <= set(main["parameters"])
    required = {name for name, p in main["parameters"].items() if p["default"] is None}
    assert required <= set(assigned), f"main.bicepparam must set {sorted(required - set(assigned))}"


def test_the_parameters_file_reads_operator_values_from_the_environment() -> None:
    assigned = bicepparam_assignments()
    assert assigned["apiAppIdUri"] == "readEnvironmentVariable('LIUTONG_API_APP_ID_URI')"
    assert assigned["apiClientId"] == "readEnvironmentVariable('LIUTONG_API_CLIENT_ID')"
    # Secrets are generated only when deploy.sh (or the operator) says so; never by default.
    assert assigned["createMasterSecret"] == "bool(readEnvironmentVariable('LIUTONG_CREATE_MASTER_SECRET', 'false'))"
    assert assigned["createWebhookSecret"] == "bool(readEnvironmentVariable('LIUTONG_CREATE_WEBHOOK_SECRET', 'false'))"


def test_deploy_script_uses_the_template_secret_names(main: dict[str, Any]) -> None:
    script = (REPO / "scripts" / "deploy.sh").read_text()
    assert f'MASTER_SECRET_NAME="{param(main, "masterSecretName")["default"]}"' in script
    assert f'WEBHOOK_SECRET_NAME="{param(main, "webhookSecretName")["default"]}"' in script

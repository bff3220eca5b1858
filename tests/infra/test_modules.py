"""The modules under infra/bicep/modules: security properties and role assignments, read from the
parsed templates."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infra.bicep_ast import (
    BICEP_DIR,
    INFRA,
    MODULES,
    body,
    condition,
    dotted,
    function,
    module,
    one,
    param,
    parse,
    resources,
    union_args,
    variable,
)


def load(name: str) -> dict[str, Any]:
    return parse(MODULES / name)


# --- no keys or connection strings anywhere -------------------------------------------------------

FORBIDDEN = {
    "listKeys(": "reads account keys",
    "listConnectionStrings(": "reads connection strings",
    "AccountKey=": "an account key in a connection string",
    "DefaultEndpointsProtocol=": "a storage connection string",
    "SharedAccessKey": "a shared access key",
    "primaryKey": "a key property",
    "StorageAccountConnectionString": "connection-string authentication for deployment storage",
}


@pytest.mark.parametrize("path", sorted(INFRA.rglob("*.bicep*")), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_no_keys_or_connection_strings_in_templates(path: Any) -> None:
    text = path.read_text()
    found = [f"{needle} ({why})" for needle, why in FORBIDDEN.items() if needle in text]
    assert not found, f"{path.name}: {found}"


def app_settings() -> dict[str, Any]:
    doc = load("functionApp.bicep")
    config = resources(doc, "Microsoft.Web/sites/config")
    assert len(config) == 1
    settings = body(next(iter(config.values())))
    assert settings["name"] == "appsettings"
    assert union_args(settings["properties"]) == ["hostSettings", "serviceSettings"]
    host: dict[str, Any] = variable(doc, "hostSettings")
    return host


def test_host_storage_uses_the_identity_not_a_connection_string() -> None:
    host = app_settings()
    assert "AzureWebJobsStorage" not in host
    assert host["AzureWebJobsStorage__accountName"] == "storageAccountName"
    assert host["AzureWebJobsStorage__credential"] == "managedidentity"
    assert host["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert host["AZURE_CLIENT_ID"] == "identityClientId"


def test_no_setting_holds_a_connection_string_except_application_insights() -> None:
    # The Application Insights "connection string" is an ingestion address + instrumentation key, not
    # a credential: the component has local auth disabled, so ingestion needs the identity's token.
    host = app_settings()
    wired = variable(parse(BICEP_DIR / "main.bicep"), "wiredSettings")
    for name, value in {**host, **wired}.items():
        if "CONNECTION_STRING" in name.upper() and name != "APPLICATIONINSIGHTS_CONNECTION_STRING":
            assert value == "", f"{name} must be empty in Azure"
    assert host["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"


def test_flex_app_settings() -> None:
    host = app_settings()
    assert host["PYTHON_ENABLE_INIT_INDEXING"] == "1"
    # Settings Flex Consumption rejects or ignores (functionAppConfig replaces them).
    for deprecated in ("FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
                       "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTSHARE"):
        assert deprecated not in host
    # The worker's own OpenTelemetry export would record full request URLs (with ?sig=): keep it off.
    assert not any(name.startswith("PYTHON_APPLICATIONINSIGHTS") for name in host)


# --- function app ----------------------------------------------------------------------------------


def test_flex_consumption_plan() -> None:
    plan = one(load("functionApp.bicep"), "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True


def test_function_app_site() -> None:
    site = one(load("functionApp.bicep"), "Microsoft.Web/sites")
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    assert list(site["identity"]["userAssignedIdentities"]) == ["'${identityId}'"]
    properties = site["properties"]
    assert properties["httpsOnly"] is True
    assert properties["keyVaultReferenceIdentity"] == "identityId"
    assert properties["siteConfig"]["minTlsVersion"] == "1.2"
    assert properties["siteConfig"]["ftpsState"] == "Disabled"
    config = properties["functionAppConfig"]
    assert config["deployment"]["storage"] == {
        "type": "blobContainer",
        "value": "deploymentContainerUrl",
        "authentication": {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"},
    }
    assert config["runtime"] == {"name": "python", "version": "pythonVersion"}
    scale = config["scaleAndConcurrency"]
    assert scale["instanceMemoryMB"] == "instanceMemoryMB"
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"
    assert scale["triggers"]["http"]["perInstanceConcurrency"] == "httpPerInstanceConcurrency"


def test_function_app_parameters() -> None:
    doc = load("functionApp.bicep")
    assert param(doc, "pythonVersion")["default"] == "3.11"
    assert param(doc, "instanceMemoryMB")["default"] in (512, 2048, 4096)
    assert isinstance(param(doc, "maximumInstanceCount")["default"], int)
    assert isinstance(param(doc, "httpPerInstanceConcurrency")["default"], int)


def test_publishing_passwords_are_disabled() -> None:
    policies = resources(load("functionApp.bicep"), "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {body(p)["name"]: body(p)["properties"]["allow"] for p in policies.values()} == {"scm": False, "ftp": False}


# --- storage ---------------------------------------------------------------------------------------


def test_storage_account_refuses_shared_keys_and_plain_http() -> None:
    account = one(load("storage.bicep"), "Microsoft.Storage/storageAccounts")
    properties = account["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["defaultToOAuthAuthentication"] is True
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["supportsHttpsTrafficOnly"] is True


def test_storage_has_the_deployment_container_and_the_tables() -> None:
    doc = load("storage.bicep")
    container = one(doc, "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert container["name"] == "deploymentContainerName"
    assert container["properties"]["publicAccess"] == "None"
    tables = resources(doc, "Microsoft.Storage/storageAccounts/tableServices/tables")
    (table,) = tables.values()
    assert table["config"]["loop_type"]["detail"]["array_name"] == "tableNames"
    assert body(table)["name"] == "tableName"
    assert doc["outputs"]["tableEndpoint"]["value"] == {
        "operator": {"type": "property_accessor", "operands": {"operand_1": "storage", "operand_2": {
            "operator": {"type": "property_accessor", "operands": {"operand_1": "properties", "operand_2": {
                "operator": {"type": "property_accessor", "operands": {
                    "operand_1": "primaryEndpoints", "operand_2": "table"}}}}}}}}
    }


# --- key vault -------------------------------------------------------------------------------------


def test_key_vault_uses_rbac_soft_delete_and_purge_protection() -> None:
    vault = one(load("keyVault.bicep"), "Microsoft.KeyVault/vaults")
    properties = vault["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enableSoftDelete"] is True
    assert properties["enablePurgeProtection"] is True
    assert "accessPolicies" not in properties


def test_secrets_are_generated_not_literal_and_only_when_asked() -> None:
    doc = load("keyVault.bicep")
    uses = {name: m for name, m in doc["modules"].items() if m["detail"]["path"] == "secret.bicep"}
    assert set(uses) == {"masterSecret", "webhookSecret"}
    assert condition(uses["masterSecret"]) == "createMasterSecret"
    assert condition(uses["webhookSecret"]) == "createWebhookSecret"
    master_value = body(uses["masterSecret"])["params"]["value"]
    webhook_value = body(uses["webhookSecret"])["params"]["value"]
    assert function(master_value, "replace") == {
        "original_string": "${masterSecretSeed}${masterSecretSeed2}", "old_string": "-", "new_string": ""}
    assert function(webhook_value, "replace") == {
        "original_string": "webhookSecretSeed", "old_string": "-", "new_string": ""}
    for seed in ("masterSecretSeed", "masterSecretSeed2", "webhookSecretSeed"):
        assert param(doc, seed)["default"] is None  # main.bicep supplies newGuid()


def test_the_webhook_secret_reference_is_versionless() -> None:
    output = load("keyVault.bicep")["outputs"]["webhookSecretUri"]["value"]
    assert output == "${vault.properties.vaultUri}secrets/${webhookSecretName}"


def test_a_secret_has_a_content_type_and_a_secure_value() -> None:
    doc = load("secret.bicep")
    secret = one(doc, "Microsoft.KeyVault/vaults/secrets")
    assert secret["properties"] == {"contentType": "text/plain", "value": "value"}
    assert {d["type"] for d in param(doc, "value")["decorators"]} == {"secure"}


# --- monitoring ------------------------------------------------------------------------------------


def test_application_insights_and_log_analytics_refuse_local_auth() -> None:
    doc = load("monitoring.bicep")
    component = one(doc, "Microsoft.Insights/components")
    assert component["properties"]["DisableLocalAuth"] is True
    assert dotted(component["properties"]["WorkspaceResourceId"]) == "workspace.id"
    workspace = one(doc, "Microsoft.OperationalInsights/workspaces")
    assert workspace["properties"]["features"]["disableLocalAuth"] is True


# --- role assignments ------------------------------------------------------------------------------

BUILT_IN_ROLES = {
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "keyVaultSecretsUser": "4633458b-17de-408a-b874-0445c86b69e6",
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "cognitiveServicesOpenAIUser": "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
}


def assignment_role(assignment: dict[str, Any], roles_var: str = "roles") -> str:
    """The role-map key an assignment uses, after checking its name, role ID and principal."""
    config = body(assignment)
    definition = function(config["properties"]["roleDefinitionId"], "subscription_resource_id")
    assert definition["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    role = dotted(definition["resource_name_1"])
    assert role is not None and role.startswith(f"{roles_var}."), role
    name = function(config["name"], "guid")  # deterministic names
    assert dotted(name["base_string"]) == f"{config['scope']}.id"
    assert dotted(name["extra_string_2"]) == role
    assert config["properties"]["principalType"] == "ServicePrincipal"
    return role.split(".", 1)[1]


def test_one_role_map_of_built_in_role_ids() -> None:
    assert variable(load("roleAssignments.bicep"), "roles") == BUILT_IN_ROLES


def test_the_identity_gets_exactly_these_roles_at_these_scopes() -> None:
    doc = load("roleAssignments.bicep")
    assignments = resources(doc, "Microsoft.Authorization/roleAssignments")
    granted = set()
    for assignment in assignments.values():
        config = body(assignment)
        assert config["properties"]["principalId"] == "principalId"
        assert function(config["name"], "guid")["extra_string_1"] == "principalId"
        granted.add((config["scope"], assignment_role(assignment), condition(assignment)))
    assert granted == {
        ("storage", "storageBlobDataOwner", None),
        ("storage", "storageTableDataContributor", None),
        ("storage", "storageQueueDataContributor", "useQueues"),
        ("vault", "keyVaultSecretsUser", None),
        ("appInsights", "monitoringMetricsPublisher", None),
    }
    scopes = {name: body(r)["name"] for name, r in resources(doc, existing=True).items()}
    assert scopes == {"storage": "storageAccountName", "vault": "keyVaultName", "appInsights": "appInsightsName"}


def test_azure_openai_user_only_when_an_account_is_given() -> None:
    doc = load("roleAssignments.bicep")
    openai = module(doc, "openAiRoleAssignment.bicep")
    assert openai["config"]["condition"] == {"operator": {"type": "not", "operands": {
        "bool_value": {"function": {"type": "empty", "parameters": {"item_to_test": "openAiAccountId"}}}}}}
    params = body(openai)["params"]
    assert dotted(params["roleDefinitionGuid"]) == "roles.cognitiveServicesOpenAIUser"
    assert params["principalId"] == "principalId"
    inner = resources(load("openAiRoleAssignment.bicep"), "Microsoft.Authorization/roleAssignments")
    (assignment,) = inner.values()
    config = body(assignment)
    assert config["scope"] == "account"
    assert config["properties"]["principalId"] == "principalId"
    assert config["properties"]["principalType"] == "ServicePrincipal"
    assert function(config["properties"]["roleDefinitionId"], "subscription_resource_id")[
        "resource_name_1"] == "roleDefinitionGuid"


def test_main_grants_roles_to_the_service_identity() -> None:
    params = module(parse(BICEP_DIR / "main.bicep"), "modules/roleAssignments.bicep")["config"]["params"]
    assert dotted(params["principalId"]) == "identity.outputs.principalId"
    assert dotted(params["storageAccountName"]) == "storage.outputs.name"
    assert dotted(params["keyVaultName"]) == "keyVault.outputs.name"
    assert dotted(params["appInsightsName"]) == "monitoring.outputs.appInsightsName"


def test_every_module_is_small_and_commented() -> None:
    for path in MODULES.glob("*.bicep"):
        text = path.read_text()
        assert text.startswith("//"), f"{path.name} should open with a comment saying what it is"
        assert len(text.splitlines()) <= 200, f"{path.name} is getting large: split it"
        assert not re.search(r"\t", text), f"{path.name} uses tabs"

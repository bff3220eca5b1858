"""infra/marketplace: the consumer template, createUiDefinition.json and `make package`.

No published schema for createUiDefinition can be vendored here, so its structure is checked
against the documented rules (Learn: "CreateUiDefinition.json for Azure managed application's
create experience" and the element reference)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep_ast import MARKETPLACE, REPO, body, dotted, function, one, parse, resources, variable

sys.path.insert(0, str(REPO / "scripts"))
import package_marketplace

TEMPLATE = MARKETPLACE / "mainTemplate.bicep"
UI = MARKETPLACE / "createUiDefinition.json"
FAKE_BICEP = Path(__file__).with_name("fake_bicep.py")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return parse(TEMPLATE)


@pytest.fixture(scope="module")
def ui() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(UI.read_text())
    return document


# --- the consumer in the managed resource group ------------------------------------------------------


def actions(template: dict[str, Any]) -> dict[str, Any]:
    workflow = one(template, "Microsoft.Logic/workflows")
    found: dict[str, Any] = workflow["properties"]["definition"]["actions"]
    return found


def test_the_application_id_is_the_managed_resource_groups_manager(template: dict[str, Any]) -> None:
    function(variable(template, "applicationId"), "resource_group")
    assert template["variables"]["applicationId"]["value"]["function"]["property_name"] == "managedBy"


def test_the_consumer_has_its_own_system_identity(template: dict[str, Any]) -> None:
    workflow = one(template, "Microsoft.Logic/workflows")
    assert workflow["identity"] == {"type": "SystemAssigned"}
    trigger = workflow["properties"]["definition"]["triggers"]["Every_few_hours"]
    assert trigger["type"] == "Recurrence"
    assert trigger["recurrence"] == {"frequency": "Hour", "interval": "refreshHours"}


def test_it_gets_the_applications_token_for_liutongs_audience(template: dict[str, Any]) -> None:
    get_token = actions(template)["Get_application_token"]["inputs"]
    assert get_token["method"] == "POST"
    assert get_token["uri"] == "${armEndpoint}${skip(applicationId, 1)}/listTokens?api-version=2019-07-01"
    assert get_token["body"] == {"authorizationAudience": "liutongAudience"}
    assert get_token["authentication"] == {"type": "ManagedServiceIdentity", "audience": "armEndpoint"}


def test_it_exchanges_the_token_for_the_key(template: dict[str, Any]) -> None:
    exchange = actions(template)["Exchange_key"]
    assert exchange["runAfter"] == {"Get_application_token": ["Succeeded"]}
    inputs = exchange["inputs"]
    assert inputs["uri"] == "${liutongServiceUrl}/api/provisioning/key"
    assert inputs["body"] == {"application_id": "applicationId"}
    assert "Bearer" in inputs["headers"]["Authorization"]
    assert "Get_application_token" in inputs["headers"]["Authorization"]


def test_it_keeps_the_key_in_the_managed_key_vault(template: dict[str, Any]) -> None:
    store = actions(template)["Store_key"]
    assert store["runAfter"] == {"Exchange_key": ["Succeeded"]}
    inputs = store["inputs"]
    assert inputs["method"] == "PUT"
    assert inputs["uri"].startswith("${vault.properties.vaultUri}secrets/${apiKeySecretName}?api-version=")
    assert inputs["authentication"] == {"type": "ManagedServiceIdentity", "audience": "https://vault.azure.net"}


def test_tokens_and_keys_stay_out_of_the_run_history(template: dict[str, Any]) -> None:
    secure = {name: set(action["runtimeConfiguration"]["secureData"]["properties"])
              for name, action in actions(template).items()}
    assert "outputs" in secure["Get_application_token"]
    assert {"inputs", "outputs"} <= secure["Exchange_key"]
    assert {"inputs", "outputs"} <= secure["Store_key"]  # Key Vault echoes the value it stored


def test_the_consumers_vault_is_protected(template: dict[str, Any]) -> None:
    vault = one(template, "Microsoft.KeyVault/vaults")["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["enablePurgeProtection"] is True
    assert vault["enableSoftDelete"] is True


def test_the_consumer_may_write_the_key_cross_tenant(template: dict[str, Any]) -> None:
    (assignment,) = resources(template, "Microsoft.Authorization/roleAssignments").values()
    config = body(assignment)
    assert variable(template, "roles") == {"keyVaultSecretsOfficer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"}
    assert dotted(function(config["properties"]["roleDefinitionId"], "subscription_resource_id")[
        "resource_name_1"]) == "roles.keyVaultSecretsOfficer"
    assert config["scope"] == "vault"
    assert dotted(config["properties"]["principalId"]) == "keyFetcher.identity.principalId"
    assert config["properties"]["principalType"] == "ServicePrincipal"
    # Marketplace role assignments run in the publisher's tenant: they must name the identity's resource.
    delegated = config["properties"]["delegatedManagedIdentityResourceId"]["operator"]
    assert delegated["type"] == "conditional"
    assert delegated["operands"]["condition"] == "crossTenant"
    assert dotted(delegated["operands"]["true_value"]) == "keyFetcher.id"
    assert dotted(function(config["name"], "guid")["base_string"]) == "vault.id"


def test_publisher_constants_have_no_default_in_the_source(template: dict[str, Any]) -> None:
    # `make package` writes them; a package built without them would not deploy.
    for name in ("liutongServiceUrl", "liutongAudience"):
        assert template["parameters"][name]["default"] is None


def test_outputs_tell_the_customer_what_to_grant(template: dict[str, Any]) -> None:
    assert {"keyVaultUri", "apiKeySecretName", "keyFetcherPrincipalId", "applicationId"} <= set(template["outputs"])


# --- createUiDefinition.json ---------------------------------------------------------------------------

ELEMENT_TYPES = {
    "Microsoft.Common.InfoBox": {"name", "type", "options"},
    "Microsoft.Common.CheckBox": {"name", "type", "label"},
    "Microsoft.Common.TextBox": {"name", "type", "label"},
    "Microsoft.Common.DropDown": {"name", "type", "label", "constraints"},
    "Microsoft.Common.TextBlock": {"name", "type", "options"},
    "Microsoft.Common.Section": {"name", "type", "label", "elements"},
}


def test_ui_header(ui: dict[str, Any]) -> None:
    assert ui["handler"] == "Microsoft.Azure.CreateUIDef"
    assert ui["version"] == "0.1.2-preview"
    # The version in $schema must match `version`.
    assert ui["$schema"] == "https://schema.management.azure.com/schemas/0.1.2-preview/CreateUIDefinition.MultiVm.json#"
    assert set(ui) <= {"$schema", "handler", "version", "parameters"}


def test_ui_parameters(ui: dict[str, Any]) -> None:
    parameters = ui["parameters"]
    assert set(parameters) <= {"config", "basics", "steps", "outputs", "resourceTypes"}
    assert {"basics", "steps", "outputs"} <= set(parameters)
    assert isinstance(parameters["basics"], list) and isinstance(parameters["steps"], list)


def all_elements(ui: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [("basics", element) for element in ui["parameters"]["basics"]]
    for step in ui["parameters"]["steps"]:
        found += [(step["name"], element) for element in step["elements"]]
    return found


def test_ui_steps_and_elements(ui: dict[str, Any]) -> None:
    step_names = [step["name"] for step in ui["parameters"]["steps"]]
    assert len(step_names) == len(set(step_names)) and "basics" not in step_names
    for step in ui["parameters"]["steps"]:
        assert {"name", "label", "elements"} <= set(step)
        assert set(step["subLabel"]) == {"preValidation", "postValidation"}
        names = [element["name"] for element in step["elements"]]
        assert len(names) == len(set(names)), f"duplicate element names in {step['name']}"
    for _, element in all_elements(ui):
        assert element["type"] in ELEMENT_TYPES, f"unchecked element type {element['type']}: add its rules here"
        assert ELEMENT_TYPES[element["type"]] <= set(element), element["name"]
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", element["name"])
        if element["type"] == "Microsoft.Common.InfoBox":
            assert element["options"]["icon"] in {"None", "Info", "Warning", "Error"}
            assert element["options"]["text"]


def test_ui_references_name_existing_elements(ui: dict[str, Any]) -> None:
    known = {(step, element["name"]) for step, element in all_elements(ui)}
    text = json.dumps(ui)
    for step, element in re.findall(r"steps\('(\w+)'\)\.(\w+)", text):
        assert (step, element) in known, f"steps('{step}').{element} names nothing"
    for element in re.findall(r"basics\('(\w+)'\)", text):
        assert ("basics", element) in known


def test_ui_outputs_are_template_parameters_and_give_the_application_its_identity(
    ui: dict[str, Any], template: dict[str, Any]
) -> None:
    outputs = ui["parameters"]["outputs"]
    assert outputs["managedIdentity"] == {"Type": "SystemAssigned"}
    template_parameters = set(template["parameters"])
    assert set(outputs) - package_marketplace.PORTAL_OUTPUTS <= template_parameters
    assert outputs["location"] == "[location()]"
    # Every parameter without a default is either an output or a publisher constant `make package` sets.
    required = {name for name, p in template["parameters"].items() if p["default"] is None}
    assert required <= set(outputs) | {"liutongServiceUrl", "liutongAudience"}


def test_ui_asks_for_the_service_principal_prerequisite(ui: dict[str, Any]) -> None:
    elements = dict((element["name"], element) for _, element in all_elements(ui))
    assert elements["servicePrincipalReady"]["constraints"]["required"] is True
    assert package_marketplace.CLIENT_ID_PLACEHOLDER in elements["servicePrincipalInfo"]["options"]["text"]


# --- make package --------------------------------------------------------------------------------------


@pytest.fixture
def fake_bicep(tmp_path: Path) -> Path:
    wrapper = tmp_path / "bicep"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_BICEP}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def test_package_has_the_two_files_at_its_root_with_publisher_values(tmp_path: Path, fake_bicep: Path) -> None:
    archive = package_marketplace.build(
        service_url="https://func-liutong.azurewebsites.net/", audience="api://liutong",
        api_client_id="6c1f0a0e-5d7b-4f4e-9d55-4c8c0f1a7e21", out=tmp_path / "out", bicep=str(fake_bicep),
    )
    with zipfile.ZipFile(archive) as package:
        assert sorted(package.namelist()) == ["createUiDefinition.json", "mainTemplate.json"]
        main_template = json.loads(package.read("mainTemplate.json"))
        ui = json.loads(package.read("createUiDefinition.json"))
    assert main_template["parameters"]["liutongServiceUrl"]["defaultValue"] == "https://func-liutong.azurewebsites.net"
    assert main_template["parameters"]["liutongAudience"]["defaultValue"] == "api://liutong"
    assert "az ad sp create --id 6c1f0a0e-5d7b-4f4e-9d55-4c8c0f1a7e21" in json.dumps(ui)
    assert package_marketplace.CLIENT_ID_PLACEHOLDER not in json.dumps(ui)


def test_package_is_reproducible(tmp_path: Path, fake_bicep: Path) -> None:
    def build(out: str) -> bytes:
        return package_marketplace.build(service_url="https://x.example", audience="api://a", api_client_id="c",
                                         out=tmp_path / out, bicep=str(fake_bicep)).read_bytes()

    assert build("one") == build("two")


def test_package_needs_the_publisher_values(tmp_path: Path, fake_bicep: Path) -> None:
    with pytest.raises(package_marketplace.PackageError, match="service URL"):
        package_marketplace.build(service_url="", audience="api://a", api_client_id="c", out=tmp_path,
                                  bicep=str(fake_bicep))
    with pytest.raises(package_marketplace.PackageError, match="https://"):
        package_marketplace.build(service_url="http://x", audience="api://a", api_client_id="c", out=tmp_path,
                                  bicep=str(fake_bicep))


def test_package_without_a_bicep_compiler_says_so(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "package_marketplace.py"), "--service-url", "https://x.example",
         "--audience", "api://a", "--api-client-id", "c", "--out", str(tmp_path)],
        capture_output=True, text=True, env={"PATH": str(tmp_path)}, check=False,
    )
    assert completed.returncode == 2
    assert "no Bicep compiler found" in completed.stderr


def test_package_refuses_ui_outputs_that_are_not_parameters() -> None:
    template = {"parameters": {"location": {"type": "string"}}}
    ui = {"parameters": {"outputs": {"location": "[location()]", "nope": "x", "managedIdentity": {}}}}
    with pytest.raises(package_marketplace.PackageError, match="nope"):
        package_marketplace.check_outputs_match(template, ui)
    with pytest.raises(package_marketplace.PackageError, match="size"):
        package_marketplace.check_outputs_match({"parameters": {"size": {"type": "int"}}},
                                                {"parameters": {"outputs": {}}})

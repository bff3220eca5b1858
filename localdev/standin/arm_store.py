"""ARM resources held by the stand-in: managed applications and user-assigned identities.

PUT fills in what ARM would (ids, identity principal/tenant, billing resourceUsageId, provisioning state)
and registers the resource's identities so the managed-identity endpoint can issue tokens as them.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from localdev.standin.identities import IdentityRegistry, ManagedIdentity, stable_guid


class StandinView(Protocol):
    """What the ARM store reads of the stand-in's state (localdev.standin.state.StandinState)."""

    identities: IdentityRegistry

    @property
    def config(self) -> Any: ...

    def tenant_for_subscription(self, subscription: str) -> str: ...

APPLICATIONS = "Microsoft.Solutions/applications"
USER_ASSIGNED_IDENTITIES = "Microsoft.ManagedIdentity/userAssignedIdentities"
_KINDS = ("MarketPlace", "ServiceCatalog")
_PLAN_FIELDS = ("name", "product", "publisher", "version")
_IDENTITY_TYPES = {
    frozenset({"none"}): "None",
    frozenset({"systemassigned"}): "SystemAssigned",
    frozenset({"userassigned"}): "UserAssigned",
    frozenset({"systemassigned", "userassigned"}): "SystemAssigned, UserAssigned",
}


class ArmError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(message: str, code: str = "InvalidRequestContent") -> ArmError:
    return ArmError(400, code, message)


@dataclass(frozen=True)
class ResourceRef:
    subscription: str
    resource_group: str
    resource_type: str  # canonical casing, e.g. Microsoft.Solutions/applications
    name: str

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/{self.resource_type}/{self.name}"
        )

    @property
    def key(self) -> str:
        return self.id.lower()


class ArmStore:
    def __init__(self, state: StandinView) -> None:
        self._state = state
        self._lock = threading.RLock()
        self._resources: dict[str, dict[str, Any]] = {}

    def get(self, ref: ResourceRef) -> dict[str, Any] | None:
        return self.get_by_id(ref.id)

    def get_by_id(self, resource_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._resources.get(resource_id.lower())
            return copy.deepcopy(found) if found is not None else None

    def delete(self, ref: ResourceRef) -> bool:
        with self._lock:
            self._state.identities.unregister_owner(ref.id)
            return self._resources.pop(ref.key, None) is not None

    def put_application(
        self, ref: ResourceRef, body: Any, caller: Mapping[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        spec = _validated_application(body)
        with self._lock:
            existing = self._resources.get(ref.key)
            resource_id = existing["id"] if existing else ref.id
            self._state.identities.unregister_owner(resource_id)
            identity = self._application_identity(resource_id, ref.subscription, spec.get("identity"))
            resource = _application_resource(resource_id, ref.name, spec, identity, existing)
            properties = resource["properties"]
            properties["publisherTenantId"] = self._state.config.publisher_tenant_id
            who = {"oid": caller.get("oid"), "applicationId": caller.get("appid") or caller.get("azp")}
            properties["createdBy"] = existing["properties"]["createdBy"] if existing else who
            properties["updatedBy"] = who
            self._resources[ref.key] = resource
            return copy.deepcopy(resource), existing is None

    def put_user_assigned_identity(self, ref: ResourceRef, body: Any) -> tuple[dict[str, Any], bool]:
        if not isinstance(body, dict) or not isinstance(body.get("location"), str):
            raise bad_request("The 'location' property is required.", "LocationRequired")
        with self._lock:
            existing = self._resources.get(ref.key)
            resource_id = existing["id"] if existing else ref.id
            knobs = body.get("properties") or {}
            tenant = knobs.get("tenantId") or self._state.tenant_for_subscription(ref.subscription)
            registry = self._state.identities
            # An application may already have referenced this identity; keep the IDs it reported.
            identity = registry.by_resource_id(resource_id) or _derived_uami(resource_id, tenant)
            if existing is None:
                registry.register(identity, owner=resource_id)
            resource = {
                "id": resource_id,
                "name": ref.name,
                "type": USER_ASSIGNED_IDENTITIES,
                "location": body["location"],
                "tags": body.get("tags") or {},
                "properties": {
                    "tenantId": identity.tenant_id,
                    "principalId": identity.principal_id,
                    "clientId": identity.client_id,
                },
            }
            self._resources[ref.key] = resource
            return copy.deepcopy(resource), existing is None

    def _application_identity(
        self, app_id: str, subscription: str, spec: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        if spec is None:
            return None
        identity_type = _IDENTITY_TYPES[_identity_kinds(spec)]
        tenant = spec.get("tenantId") or self._state.tenant_for_subscription(subscription)
        result: dict[str, Any] = {"type": identity_type}
        registry = self._state.identities
        if "SystemAssigned" in identity_type:
            principal = spec.get("principalId") or stable_guid("application-principal", app_id)
            client = stable_guid("application-client", app_id)
            registry.register(ManagedIdentity(principal, client, tenant, app_id), owner=app_id)
            result |= {"principalId": principal, "tenantId": tenant}
        if "UserAssigned" in identity_type:
            assigned: dict[str, Any] = {}
            for uami_id in spec["userAssignedIdentities"]:
                uami = registry.by_resource_id(uami_id)
                if uami is None:
                    uami = registry.register(_derived_uami(uami_id, tenant), owner=app_id)
                assigned[uami_id] = {
                    "principalId": uami.principal_id,
                    "clientId": uami.client_id,
                    "tenantId": uami.tenant_id,
                }
            result["userAssignedIdentities"] = assigned
        return result


def _derived_uami(resource_id: str, tenant: str) -> ManagedIdentity:
    return ManagedIdentity(
        principal_id=stable_guid("uami-principal", resource_id),
        client_id=stable_guid("uami-client", resource_id),
        tenant_id=tenant,
        resource_id=resource_id,
    )


def _identity_kinds(spec: Mapping[str, Any]) -> frozenset[str]:
    text = spec.get("type")
    return (
        frozenset(part.strip().lower() for part in text.split(",")) if isinstance(text, str) else frozenset()
    )


def _validated_application(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("The request content was invalid and could not be deserialized.")
    if not isinstance(body.get("location"), str):
        raise bad_request("The 'location' property is required.", "LocationRequired")
    if body.get("kind") not in _KINDS:
        raise bad_request(f"The 'kind' property must be one of {', '.join(_KINDS)}.")
    properties = body.get("properties")
    if not isinstance(properties, dict) or not isinstance(properties.get("managedResourceGroupId"), str):
        raise bad_request("The 'properties.managedResourceGroupId' property is required.")
    plan = body.get("plan")
    if body["kind"] == "MarketPlace" and not (
        isinstance(plan, dict) and all(isinstance(plan.get(name), str) for name in _PLAN_FIELDS)
    ):
        raise bad_request(
            "A MarketPlace application needs plan.name, plan.product, plan.publisher, plan.version."
        )
    identity = body.get("identity")
    if identity is not None:
        _validate_identity(identity)
    return body


def _validate_identity(identity: Any) -> None:
    if not isinstance(identity, dict) or _identity_kinds(identity) not in _IDENTITY_TYPES:
        raise bad_request(
            "identity.type must be SystemAssigned, UserAssigned, 'SystemAssigned,UserAssigned' or None."
        )
    assigned = identity.get("userAssignedIdentities")
    if "userassigned" in _identity_kinds(identity) and not (isinstance(assigned, dict) and assigned):
        raise bad_request("identity.userAssignedIdentities must list at least one identity for UserAssigned.")
    for knob in ("tenantId", "principalId"):
        if knob in identity and not isinstance(identity[knob], str):
            raise bad_request(f"identity.{knob} must be a string.")


def _application_resource(
    resource_id: str,
    name: str,
    spec: dict[str, Any],
    identity: dict[str, Any] | None,
    existing: dict[str, Any] | None,
) -> dict[str, Any]:
    properties = copy.deepcopy(spec["properties"])
    billing = properties.get("billingDetails") or {}
    previous_usage_id = existing["properties"]["billingDetails"]["resourceUsageId"] if existing else None
    usage_id = (
        billing.get("resourceUsageId") or previous_usage_id or stable_guid("resource-usage", resource_id)
    )
    properties |= {
        "provisioningState": "Succeeded",
        "billingDetails": {"resourceUsageId": usage_id},
        "parameters": properties.get("parameters") or {},
        "outputs": properties.get("outputs") or {},
    }
    resource: dict[str, Any] = {
        "id": resource_id,
        "name": name,
        "type": APPLICATIONS,
        "location": spec["location"],
        "kind": spec["kind"],
    }
    if isinstance(spec.get("plan"), dict):
        resource["plan"] = copy.deepcopy(spec["plan"])
    if identity is not None:
        resource["identity"] = identity
    if spec.get("managedBy"):
        resource["managedBy"] = spec["managedBy"]
    if spec.get("tags"):
        resource["tags"] = copy.deepcopy(spec["tags"])
    resource["properties"] = properties
    return resource

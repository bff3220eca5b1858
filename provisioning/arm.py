"""Azure Resource Manager adapter: reads a managed application to prove who its identities are."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError

from core.errors import ServiceUnavailable

logger = logging.getLogger("liutong.arm")

API_VERSION = "2021-07-01"
# ARM's token audience is fixed even when its endpoint is a local stand-in.
ARM_SCOPE = "https://management.azure.com/.default"


@dataclass(frozen=True)
class ApplicationIdentity:
    tenant_id: str
    principal_id: str


@dataclass(frozen=True)
class ManagedApplication:
    application_id: str
    plan_name: str | None
    resource_usage_id: str | None
    provisioning_state: str | None
    identities: tuple[ApplicationIdentity, ...]

    def lists_identity(self, tid: str, oid: str) -> bool:
        wanted = ApplicationIdentity(tenant_id=tid.lower(), principal_id=oid.lower())
        return wanted in self.identities


class ArmClient:
    def __init__(self, *, http: httpx.AsyncClient, credential: AsyncTokenCredential, endpoint: str) -> None:
        self._http = http
        self._credential = credential
        self._endpoint = endpoint.rstrip("/")

    async def get_application(self, application_id: str) -> ManagedApplication | None:
        """The application as ARM sees it, or None when ARM says it does not exist."""
        url = f"{self._endpoint}{quote(application_id)}"
        try:
            token = await self._credential.get_token(ARM_SCOPE)
            response = await self._http.get(
                url,
                params={"api-version": API_VERSION},
                headers={"authorization": f"Bearer {token.token}"},
            )
        except (AzureError, httpx.HTTPError) as error:
            logger.warning("ARM unreachable: %s", type(error).__name__)
            raise ServiceUnavailable("Azure Resource Manager is unavailable.") from error
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            logger.warning("ARM GET application -> %s", response.status_code)
            raise ServiceUnavailable("Azure Resource Manager refused to read the application.")
        try:
            return parse_application(response.json())
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise ServiceUnavailable("Azure Resource Manager returned an unexpected document.") from error


def parse_application(document: dict[str, Any]) -> ManagedApplication:
    properties = document.get("properties") or {}
    billing = properties.get("billingDetails") or {}
    plan = document.get("plan") or {}
    return ManagedApplication(
        application_id=str(document["id"]).lower(),
        plan_name=plan.get("name"),
        resource_usage_id=billing.get("resourceUsageId"),
        provisioning_state=properties.get("provisioningState"),
        identities=_identities(document.get("identity") or {}),
    )


def _identities(identity: dict[str, Any]) -> tuple[ApplicationIdentity, ...]:
    found: list[ApplicationIdentity] = []
    if identity.get("principalId") and identity.get("tenantId"):
        found.append(_identity(identity["tenantId"], identity["principalId"]))
    for assigned in (identity.get("userAssignedIdentities") or {}).values():
        principal = (assigned or {}).get("principalId")
        tenant = (assigned or {}).get("tenantId") or identity.get("tenantId")
        if principal and tenant:
            found.append(_identity(tenant, principal))
    return tuple(found)


def _identity(tenant_id: str, principal_id: str) -> ApplicationIdentity:
    return ApplicationIdentity(tenant_id=str(tenant_id).lower(), principal_id=str(principal_id).lower())

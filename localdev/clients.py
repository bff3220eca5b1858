"""What a managed application and the Marketplace do, with the real clients (demo and tests)."""

from __future__ import annotations

from typing import Any

import httpx
from azure.identity.aio import ManagedIdentityCredential

ARM_SCOPE = "https://management.azure.com/.default"
ARM_API_VERSION = "2021-07-01"


async def arm_token() -> str:
    """A token for ARM from this process's managed identity (the stand-in's default identity)."""
    async with ManagedIdentityCredential() as credential:
        token: str = (await credential.get_token(ARM_SCOPE)).token
        return token


async def register_application(
    arm_url: str, application_id: str, *, plan: dict[str, str], managed_resource_group_id: str
) -> dict[str, Any]:
    """PUT a Marketplace managed application with a system-assigned identity; ARM's document."""
    body = {
        "kind": "MarketPlace",
        "location": "westeurope",
        "plan": plan,
        "identity": {"type": "SystemAssigned"},
        "properties": {"managedResourceGroupId": managed_resource_group_id},
    }
    async with httpx.AsyncClient(base_url=arm_url, timeout=30) as client:
        response = await client.put(
            application_id,
            params={"api-version": ARM_API_VERSION},
            json=body,
            headers={"authorization": f"Bearer {await arm_token()}"},
        )
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


async def managed_app_token(application_id: str, audience: str) -> str:
    """The managed application's own identity token for Liutong's API (`mi_res_id` selects it)."""
    async with ManagedIdentityCredential(identity_config={"mi_res_id": application_id}) as credential:
        token: str = (await credential.get_token(f"{audience}/.default")).token
        return token


def notification(
    application_id: str, event_type: str, state: str, event_time: str, *, plan: dict[str, str], usage_id: str
) -> dict[str, Any]:
    """A Marketplace managed-application notification, as ARM posts it."""
    return {
        "eventType": event_type,
        "applicationId": application_id,
        "eventTime": event_time,
        "provisioningState": state,
        "billingDetails": {"resourceUsageId": usage_id},
        "plan": plan,
    }

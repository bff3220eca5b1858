"""Helpers for driving the running service end to end (real HTTP, real azure-identity)."""

from __future__ import annotations

from typing import Any

import httpx
from azure.identity.aio import ManagedIdentityCredential

from core.tables import TABLES, Tables
from localdev.stack import API_APP_ID_URI, LocalStack
from tests.provisioning.events import PLAN, SUBSCRIPTION, application_id

ARM_SCOPE = "https://management.azure.com/.default"


async def arm_token() -> str:
    async with ManagedIdentityCredential() as credential:
        return (await credential.get_token(ARM_SCOPE)).token


async def register_application(stack: LocalStack, name: str, *, plan: dict[str, str] = PLAN) -> dict[str, Any]:
    """PUT a managed application (system-assigned identity) into the stand-in's ARM."""
    assert stack.standin is not None
    app_id = application_id(name)
    body = {
        "kind": "MarketPlace",
        "location": "westeurope",
        "plan": plan,
        "identity": {"type": "SystemAssigned"},
        "properties": {"managedResourceGroupId": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/mrg-{name}"},
    }
    async with httpx.AsyncClient(base_url=stack.standin.base_url) as client:
        response = await client.put(
            app_id, params={"api-version": "2021-07-01"}, json=body,
            headers={"authorization": f"Bearer {await arm_token()}"},
        )
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


async def app_token(app_id: str) -> str:
    """The managed application's own identity token for Liutong's API, from azure-identity."""
    async with ManagedIdentityCredential(identity_config={"mi_res_id": app_id}) as credential:
        return (await credential.get_token(f"{API_APP_ID_URI}/.default")).token


async def snapshot(stack: LocalStack) -> dict[str, list[dict[str, Any]]]:
    """Every entity of every table, for 'nothing was written' assertions."""
    tables = Tables(stack.settings())
    try:
        result: dict[str, list[dict[str, Any]]] = {}
        for name in TABLES:
            try:
                result[name] = [dict(e) async for e in tables.table(name).list_entities()]
            except Exception:
                result[name] = []
        return result
    finally:
        await tables.close()

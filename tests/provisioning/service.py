"""Helpers for driving the running service end to end (real HTTP, real azure-identity)."""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from core.tables import TABLES, Tables
from localdev import clients
from localdev.stack import API_APP_ID_URI, LocalStack
from tests.provisioning.events import PLAN, SUBSCRIPTION, application_id


async def register_application(stack: LocalStack, name: str, *, plan: dict[str, str] = PLAN) -> dict[str, Any]:
    """PUT a managed application (system-assigned identity) into the stand-in's ARM."""
    assert stack.standin is not None
    return await clients.register_application(
        stack.standin.base_url,
        application_id(name),
        plan=plan,
        managed_resource_group_id=f"/subscriptions/{SUBSCRIPTION}/resourceGroups/mrg-{name}",
    )


async def app_token(app_id: str) -> str:
    return await clients.managed_app_token(app_id, API_APP_ID_URI)


async def snapshot(stack: LocalStack) -> dict[str, list[dict[str, Any]]]:
    """Every entity of every table, for 'nothing was written' assertions."""
    tables = Tables(stack.settings())
    try:
        result: dict[str, list[dict[str, Any]]] = {}
        for name in TABLES:
            try:
                result[name] = [dict(e) async for e in tables.table(name).list_entities()]
            except ResourceNotFoundError:
                result[name] = []
        return result
    finally:
        await tables.close()

"""Helpers for driving the running service end to end (real HTTP, real azure-identity)."""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from core.tables import TABLES, Tables
from localdev import clients
from localdev.stack import API_APP_ID_URI, LocalStack
from tests.provisioning.events import PLAN, SUBSCRIPTION, application_id
from usage.refusals import TABLE as REFUSALS


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
    """Every entity of every table, for 'nothing was written' assertions.

    Except the refusal counters: flushed in the background every few seconds from refusals of *earlier* tests on
    this shared stack, they are diagnostics, never a write of the request under test.
    """
    return {name: await table_rows(stack, name) for name in TABLES if name != REFUSALS}


async def table_rows(stack: LocalStack, name: str) -> list[dict[str, Any]]:
    tables = Tables(stack.settings())
    try:
        return [dict(e) async for e in tables.table(name).list_entities()]
    except ResourceNotFoundError:
        return []
    finally:
        await tables.close()

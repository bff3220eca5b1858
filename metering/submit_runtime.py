"""Builds the hourly jobs' collaborators (metering, usage tools) from settings, for the timer and the CLI."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx

from core.identity import service_credential
from core.settings import Settings
from core.tables import Tables, storage_errors, table_name
from limits.plans import PlanCatalog
from metering.marketplace_client import MarketplaceClient, metering_credential
from metering.submit import MeteringDeps
from provisioning.deployment_store import DeploymentStore

METERING_TABLES = ("usage", "usageagg", "meterhours", "meterledger")


@contextlib.asynccontextmanager
async def metering_deps(settings: Settings, *, dry_run: bool = False) -> AsyncIterator[MeteringDeps]:
    """Tables, deployments, plans and (unless dry-running) a Marketplace client; all closed on exit."""
    plans = PlanCatalog.load(settings.plans_file)
    async with contextlib.AsyncExitStack() as stack:
        credential = service_credential(settings)
        stack.push_async_callback(credential.close)
        tables = Tables(settings, credential=credential)
        stack.push_async_callback(tables.close)
        client = None
        if not dry_run:
            await ensure_metering_tables(tables, settings)
            http = httpx.AsyncClient(timeout=settings.http_timeout_seconds, follow_redirects=False)
            stack.push_async_callback(http.aclose)
            token_source = await metering_credential(settings, service=credential)
            if token_source is not credential:
                stack.push_async_callback(token_source.close)
            client = MarketplaceClient(http=http, credential=token_source, endpoint=settings.metering_endpoint)
        yield MeteringDeps(tables=tables, deployments=DeploymentStore(tables), plans=plans, client=client)


@contextlib.asynccontextmanager
async def metering_tables(settings: Settings) -> AsyncIterator[Tables]:
    """The tables alone (the usage tools need nothing else), created if missing; closed on exit."""
    async with contextlib.AsyncExitStack() as stack:
        credential = service_credential(settings)
        stack.push_async_callback(credential.close)
        tables = Tables(settings, credential=credential)
        stack.push_async_callback(tables.close)
        await ensure_metering_tables(tables, settings)
        yield tables


async def ensure_metering_tables(tables: Tables, settings: Settings) -> None:
    with storage_errors():
        for logical in METERING_TABLES:
            await tables.service.create_table_if_not_exists(table_name(settings, logical))

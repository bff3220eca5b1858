"""Table Storage adapter for deployment records, with ETag optimistic concurrency."""

from __future__ import annotations

import dataclasses
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from core.errors import ConcurrencyConflict
from core.tables import Tables, storage_errors
from provisioning.deployments import Deployment
from provisioning.notifications import Plan

_ROW = "deployment"
_PLAN_FIELDS = ("publisher", "product", "name", "version")
_OPTIONAL_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(Deployment)
    if f.name not in ("deployment_id", "plan", "etag")
)


class DeploymentStore:
    def __init__(self, tables: Tables) -> None:
        self._table = tables.table("deployments")

    async def get(self, deployment_id: str) -> Deployment | None:
        with storage_errors():
            try:
                entity = await self._table.get_entity(deployment_id, _ROW)
            except ResourceNotFoundError:
                return None
        return deployment_from_entity(entity)

    async def create(self, deployment: Deployment) -> Deployment:
        with storage_errors():
            try:
                meta = await self._table.create_entity(_to_entity(deployment))
            except ResourceExistsError:
                raise ConcurrencyConflict(deployment.deployment_id) from None
        return dataclasses.replace(deployment, etag=meta.get("etag"))

    async def replace(self, deployment: Deployment) -> Deployment:
        """Write `deployment` only if nobody changed it since it was read (its etag)."""
        if deployment.etag is None:
            raise ValueError("replace needs the etag of the record it was read from")
        with storage_errors():
            try:
                meta = await self._table.update_entity(
                    _to_entity(deployment),
                    mode=UpdateMode.REPLACE,
                    etag=deployment.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                raise ConcurrencyConflict(deployment.deployment_id) from None
        return dataclasses.replace(deployment, etag=meta.get("etag"))

    async def save(self, deployment: Deployment) -> Deployment:
        """Create a record read as absent, or replace one read with an etag."""
        if deployment.etag is None:
            return await self.create(deployment)
        return await self.replace(deployment)

    async def list_all(self) -> list[Deployment]:
        with storage_errors():
            return [deployment_from_entity(e) async for e in self._table.query_entities(f"RowKey eq '{_ROW}'")]


def _to_entity(deployment: Deployment) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": deployment.deployment_id, "RowKey": _ROW}
    for name in _OPTIONAL_FIELDS:
        value = getattr(deployment, name)
        if value is not None:
            entity[name] = value
    if deployment.plan is not None:
        for field in _PLAN_FIELDS:
            entity[f"plan_{field}"] = getattr(deployment.plan, field)
    return entity


def deployment_from_entity(entity: Any) -> Deployment:
    values: dict[str, Any] = {name: entity.get(name) for name in _OPTIONAL_FIELDS if name in entity}
    if "plan_name" in entity:
        values["plan"] = Plan(**{f: entity.get(f"plan_{f}", "") for f in _PLAN_FIELDS})
    values["generation"] = int(values.get("generation") or 0)
    return Deployment(
        deployment_id=entity["PartitionKey"],
        etag=entity.metadata.get("etag"),
        **values,
    )

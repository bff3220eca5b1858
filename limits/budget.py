"""A key's shared RPM/TPM budget in Table Storage: one token bucket per key and limit, as one instance's.

Table `ratebudget`: PartitionKey = the key id (core.tables.table_key), RowKey = "rate"; properties
  requests (Double)  what the RPM bucket held at `at`; absent: full
  tokens (Double)    what the TPM bucket held at `at`; absent: full; below 0 while settled tokens are in debt
  at (Double)        Unix seconds of the last refill, by the clock of the instance that wrote it; never moves back
A bucket holds at most its limit L and refills at L per minute, like limits.ratelimit's in-memory buckets. No call
is admitted from here directly: limits.leases takes units in slices and gives back what it does not use.

exchange(want, give): refill to now, add what is given back (capped at L; a negative give is a debt), grant
min(want, whole units held), and write the result if-match the ETag of the state it was computed from; a conflict
re-reads and tries again. The state and ETag of this instance's last write are kept, so a key used by one instance
costs one round trip per exchange. A write whose answer is lost is never repeated: a lost take loses its units, a
lost give is not counted twice; either way fewer calls pass, never more.
Cost: one point read and/or one conditional write per exchange, per key; nothing grows with requests or keys.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import EntityProperty
from azure.data.tables.aio import TableClient

from core.tables import storage_errors, table_key, write_if_unchanged
from limits.ratelimit import WINDOW_SECONDS

log = logging.getLogger(__name__)

ROW = "rate"
KINDS = ("requests", "tokens")
MAX_CAS_ATTEMPTS = 20
# Refill is float arithmetic: a bucket that should hold a whole unit does.
_EPSILON = 1e-9

Units = dict[str, float]


@dataclass(frozen=True)
class Exchanged:
    granted: dict[str, int]
    left: Units  # what the shared buckets held right after the grant
    at: float


@dataclass(frozen=True)
class _Row:
    levels: Units
    at: float
    etag: str | None
    fresh: bool  # read just now, not remembered from this instance's last write


def refilled(levels: Mapping[str, float], at: float, limits: Mapping[str, int], now: float) -> Units:
    elapsed = max(0.0, now - at)
    return {
        kind: min(float(limit), levels.get(kind, float(limit)) + elapsed * limit / WINDOW_SECONDS)
        for kind, limit in limits.items()
    }


def settle_row(
    row_levels: Mapping[str, float], at: float, limits: Mapping[str, int], want: Mapping[str, int],
    give: Mapping[str, float], now: float,
) -> tuple[Units, dict[str, int]]:
    """The buckets after refilling to `now`, taking back `give` and granting what they can of `want`."""
    levels = refilled(row_levels, at, limits, now)
    granted: dict[str, int] = {}
    for kind, limit in limits.items():
        levels[kind] = min(float(limit), levels[kind] + give.get(kind, 0.0))
        granted[kind] = max(0, min(want.get(kind, 0), math.floor(levels[kind] + _EPSILON)))
        levels[kind] -= granted[kind]
    return levels, granted


class SharedBuckets:
    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._rows: dict[str, _Row] = {}

    async def exchange(
        self, key_id: str, limits: Mapping[str, int], want: Mapping[str, int], give: Mapping[str, float], now: float
    ) -> Exchanged:
        """Give back `give`, take up to `want`; raises StorageUnavailable when storage cannot be reached."""
        key = table_key(key_id)
        for attempt in range(MAX_CAS_ATTEMPTS):
            row = self._rows.pop(key, None) or await self._read(key)
            levels, granted = settle_row(row.levels, row.at, limits, want, give, now)
            at = max(row.at, now)
            if not any(granted.values()) and not any(give.values()):
                if row.fresh:
                    return Exchanged(granted, levels, at)  # nothing to write: refusing costs one read
                continue  # what this instance remembers may be stale: read before saying no
            etag = await self._write(key, levels, at, row.etag)
            if etag is not None:
                self._rows[key] = _Row(levels, at, etag, fresh=False)
                return Exchanged(granted, levels, at)
            await asyncio.sleep(random.uniform(0, 0.001 * attempt))  # noqa: S311 - jitter, not secrecy
        log.warning("shared rate budget of key %s contended; granting nothing this time", key_id)
        return Exchanged(dict.fromkeys(limits, 0), dict.fromkeys(limits, 0.0), now)

    async def level(self, key_id: str, limits: Mapping[str, int], now: float) -> Units:
        """What the shared buckets hold now (benchmarks and tests; the proxy never reads without taking)."""
        row = await self._read(table_key(key_id))
        return refilled(row.levels, row.at, limits, now)

    async def _read(self, key: str) -> _Row:
        try:
            with storage_errors():
                entity = await self._table.get_entity(key, ROW)
        except ResourceNotFoundError:
            return _Row({}, 0.0, None, fresh=True)
        levels = {kind: _number(entity[kind]) for kind in KINDS if kind in entity}
        return _Row(levels, _number(entity.get("at", 0.0)), str(entity.metadata["etag"]), fresh=True)

    async def _write(self, key: str, levels: Units, at: float, etag: str | None) -> str | None:
        """The new ETag, or None when another instance wrote first."""
        entity: dict[str, Any] = {"PartitionKey": key, "RowKey": ROW, "at": float(at)}
        entity.update({kind: float(level) for kind, level in levels.items()})
        return await write_if_unchanged(self._table, entity, etag)


def _number(value: Any) -> float:
    return float(value.value if isinstance(value, EntityProperty) else value)

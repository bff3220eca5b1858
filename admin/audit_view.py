"""The operators' view of the audit table: a time window, filtered, newest first, in pages.

Audit rows are partitioned by UTC day ("YYYYMMDD") with RowKey "HHMMSSffffff-suffix", and Table
Storage only reads forwards, so a page walks the days backwards and keeps the newest rows of each.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from admin import validation as v
from admin.team_store import decode_token, encode_token
from core.errors import InvalidRequest
from core.tables import Tables, storage_errors
from provisioning.notifications import normalize_application_id

DEFAULT_SPAN = timedelta(days=7)
MAX_SPAN = timedelta(days=93)
FILTER_COLUMNS = ("actor_oid", "resource_id", "key_id", "outcome")
_ACTION = re.compile(r"[A-Za-z0-9._-]{1,100}")
_OUTCOME = re.compile(r"[a-z_-]{1,32}")
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,1024}")
_DAY = re.compile(r"\d{8}")
_ROW = re.compile(r"\d{12}-[A-Za-z0-9_-]{1,64}")
_EVENT_FIELDS = ("action", "outcome", "reason", "actor_oid", "actor_tid", "plan_id", "resource_id", "key_id")


@dataclass(frozen=True)
class AuditQuery:
    start: datetime  # inclusive
    end: datetime  # inclusive
    action: str | None = None  # prefix
    filters: Mapping[str, str] | None = None  # FILTER_COLUMNS name -> exact value


@dataclass(frozen=True)
class AuditPage:
    events: list[dict[str, Any]]
    next_token: str | None


def _resource_id(value: str) -> str:
    # Provisioning rows hold the normalised (lower-case) application ID; accept it as ARM spells it.
    try:
        return normalize_application_id(value)
    except InvalidRequest:
        return value


def _filters(params: Mapping[str, str]) -> dict[str, str]:
    checks: dict[str, Callable[[str], bool]] = {
        "actor_oid": lambda s: _PRINTABLE.fullmatch(s) is not None and len(s) <= 128,
        "resource_id": lambda s: _PRINTABLE.fullmatch(s) is not None,
        "key_id": lambda s: v.KEY_ID.fullmatch(s) is not None,
        "outcome": lambda s: _OUTCOME.fullmatch(s) is not None,
    }
    found: dict[str, str] = {}
    for name in FILTER_COLUMNS:
        value = params.get(name)
        if value is None:
            continue
        if not checks[name](value):
            raise InvalidRequest(f"Invalid '{name}' filter.", param=name)
        found[name] = _resource_id(value) if name == "resource_id" else value
    return found


def audit_query(params: Mapping[str, str], now: datetime) -> AuditQuery:
    """Validates the view's filters; the window defaults to the last seven days and spans at most 93."""
    end = v.query_instant(params, "to") or now
    start = v.query_instant(params, "from") or end - DEFAULT_SPAN
    if start > end:
        raise InvalidRequest("'from' must not be after 'to'.", param="from")
    if end - start > MAX_SPAN:
        raise InvalidRequest(f"The window may span at most {MAX_SPAN.days} days.", param="from")
    action = params.get("action")
    if action is not None and not _ACTION.fullmatch(action):
        raise InvalidRequest("'action' must be 1-100 characters of A-Z, a-z, 0-9, '.', '_' or '-'.", param="action")
    return AuditQuery(start=start, end=end, action=action, filters=_filters(params))


def _stamp(at: datetime) -> str:
    return at.strftime("%H%M%S%f")


def event_view(entity: Mapping[str, Any]) -> dict[str, Any]:
    at = entity.get("at")
    view: dict[str, Any] = {"object": "audit_event", "at": v.iso(at) if at else None}
    view.update({name: entity.get(name) for name in _EVENT_FIELDS})
    return view


class AuditView:
    def __init__(self, tables: Tables) -> None:
        self._table = tables.table("audit")

    async def page(self, query: AuditQuery, *, size: int, token: str | None) -> AuditPage:
        day, before = self._cursor(query, token)
        found: list[tuple[str, dict[str, Any]]] = []
        first_day = query.start.date()
        while day >= first_day and len(found) <= size:
            newest = await self._newest_of_day(query, day, before, size + 1 - len(found))
            found += [(day.strftime("%Y%m%d"), e) for e in newest]
            day, before = day - timedelta(days=1), None
        next_token = None
        if len(found) > size:
            last_day, last = found[size - 1]
            next_token = encode_token({"day": last_day, "before": last["RowKey"]})
        return AuditPage(events=[event_view(e) for _, e in found[:size]], next_token=next_token)

    @staticmethod
    def _cursor(query: AuditQuery, token: str | None) -> tuple[date, str | None]:
        position = decode_token(token)
        if position is None:
            return query.end.date(), None
        bad = InvalidRequest("Invalid continuation token.", param="continuation_token")
        day, before = position.get("day", ""), position.get("before", "")
        if set(position) != {"day", "before"} or not _DAY.fullmatch(day) or not _ROW.fullmatch(before):
            raise bad
        try:
            parsed = datetime.strptime(day, "%Y%m%d").date()
        except ValueError:
            raise bad from None
        if not query.start.date() <= parsed <= query.end.date():
            raise bad
        return parsed, before

    async def _newest_of_day(self, query: AuditQuery, day: date, before: str | None, count: int) -> list[Any]:
        clauses, params = self._clauses(query)
        clauses.append("PartitionKey eq @day")
        params["day"] = day.strftime("%Y%m%d")
        if day == query.start.date():
            clauses.append("RowKey ge @low")
            params["low"] = _stamp(query.start)
        # '.' sorts right after '-', so "<stamp>." bounds every row of that microsecond.
        high = _stamp(query.end) + "." if day == query.end.date() else None
        if before is not None:
            high = before if high is None else min(high, before)
        if high is not None:
            clauses.append("RowKey lt @high")
            params["high"] = high
        newest: deque[Any] = deque(maxlen=count)
        with storage_errors():
            async for entity in self._table.query_entities(" and ".join(clauses), parameters=params):
                newest.append(entity)
        return list(reversed(newest))

    @staticmethod
    def _clauses(query: AuditQuery) -> tuple[list[str], dict[str, Any]]:
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if query.action:
            # A prefix match: every value from the prefix up to (not including) its successor.
            clauses.append("action ge @action_low and action lt @action_high")
            params["action_low"] = query.action
            params["action_high"] = query.action[:-1] + chr(ord(query.action[-1]) + 1)
        for name, value in (query.filters or {}).items():
            clauses.append(f"{name} eq @{name}")
            params[name] = value
        return clauses, params

    async def resource_history(self, resource_id: str, *, since: date, until: date, limit: int) -> tuple[
        list[dict[str, Any]], bool
    ]:
        """The newest `limit` rows of one resource between two UTC days, oldest first; True if cut."""
        rows: deque[Any] = deque(maxlen=limit)
        total = 0
        params = {"low": since.strftime("%Y%m%d"), "high": until.strftime("%Y%m%d"), "rid": resource_id}
        with storage_errors():
            async for entity in self._table.query_entities(
                "PartitionKey ge @low and PartitionKey le @high and resource_id eq @rid", parameters=params
            ):
                rows.append(entity)
                total += 1
        return [event_view(e) for e in rows], total > limit

"""The Marketplace Metering Service on the stand-in: `usageEvent` and `batchUsageEvent` (api-version 2018-08-31).

Bodies follow the documented and real responses (reference §3.5; metered-billing-accelerator fixtures):
Accepted, Duplicate (409 + `additionalInfo.acceptedMessage` for one event; per-event `error.additionalInfo`
in a batch), Expired, ResourceNotFound, InvalidDimension, BadArgument. Tests register resources, inject
429/5xx, move the clock and read what was accepted through `metering_of(state)`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.clock import utc_now
from localdev.standin.state import StandinState, TokenRejected

METERING_AUDIENCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"
API_VERSION = "2018-08-31"
MAX_BATCH = 25
_WINDOW = timedelta(hours=24)
_FIELDS = ("resourceId", "quantity", "dimension", "effectiveStartTime", "planId")
_DUPLICATE = "This usage event already exist."
_NOT_FOUND = "The resourceId value provided cannot be found or this resource is not active."
_ECHOED_HEADERS = ("x-ms-requestid", "x-ms-correlationid")


@dataclass(frozen=True)
class Fault:
    status: int
    # Commit the events, then answer with the fault: a response lost after the service accepted.
    after_commit: bool = False
    delay_seconds: float = 0.0


class _Rejected(Exception):
    def __init__(self, status: str, target: str, message: str) -> None:
        super().__init__(message)
        self.status, self.target, self.message = status, target, message


class MeteringStandin:
    """The service's state; thread-safe, since tests drive it while uvicorn serves from its own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plans: dict[str, dict[str, frozenset[str]]] = {}
        self._accepted: dict[tuple[str, str, datetime], dict[str, Any]] = {}
        self._faults: deque[Fault] = deque()
        self.calls: list[dict[str, Any]] = []
        self.clock: Callable[[], datetime] = utc_now

    def register_resource(self, resource_id: str, plan_id: str, dimensions: Iterable[str]) -> None:
        with self._lock:
            self._plans.setdefault(resource_id.lower(), {})[plan_id] = frozenset(dimensions)

    def fail_next(self, count: int = 1, *, status: int = 503, after_commit: bool = False, delay: float = 0.0) -> None:
        with self._lock:
            self._faults.extend([Fault(status, after_commit, delay)] * count)

    def accepted_events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(m) for m in self._accepted.values()]

    def total_quantity(self, resource_id: str, dimension: str) -> Decimal:
        return sum(
            (Decimal(str(m["quantity"])) for m in self.accepted_events()
             if m["resourceId"].lower() == resource_id.lower() and m["dimension"] == dimension),
            Decimal(0),
        )

    def next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def record_call(self, path: str, status: int, events: int) -> None:
        with self._lock:
            self.calls.append({"path": path, "status": status, "events": events})

    def evaluate(self, item: Any) -> tuple[str, dict[str, Any]]:
        """(status, body) for one event: the accepted message, or the error for that event."""
        now = self.clock()
        try:
            hour = _validate(item, now)
            key = (str(item["resourceId"]).lower(), str(item["dimension"]), hour)
            with self._lock:
                self._check_resource(item)
                if key in self._accepted:
                    return "Duplicate", copy.deepcopy(self._accepted[key])
                message = _accepted_message(item, now)
                self._accepted[key] = message | {"status": "Duplicate"}
                return "Accepted", message
        except _Rejected as rejected:
            return rejected.status, _error(rejected.target, rejected.message)

    def _check_resource(self, item: dict[str, Any]) -> None:
        plans = self._plans.get(str(item["resourceId"]).lower())
        if plans is None:
            raise _Rejected("ResourceNotFound", "resourceId", _NOT_FOUND)
        dimensions = plans.get(str(item["planId"]))
        if dimensions is None:
            raise _Rejected("BadArgument", "planId", "The planId provided is not a plan of this resource.")
        if item["dimension"] not in dimensions:
            raise _Rejected("InvalidDimension", "dimension", "The payload dimension is invalid.")


_standins: weakref.WeakKeyDictionary[StandinState, MeteringStandin] = weakref.WeakKeyDictionary()
_standins_lock = threading.Lock()


def metering_of(state: StandinState) -> MeteringStandin:
    """The Metering Service of one stand-in (created on first use)."""
    with _standins_lock:
        if state not in _standins:
            _standins[state] = MeteringStandin()
        return _standins[state]


def _validate(item: Any, now: datetime) -> datetime:
    if not isinstance(item, dict):
        raise _Rejected("BadArgument", "usageEventRequest", "The usage event must be a JSON object.")
    for name in _FIELDS:
        value = item.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise _Rejected("BadArgument", name[0].upper() + name[1:], f"The {name} field is required.")
    quantity = item["quantity"]
    if isinstance(quantity, bool) or not isinstance(quantity, int | float) or quantity <= 0:
        raise _Rejected("InvalidQuantity", "quantity", "The quantity provided is invalid.")
    try:
        start = datetime.fromisoformat(str(item["effectiveStartTime"]).replace("Z", "+00:00"))
    except ValueError:
        raise _Rejected("BadArgument", "effectiveStartTime", "The effectiveStartTime is not a valid date.") from None
    start = (start if start.tzinfo else start.replace(tzinfo=UTC)).astimezone(UTC)
    if start < now - _WINDOW or start > now:
        raise _Rejected("Expired", "effectiveStartTime", "The effective time provided is has expired or is in future.")
    return start.replace(minute=0, second=0, microsecond=0)


def _accepted_message(item: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "usageEventId": str(uuid.uuid4()),
        "status": "Accepted",
        "messageTime": now.strftime("%Y-%m-%dT%H:%M:%S.%f0Z"),
        **{name: item[name] for name in _FIELDS},
    }


def _error(target: str, message: str) -> dict[str, Any]:
    return {
        "code": "BadArgument",
        "target": "usageEventRequest",
        "message": "One or more errors have occurred.",
        "details": [{"code": "BadArgument", "target": target, "message": message}],
    }


def _batch_item(item: Any, status: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
    if status == "Accepted":
        return body
    echoed = {name: item.get(name) for name in _FIELDS} if isinstance(item, dict) else {}
    if status == "Duplicate":
        error = {"code": "Conflict", "message": _DUPLICATE, "additionalInfo": {"acceptedMessage": body}}
    else:
        error = body
    return {**echoed, "status": status, "messageTime": now.strftime("%Y-%m-%dT%H:%M:%S.%f0Z"), "error": error}


def _single(metering: MeteringStandin, body: Any) -> tuple[int, dict[str, Any]]:
    status, result = metering.evaluate(body)
    if status == "Accepted":
        return 200, result
    if status == "Duplicate":
        return 409, {"additionalInfo": {"acceptedMessage": result}, "message": _DUPLICATE, "code": "Conflict"}
    return 400, result


def _batch(metering: MeteringStandin, body: Any) -> tuple[int, dict[str, Any]]:
    items = body.get("request") if isinstance(body, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        return 400, _error("request", f"The request must hold between 1 and {MAX_BATCH} usage events.")
    now = metering.clock()
    results = [_batch_item(item, *metering.evaluate(item), now) for item in items]
    return 200, {"count": len(results), "result": results}


def _authorize(state: StandinState, request: Request) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenRejected("Forbidden", "User is unauthorized to make this call")
    state.verify_token(token.strip(), audiences=frozenset({METERING_AUDIENCE}))


def _fault_response(fault: Fault) -> tuple[int, dict[str, Any]]:
    code = "TooManyRequests" if fault.status == 429 else "InternalServerError"
    return fault.status, {"code": code, "message": "Injected failure."}


def routes(state: StandinState) -> list[Route]:
    metering = metering_of(state)

    def endpoint(handle: Callable[[MeteringStandin, Any], tuple[int, dict[str, Any]]]) -> Any:
        async def serve(request: Request) -> Response:
            status, body = await _serve(state, metering, request, handle)
            headers = {name: request.headers.get(name) or str(uuid.uuid4()) for name in _ECHOED_HEADERS}
            if status == 429:
                headers["retry-after"] = "1"
            return JSONResponse(body, status_code=status, headers=headers)

        return serve

    return [
        Route("/api/usageEvent", endpoint(_single), methods=["POST"]),
        Route("/api/batchUsageEvent", endpoint(_batch), methods=["POST"]),
    ]


async def _serve(
    state: StandinState, metering: MeteringStandin, request: Request,
    handle: Callable[[MeteringStandin, Any], tuple[int, dict[str, Any]]],
) -> tuple[int, dict[str, Any]]:
    try:
        _authorize(state, request)
    except TokenRejected as rejected:
        metering.record_call(request.url.path, 403, 0)
        return 403, {"code": "Forbidden", "message": f"User is unauthorized to make this call. {rejected.message}"}
    if request.query_params.get("api-version") != API_VERSION:
        return 400, _error("api-version", f"The api-version must be {API_VERSION}.")
    try:
        body = json.loads(await request.body())
    except ValueError:
        return 400, _error("usageEventRequest", "The request body is not valid JSON.")
    fault = metering.next_fault()
    if fault is not None and fault.delay_seconds:
        await asyncio.sleep(fault.delay_seconds)
    if fault is None:
        status, response = handle(metering, body)
    else:
        if fault.after_commit:
            handle(metering, body)
        status, response = _fault_response(fault)
    count = len(body.get("request") or []) if isinstance(body, dict) and "request" in body else 1
    metering.record_call(request.url.path, status, count)
    return status, response

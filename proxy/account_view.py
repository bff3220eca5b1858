"""The customers' usage view's answer (proxy.account): plain data in, the JSON body out. Pure: no I/O, no clock.

Overage is counted as metering bills it: per plan and month, the plan tokens above the plan's included tokens,
for plans whose overage is billed (metering.rollup.billable_through at the month's end, metering.submit_plan).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from core.hours import month_start
from keystore.models import KeyRecord
from limits.balance import BalanceState
from limits.plans import Plan
from usage.groups import COUNTERS, GROUP_COLUMNS, add_counters, zero
from usage.month_to_date import OwnerMonth
from usage.summing import Sums

_PLAN, _MODEL, _KEY = (GROUP_COLUMNS.index(name) for name in ("plan_id", "model_alias", "key_id"))
_REQUESTS, _TOTAL, _PLAN_TOKENS = (COUNTERS.index(name) for name in ("requests", "total_tokens", "plan_tokens"))


def overage_tokens(plan: Plan | None, plan_tokens: int) -> int:
    """One plan's overage in a month, as metering bills it: plan tokens above the included ones, for plans whose
    overage is billed; usage of a plan no longer in the catalog bills nothing (metering reports it instead)."""
    if plan is None or plan.overage != "bill" or not plan.dimension:
        return 0
    return max(0, plan_tokens - (plan.monthly_included_tokens or 0))


def summary_view(
    usage: OwnerMonth, plan: Plan, plans: Callable[[str], Plan | None], keys: list[KeyRecord],
    balance: BalanceState | None,
) -> dict[str, Any]:
    by_plan = _sum_by(usage.sums, lambda day, group: group[_PLAN])
    by_key = _sum_by(usage.sums, lambda day, group: group[_KEY])
    used = by_plan.get(plan.plan_id, zero())[_PLAN_TOKENS]
    return {
        "object": "usage_summary",
        "month": f"{usage.month:%Y-%m}",
        "start_time": _unix(usage.month),
        "end_time": _unix(month_start(usage.month + timedelta(days=32))),
        "as_of": _unix(usage.as_of),
        "plan": {
            "id": plan.plan_id, "mode": plan.mode, "monthly_included_tokens": plan.monthly_included_tokens,
            "overage": plan.overage,
        },
        **_by_day_and_model(usage.sums),
        "included_tokens": _included(plan, used),
        "overage_tokens": sum(overage_tokens(plans(p) if p else None, c[_PLAN_TOKENS]) for p, c in by_plan.items()),
        "prepaid_balance": None if balance is None else {
            "available_tokens": balance.available, "reserved_tokens": balance.reserved,
        },
        "keys": [_key_view(record, by_key.get(record.key_id)) for record in keys],
    }


def _by_day_and_model(sums: Sums) -> dict[str, Any]:
    """`totals` and `data`: the admin report's rows for the owner, grouped by model, per day."""
    rows = _sum_by(sums, lambda day, group: (day, group[_MODEL]))
    totals = zero()
    for counters in rows.values():
        add_counters(totals, counters)
    ordered = sorted(rows.items(), key=lambda item: (item[0][0], item[0][1] or ""))
    return {
        "totals": _counters(totals),
        "data": [
            {"object": "usage.day", "date": f"{day:%Y-%m-%d}", "model": model, **_counters(counters)}
            for (day, model), counters in ordered
        ],
    }


def _sum_by(sums: Sums, key: Callable[[datetime, tuple[str | None, ...]], Any]) -> dict[Any, list[int]]:
    out: dict[Any, list[int]] = {}
    for (day, group), counters in sums.items():
        target = key(day, group)
        add_counters(out.get(target) or out.setdefault(target, zero()), counters)
    return out


def _counters(counters: list[int]) -> dict[str, int]:
    return dict(zip(COUNTERS, counters, strict=True))


def _included(plan: Plan, used: int) -> dict[str, int] | None:
    included = plan.monthly_included_tokens
    if included is None:
        return None
    return {"limit": included, "used": used, "remaining": max(0, included - used)}


def _key_view(record: KeyRecord, counters: list[int] | None) -> dict[str, Any]:
    counters = counters or zero()
    return {
        "object": "api_key", "id": record.key_id, "prefix": record.prefix, "status": record.status.value,
        "created_at": _unix(record.created_at), "last_used_at": _unix(record.last_used_at),
        "expires_at": _unix(record.expires_at), "revoked_at": _unix(record.revoked_at),
        "requests": counters[_REQUESTS], "total_tokens": counters[_TOTAL], "plan_tokens": counters[_PLAN_TOKENS],
    }


def _unix(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp())

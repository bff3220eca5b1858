"""Seed data for the usage page's browser test, what the page must show for it, and a small PNG reader."""

from __future__ import annotations

import struct
import zlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from admin.deployments import AdminDeployments
from admin.service import AdminService
from core.hours import HOUR, floor_hour
from core.tables import Tables
from keystore.master_secret import SettingMasterSecret
from metering.ledger import Entry, Ledger, Status
from provisioning.deployment_store import DeploymentStore
from provisioning.deployments import Deployment
from provisioning.notifications import Plan as MarketplacePlan
from provisioning.rotation import RotationPolicy
from usage.direct import write_records
from usage.records import UsageRecord
from usage.refusals import RefusalCounter

DAY = timedelta(days=1)
PLANS = ("starter", "standard", "prepaid")
MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
# Team names are operator input: one of them would run script if the page used innerHTML.
TEAMS = (*(f"team-{n:02d}" for n in range(1, 12)), "<img src=x onerror=alert(1)>")
LEDGER = {
    Status.PENDING: 2, Status.ACCEPTED: 3, Status.DUPLICATE: 1, Status.ERROR: 2, Status.RETRY: 1,
    Status.EXPIRED_ROLLED: 1,
}
ERROR_TEXTS = ("HTTP 400 <b>InvalidDimension</b>", "HTTP 403 <script>alert(2)</script>")
RESOURCE = "/subscriptions/0000/resourceGroups/rg-{n}/providers/Microsoft.Solutions/applications/app-{n}"


def usage_records(now: datetime) -> list[UsageRecord]:
    """Five days of traffic up to now, plus two records 20 days back (inside 30 days, outside 7)."""
    records = []
    for i in range(84):
        days = i % 5
        at = now - days * DAY - timedelta(minutes=5 + i)
        failed = i % 13 == 0
        tokens = 0 if failed else 100 + 37 * i
        records.append(UsageRecord(
            request_id=f"req-{i:03d}", at=at, team=TEAMS[i % len(TEAMS)], key_id=f"key-{i % 4}",
            plan_id=PLANS[i % 3], model_alias=MODELS[(i // 3) % 3], endpoint="chat.completions",
            status=500 if failed else 200, latency_ms=120, prompt_tokens=tokens // 2,
            completion_tokens=tokens - tokens // 2, total_tokens=tokens, plan_tokens=tokens,
            deployment_id="dep-1", reasoning_tokens=(tokens - tokens // 2) // 3, byok=i % 5 == 2,
        ))
    for i in range(2):
        records.append(UsageRecord(
            request_id=f"old-{i}", at=now - 20 * DAY, team="team-01", key_id="key-0", plan_id="standard",
            model_alias="gpt-4o", endpoint="chat.completions", status=200, latency_ms=90, total_tokens=5000,
            plan_tokens=5000,
        ))
    return records


async def seed_usage(tables: Tables, records: list[UsageRecord]) -> None:
    """As the usage writer stores them: raw rows and their aggregates, then the aggregates' copy."""
    await write_records(tables, records, shard="c0ffee")


# (owner, key, status, code, count): refused calls of the last hours, one owner's name carrying markup
REFUSED = [("team-<b>bold</b>", "key-1", 429, "rate_limit_exceeded", 7), (None, "p-00aa", 401, "invalid_api_key", 3),
           ("team-alpha", "key-2", 403, "model_not_found", 1)]


async def seed_refusals(tables: Tables, now: datetime) -> None:
    counter = RefusalCounter(tables, background=False)
    for owner, key, status, code, count in REFUSED:
        for _ in range(count):
            counter.record(now - timedelta(hours=2), owner=owner, key=key, status=status, code=code)
    await counter.flush()


async def seed_ledger(tables: Tables, now: datetime) -> None:
    ledger, n = Ledger(tables), 0
    errors = iter(ERROR_TEXTS)
    for status, count in LEDGER.items():
        for _ in range(count):
            n += 1
            resource, dimension = RESOURCE.format(n=n % 3), "tokens_1k"
            hour = floor_hour(now) - (n + 2) * HOUR
            account = await ledger.load(resource, dimension, hour)
            entry = Entry(resource_id=resource, dimension=dimension, hour=hour, plan_id="standard",
                          tokens=1000 * n, quantity=Decimal(n), created_at=now, updated_at=now)
            account = await ledger.open_event(account, entry, assigned={}, carry_tokens=account.carry_tokens,
                                              carry_after=account.carry_after)
            opened = account.entries[hour]
            if status is Status.EXPIRED_ROLLED:
                await ledger.roll(account, opened, now=now, reason="expired")
            elif status is not Status.PENDING:
                last_error = next(errors) if status is Status.ERROR else None
                assert await ledger.record(opened, status=status, attempts=2, last_error=last_error)


# -- what the page must show ----------------------------------------------------------------------


def day_window(now: datetime, days: int) -> tuple[datetime, datetime]:
    end = now.replace(hour=0, minute=0, second=0, microsecond=0) + DAY
    return end - days * DAY, end


def hour_window(now: datetime, hours: int = 48) -> tuple[datetime, datetime]:
    end = floor_hour(now) + HOUR
    return end - hours * HOUR, end


def _period(at: datetime, granularity: str) -> datetime:
    hour = floor_hour(at)
    return hour if granularity == "hour" else hour.replace(hour=0)


def bars(records: list[UsageRecord], column: str, window: tuple[datetime, datetime],
         granularity: str) -> dict[tuple[str, str], int]:
    """(series, period as the page's data-period) -> tokens, for every non-empty bar segment."""
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for record in records:
        if window[0] <= record.at < window[1] and record.total_tokens:
            period = _period(record.at, granularity).astimezone(UTC)
            sums[(getattr(record, column), f"{period:%Y-%m-%dT%H:%M:%S}.000Z")] += record.total_tokens
    return dict(sums)


def legend(segments: dict[tuple[str, str], int]) -> list[str]:
    totals: dict[str, int] = defaultdict(int)
    for (name, _), tokens in segments.items():
        totals[name] += tokens
    return sorted(totals, key=lambda name: (-totals[name], name))


def top_teams(
    records: list[UsageRecord], window: tuple[datetime, datetime]
) -> list[tuple[str, int, int, int, int, int]]:
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for record in records:
        if window[0] <= record.at < window[1]:
            team = sums[record.team]
            team[0] += 1
            team[1] += record.status >= 400
            team[2] += record.total_tokens
            team[3] += record.reasoning_tokens
            team[4] += record.byok
    rows = [(name, c[0], c[1], c[2], c[3], c[4]) for name, c in sums.items()]
    return sorted(rows, key=lambda row: (-row[3], -row[1], row[0]))[:10]


# -- PNG ------------------------------------------------------------------------------------------


def png_summary(data: bytes, rows: int) -> tuple[int, int, int]:
    """(width, height, distinct colours in the top `rows` rows) of an 8-bit RGB/RGBA PNG (no PIL here).

    Unfiltering is pure Python, about a second per million pixels: hence only the rows asked for."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, header = 8, bytearray(), b""
    while offset < len(data):
        (length,), kind = struct.unpack(">I", data[offset:offset + 4]), data[offset + 4:offset + 8]
        body = data[offset + 8:offset + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        offset += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour_type in (2, 6), (depth, colour_type)
    bpp = 3 if colour_type == 2 else 4
    raw, stride, previous = zlib.decompress(bytes(idat)), width * bpp, bytearray(width * bpp)
    assert len(raw) == height * (stride + 1), "truncated image data"
    colours: set[bytes] = set()
    for y in range(min(rows, height)):
        start = y * (stride + 1)
        row = _unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), previous, bpp)
        colours.update(bytes(row[x:x + bpp]) for x in range(0, stride, bpp * 7))  # every 7th pixel
        previous = row
    return width, height, len(colours)


def _unfilter(kind: int, row: bytearray, up: bytearray, bpp: int) -> bytearray:
    if kind == 2:
        return bytearray((a + b) & 255 for a, b in zip(row, up, strict=True))
    if kind == 1:
        for i in range(bpp, len(row)):
            row[i] = (row[i] + row[i - bpp]) & 255
    elif kind == 3:
        for i in range(len(row)):
            row[i] = (row[i] + ((row[i - bpp] if i >= bpp else 0) + up[i]) // 2) & 255
    elif kind == 4:
        _paeth(row, up, bpp)
    return row


def _paeth(row: bytearray, up: bytearray, bpp: int) -> None:
    for i in range(bpp):
        row[i] = (row[i] + up[i]) & 255  # left and corner are 0 in the first pixel
    for i in range(bpp, len(row)):
        left, above, corner = row[i - bpp], up[i], up[i - bpp]
        pa, pb, pc = abs(above - corner), abs(left - corner), abs(left + above - 2 * corner)
        row[i] = (row[i] + (left if pa <= pb and pa <= pc else above if pb <= pc else corner)) & 255


DEPLOYMENT_ID = "d" * 64


def admin_deployments(service: AdminService) -> AdminDeployments:
    return AdminDeployments(
        tables=service.tables, store=DeploymentStore(service.tables), keys=service.keys,
        masters=SettingMasterSecret("m" * 40), policy=RotationPolicy(timedelta(days=30), timedelta(hours=24)),
        audit=service.audit, now=service.now,
    )


async def seed_deployment(tables: Tables, now: datetime) -> None:
    app = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/rg/providers/"
           "microsoft.solutions/applications/contoso-llm")
    await DeploymentStore(tables).create(Deployment(
        deployment_id=DEPLOYMENT_ID, application_id=app, state="Succeeded", last_event_type="PUT", state_key="0",
        first_event_time=now, last_event_time=now,
        plan=MarketplacePlan(publisher="liutong", product="liutong-llm", name="standard", version="1.0.0"),
    ))

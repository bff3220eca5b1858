"""`usage` (JSON, a table, or a CSV file), `ledger` (Marketplace metering), `audit` and `usage-verify` (a recount
of raw usage against its aggregates): read-only reports."""

from __future__ import annotations

import argparse
from pathlib import Path

from admin.cli.commands import Subparsers, add_paging, leaf, list_pages
from admin.cli.context import Context

USAGE = "/api/admin/usage"
LEDGER_COLUMNS = [("hour", "HOUR"), ("resource_id", "RESOURCE"), ("dimension", "DIMENSION"), ("plan_id", "PLAN"),
                  ("quantity", "QUANTITY"), ("status", "STATUS"), ("attempts", "ATTEMPTS"), ("last_error", "ERROR")]
VERIFY = "/api/admin/usage/verify"
VERIFY_COLUMNS = [("hour", "HOUR"), ("shard", "SHARD"), ("group", "GROUP"), ("source", "SOURCE"),
                  ("counter", "COUNTER"), ("raw", "RAW"), ("stored", "STORED"), ("problem", "PROBLEM")]
DIFFERENCES_FOUND = 1  # as `python -m metering verify`: scripts can tell a clean range from a disputed one
AUDIT_COLUMNS = [("at", "AT"), ("action", "ACTION"), ("outcome", "OUTCOME"), ("actor_oid", "ACTOR"),
                 ("resource_id", "RESOURCE"), ("key_id", "KEY ID"), ("reason", "REASON")]


def _window(args: argparse.Namespace) -> dict[str, str | None]:
    return {"from": args.start, "to": args.end}


def _usage(ctx: Context, args: argparse.Namespace) -> int:
    params = {
        **_window(args), "granularity": args.granularity, "group_by": args.group_by, "team": args.team,
        "plan": args.plan, "model": args.model, "deployment": args.deployment,
    }
    if args.csv:
        return _usage_csv(ctx, params, Path(args.csv))
    report = ctx.api.call("GET", USAGE, params=params)
    if ctx.out.json_mode:
        ctx.out.json(report)
        return 0
    rows = report.get("data") or []
    names = list(rows[0]) if rows else ["period", *report.get("group_by", [])]
    ctx.out.info(f"usage from {report.get('from')} to {report.get('to')}, by {report.get('granularity')}")
    ctx.out.table(rows, [(name, name.upper()) for name in names])
    totals = report.get("totals") or {}
    ctx.out.info("totals: " + ", ".join(f"{name} {value}" for name, value in totals.items()))
    return 0


def _usage_csv(ctx: Context, params: dict[str, str | None], destination: Path) -> int:
    with ctx.out.progress(f"downloading {destination.name}", None, in_bytes=True) as update:
        size = ctx.api.download(USAGE, {**params, "format": "csv"}, destination, update)
    if ctx.out.json_mode:
        ctx.out.json({"file": str(destination), "bytes": size})
    else:
        ctx.out.info(f"Wrote {destination} ({size} bytes).")
    return 0


def _ledger(ctx: Context, args: argparse.Namespace) -> int:
    params = {**_window(args), "status": args.status, "resource_id": args.resource_id, "plan": args.plan}
    return list_pages(ctx, "/api/admin/metering/ledger", params, args, LEDGER_COLUMNS)


def _audit(ctx: Context, args: argparse.Namespace) -> int:
    params = {**_window(args), "action": args.action, "actor_oid": args.actor_oid, "resource_id": args.resource_id,
              "key_id": args.key_id, "outcome": args.outcome}
    return list_pages(ctx, "/api/admin/audit", params, args, AUDIT_COLUMNS)


def _usage_verify(ctx: Context, args: argparse.Namespace) -> int:
    report = ctx.api.call("GET", VERIFY, params=_window(args))
    differences = report.get("data") or []
    if ctx.out.json_mode:
        ctx.out.json(report)
        return DIFFERENCES_FOUND if differences else 0
    ctx.out.info(f"usage from {report.get('from')} to {report.get('to')}: {report.get('records')} raw records "
                 f"in {report.get('partitions')} partitions recounted")
    if differences:
        ctx.out.table(differences, VERIFY_COLUMNS)
    else:
        ctx.out.line("no differences")
    return DIFFERENCES_FOUND if differences else 0


def _add_window(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="start", help="ISO 8601 date or timestamp (default: 7 days before --to)")
    parser.add_argument("--to", dest="end", help="ISO 8601 date or timestamp (default: now)")


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    usage = leaf(sub, "usage", "usage report (metadata only: requests and tokens)", common, _usage)
    _add_window(usage)
    usage.add_argument("--granularity", choices=("day", "hour"))
    usage.add_argument("--group-by", help="comma-separated: team, deployment, plan, model, key")
    for name in ("team", "plan", "model", "deployment"):
        usage.add_argument(f"--{name}", help=f"only this {name}")
    usage.add_argument("--csv", metavar="FILE", help="download the report as CSV into FILE")
    ledger = leaf(sub, "ledger", "the Marketplace metering ledger", common, _ledger)
    _add_window(ledger)
    ledger.add_argument("--status")
    ledger.add_argument("--resource-id")
    ledger.add_argument("--plan")
    add_paging(ledger)
    audit = leaf(sub, "audit", "the audit log, newest first", common, _audit)
    _add_window(audit)
    for name in ("action", "actor-oid", "resource-id", "key-id", "outcome"):
        audit.add_argument(f"--{name}")
    add_paging(audit)
    verify = leaf(sub, "usage-verify", "recount the raw usage of up to 24 whole hours against its aggregates",
                  common, _usage_verify)
    verify.add_argument("--from", dest="start", required=True, help="ISO 8601 timestamp (its whole hour)")
    verify.add_argument("--to", dest="end", help="ISO 8601 timestamp, excluded (default: the end of --from's hour)")

"""`credits top-up|show|ledger|adjust|convert`: sell prepaid credit to a team (--team) or a deployment
(--deployment), and read its balance, lots and ledger."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

from admin.cli.api import segment
from admin.cli.commands import Subparsers, group, leaf
from admin.cli.context import Context
from admin.cli.errors import UsageError

LOT_COLUMNS = [("lot", "LOT"), ("left", "LEFT"), ("held", "HELD"), ("amount", "AMOUNT"), ("model", "MODEL"),
               ("expires_at", "EXPIRES"), ("reference", "REFERENCE")]
LEDGER_COLUMNS = [("at", "AT"), ("kind", "KIND"), ("tokens", "TOKENS"), ("lot", "LOT"), ("model", "MODEL"),
                  ("to_model", "TO"), ("available_after", "AFTER"), ("reference", "REFERENCE"), ("reason", "REASON")]


def _base(args: argparse.Namespace) -> str:
    if bool(args.team) == bool(args.deployment):
        raise UsageError("Pass exactly one of --team and --deployment.")
    if args.team:
        return f"/api/admin/teams/{segment(args.team)}/credits"
    return f"/api/admin/deployments/{segment(args.deployment)}/credits"


def _top_up(ctx: Context, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"tokens": args.tokens}
    for name in ("expires_at", "model", "reference", "reason"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    # The API takes the key in the body too; a fresh one per run unless given, shown so a retry can reuse it.
    body["idempotency_key"] = args.idempotency_key or uuid.uuid4().hex
    result = ctx.api.call("POST", _base(args), body=body)
    if not ctx.out.json_mode:
        ctx.out.info(f"idempotency key {body['idempotency_key']}" + (" (already credited)" if result.get(
            "duplicate") else ""))
    ctx.out.show(result)
    return 0


def _show(ctx: Context, args: argparse.Namespace) -> int:
    result = ctx.api.call("GET", _base(args))
    if ctx.out.json_mode:
        ctx.out.json(result)
        return 0
    ctx.out.record({k: value for k, value in result.items() if k != "lots"})
    ctx.out.table(result.get("lots") or [], LOT_COLUMNS, title="lots")
    return 0


def _ledger(ctx: Context, args: argparse.Namespace) -> int:
    params = {"from": args.start, "to": args.end}
    if args.csv:
        destination = Path(args.csv)
        with ctx.out.progress(f"downloading {destination.name}", None, in_bytes=True) as update:
            size = ctx.api.download(f"{_base(args)}/ledger", {**params, "format": "csv"}, destination, update)
        ctx.out.info(f"Wrote {destination} ({size} bytes).")
        return 0
    result = ctx.api.call("GET", f"{_base(args)}/ledger", params=params)
    if ctx.out.json_mode:
        ctx.out.json(result)
    else:
        ctx.out.table(result.get("data") or [], LEDGER_COLUMNS)
    return 0


def _adjust(ctx: Context, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"tokens": args.tokens, "reason": args.reason}
    if args.expires_at:
        body["expires_at"] = args.expires_at
    if args.idempotency_key:
        body["idempotency_key"] = args.idempotency_key
    ctx.out.show(ctx.api.call("POST", f"{_base(args)}/adjust", body=body))
    return 0


def _convert(ctx: Context, args: argparse.Namespace) -> int:
    body = {"model": args.model, "reason": args.reason, **({"to": args.to} if args.to else {})}
    ctx.out.show(ctx.api.call("POST", f"{_base(args)}/convert", body=body))
    return 0


def _owner(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--team", help="the team whose credit this is")
    parser.add_argument("--deployment", help="the deployment whose credit this is")


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    credits = group(sub, "credits", "prepaid credit: top-ups, lots, ledger, adjustments", common)
    top_up = leaf(credits, "top-up", "add a lot of plan tokens (idempotent by --idempotency-key)", common, _top_up)
    _owner(top_up)
    top_up.add_argument("tokens", type=int, help="plan tokens, more than 0")
    top_up.add_argument("--expires-at", help="ISO 8601 with a UTC offset (default: the service's expiry days)")
    top_up.add_argument("--model", help="a pack usable only with this model of the plan")
    top_up.add_argument("--reference", help="e.g. the invoice number")
    top_up.add_argument("--reason", help="recorded in the ledger and the audit log")
    top_up.add_argument("--idempotency-key", help="reuse it to retry a top-up without crediting twice")
    _owner(leaf(credits, "show", "balance, reserved, shortfall and open lots", common, _show))
    ledger = leaf(credits, "ledger", "top-ups, expiries, conversions, adjustments and hourly consumption", common,
                  _ledger)
    _owner(ledger)
    ledger.add_argument("--from", dest="start", help="ISO 8601 date or time (default: 30 days before --to)")
    ledger.add_argument("--to", dest="end", help="ISO 8601 date or time (default: now)")
    ledger.add_argument("--csv", help="write the ledger to this CSV file")
    adjust = leaf(credits, "adjust", "add (+N) or take off (-N) plan tokens, with a reason", common, _adjust)
    _owner(adjust)
    adjust.add_argument("tokens", type=int, help="e.g. 500 or -200; never below a zero balance")
    adjust.add_argument("--reason", required=True, help="why: recorded in the ledger and the audit log")
    adjust.add_argument("--expires-at", help="for a positive adjustment: ISO 8601 with a UTC offset")
    adjust.add_argument("--idempotency-key", help="reuse it to retry without adjusting twice (positive only)")
    convert = leaf(credits, "convert", "turn a model's packs into general credit or another model's", common,
                   _convert)
    _owner(convert)
    convert.add_argument("--model", required=True, help="the model whose packs to convert")
    convert.add_argument("--to", help="general, replacement, or a model of the plan (default: as the plan says)")
    convert.add_argument("--reason", required=True, help="recorded in the ledger and the audit log")

"""`models list` (each alias's lifecycle and, for deprecated ones, who still calls them) and `models callers`."""

from __future__ import annotations

import argparse
from typing import Any

from admin.cli.commands import Subparsers, group, leaf
from admin.cli.context import Context

MODELS = "/api/admin/models"
MODEL_COLUMNS = [("id", "MODEL"), ("status", "STATUS"), ("deprecated_at", "DEPRECATED"), ("sunset_at", "SUNSET"),
                 ("replacement", "REPLACEMENT"), ("callers", "CALLERS"), ("requests", "CALLS")]
CALLER_COLUMNS = [("owner", "OWNER"), ("deployment_id", "DEPLOYMENT"), ("team", "TEAM"), ("requests", "CALLS"),
                  ("total_tokens", "TOKENS"), ("last_day", "LAST DAY")]


def _summary(model: dict[str, Any]) -> dict[str, Any]:
    callers = model.get("callers")
    if callers is None:
        return {**model, "callers": "", "requests": ""}
    return {**model, "callers": len(callers), "requests": sum(c.get("requests", 0) for c in callers)}


def _list(ctx: Context, args: argparse.Namespace) -> int:
    report = ctx.api.call("GET", MODELS, params={"days": args.days})
    if ctx.out.json_mode:
        ctx.out.json(report)
        return 0
    models = report.get("data") or []
    ctx.out.info(f"callers of deprecated models from {report.get('from')} to {report.get('to')}")
    ctx.out.table([_summary(model) for model in models], MODEL_COLUMNS)
    for model in models:
        if model.get("callers"):
            ctx.out.table(model["callers"], CALLER_COLUMNS, title=f"still calling {model['id']}")
    return 0


def _callers(ctx: Context, args: argparse.Namespace) -> int:
    report = ctx.api.call("GET", f"{MODELS}/callers", params={"model": args.model, "days": args.days})
    if ctx.out.json_mode:
        ctx.out.json(report)
        return 0
    ctx.out.info(f"callers of {report.get('model')} from {report.get('from')} to {report.get('to')}")
    ctx.out.table(report.get("data") or [], CALLER_COLUMNS)
    return 0


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    models = group(sub, "models", "model aliases: lifecycle, and who still calls deprecated ones", common)
    listing = leaf(models, "list", "every alias of the upstreams file; callers of the deprecated ones", common, _list)
    listing.add_argument("--days", type=int, help="how many days of usage to read (default 7, at most 93)")
    callers = leaf(models, "callers", "who called one model alias", common, _callers)
    callers.add_argument("model", help="the model alias")
    callers.add_argument("--days", type=int, help="how many days of usage to read (default 7, at most 93)")

"""`deployments list|show|rotate|revoke|suspend|resume|limits`: Marketplace deployments and their keys."""

from __future__ import annotations

import argparse
from typing import Any

from admin.cli.api import segment
from admin.cli.commands import Subparsers, add_paging, group, leaf, list_pages
from admin.cli.commands.limits import add_limits_command
from admin.cli.context import Context

DEPLOYMENTS = "/api/admin/deployments"
COLUMNS = [("deployment_id", "DEPLOYMENT ID"), ("application_id", "APPLICATION"), ("state", "STATE"),
           ("plan_id", "PLAN"), ("current_key_id", "CURRENT KEY"), ("rotates_at", "ROTATES")]


def _path(deployment_id: str, action: str | None = None) -> str:
    path = f"{DEPLOYMENTS}/{segment(deployment_id)}"
    return f"{path}/{action}" if action else path


def _list(ctx: Context, args: argparse.Namespace) -> int:
    params = {"state": args.state, "plan": args.plan, "application_id": args.application_id}
    return list_pages(ctx, DEPLOYMENTS, params, args, COLUMNS)


def _show(ctx: Context, args: argparse.Namespace) -> int:
    ctx.out.show(ctx.api.call("GET", _path(args.deployment_id)))
    return 0


def _action(action: str) -> Any:
    def run(ctx: Context, args: argparse.Namespace) -> int:
        body: dict[str, Any] = {"reason": args.reason} if args.reason else {}
        if getattr(args, "no_grace", False):
            body["revoke_previous"] = True
        ctx.out.show(ctx.api.call("POST", _path(args.deployment_id, action), body=body or None))
        return 0

    return run


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    deployments = group(sub, "deployments", "Marketplace deployments (managed applications)", common)
    listing = leaf(deployments, "list", "list deployments", common, _list)
    listing.add_argument("--state", help="e.g. Succeeded, Deleted")
    listing.add_argument("--plan")
    listing.add_argument("--application-id")
    add_paging(listing)
    leaf(deployments, "show", "show a deployment and its history", common, _show).add_argument("deployment_id")
    actions = (("rotate", "rotate a deployment's key now"), ("revoke", "revoke every key of a deployment"),
               ("suspend", "refuse the deployment's keys and key exchange until resumed (403 account_suspended)"),
               ("resume", "let a suspended deployment's current key work again"))
    for action, text in actions:
        parser = leaf(deployments, action, text, common, _action(action))
        parser.add_argument("deployment_id")
        parser.add_argument("--reason", help="recorded in the audit log")
        if action == "rotate":
            parser.add_argument("--no-grace", action="store_true",
                                help="revoke the replaced key now instead of after a grace period (it has leaked)")
    add_limits_command(deployments, common, "deployment_id", _path)

"""`teams list|show|create|update|suspend|resume|limits|byok`."""

from __future__ import annotations

import argparse
from typing import Any

from admin.cli.api import segment
from admin.cli.commands import Subparsers, add_paging, group, leaf, list_pages
from admin.cli.commands.byok import add_byok_command
from admin.cli.commands.limits import add_limits_command
from admin.cli.context import Context
from admin.cli.errors import UsageError

COLUMNS = [("team", "TEAM"), ("plan_id", "PLAN"), ("status", "STATUS"), ("description", "DESCRIPTION"),
           ("created_at", "CREATED")]
TEAMS = "/api/admin/teams"


def team_path(team: str) -> str:
    return f"{TEAMS}/{segment(team)}"


def _list(ctx: Context, args: argparse.Namespace) -> int:
    return list_pages(ctx, TEAMS, {}, args, COLUMNS)


def _show(ctx: Context, args: argparse.Namespace) -> int:
    ctx.out.show(ctx.api.call("GET", team_path(args.team)))
    return 0


def _create(ctx: Context, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"team": args.team, "plan_id": args.plan}
    if args.description is not None:
        body["description"] = args.description
    ctx.out.show(ctx.api.call("POST", TEAMS, body=body))
    return 0


def _update(ctx: Context, args: argparse.Namespace) -> int:
    body = {name: value for name, value in (("description", args.description), ("plan_id", args.plan)) if value}
    if not body:
        raise UsageError("Nothing to update: pass --description and/or --plan.")
    ctx.out.show(ctx.api.call("PATCH", team_path(args.team), body=body))
    return 0


def _status(action: str) -> Any:
    def run(ctx: Context, args: argparse.Namespace) -> int:
        ctx.out.show(ctx.api.call("POST", f"{team_path(args.team)}/{action}"))
        return 0

    return run


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    teams = group(sub, "teams", "teams: who keys belong to, on which plan", common)
    add_paging(leaf(teams, "list", "list teams", common, _list))
    leaf(teams, "show", "show one team", common, _show).add_argument("team")
    create = leaf(teams, "create", "create a team", common, _create)
    create.add_argument("team", help="2-63 characters of a-z, 0-9 and '-'")
    create.add_argument("--plan", required=True, help="plan ID (config/plans.json)")
    create.add_argument("--description")
    update = leaf(teams, "update", "change a team's description (or plan, where the API allows)", common, _update)
    update.add_argument("team")
    update.add_argument("--description")
    update.add_argument("--plan")
    leaf(teams, "suspend", "suspend a team: its keys stop working", common, _status("suspend")).add_argument("team")
    leaf(teams, "resume", "resume a suspended team", common, _status("resume")).add_argument("team")
    add_limits_command(teams, common, "team", team_path)
    add_byok_command(teams, common, team_path)

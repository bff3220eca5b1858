"""`teams byok set|list|remove`: a team's own provider credentials (BYOK), one per model alias.

The credential is read from standard input (a hidden prompt on a terminal), never from the command line, so it
stays out of shell history and process listings; only its last 4 characters are ever shown.
"""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable

from admin.cli.api import segment
from admin.cli.commands import Subparsers, group, leaf
from admin.cli.context import Context
from admin.cli.errors import UsageError

COLUMNS = [("alias", "MODEL"), ("last4", "LAST 4"), ("fallback", "FALLBACK"), ("created_at", "CREATED"),
           ("created_by", "BY")]


def _read_credential(ctx: Context) -> str:
    if ctx.stdin.isatty():
        value = getpass.getpass("Provider API key (hidden): ", stream=ctx.out.stderr)
    else:
        value = ctx.stdin.readline()
    value = value.strip()
    if not value:
        raise UsageError("No API key on standard input: pipe it in, or run on a terminal to be asked for it.")
    return value


def add_byok_command(parent: Subparsers, common: argparse.ArgumentParser, team_path: Callable[[str], str]) -> None:
    def path(args: argparse.Namespace, alias: str | None = None) -> str:
        base = f"{team_path(args.team)}/byok"
        return base if alias is None else f"{base}/{segment(alias)}"

    def set_(ctx: Context, args: argparse.Namespace) -> int:
        body = {"api_key": _read_credential(ctx)}
        ctx.out.show(ctx.api.call("PUT", path(args, args.model), body=body))
        return 0

    def list_(ctx: Context, args: argparse.Namespace) -> int:
        ctx.out.listing(ctx.api.call("GET", path(args)).get("data") or [], COLUMNS, None)
        return 0

    def remove(ctx: Context, args: argparse.Namespace) -> int:
        ctx.out.show(ctx.api.call("DELETE", path(args, args.model)))
        return 0

    byok = group(parent, "byok", "the team's own provider credentials (bring your own key)", common)
    set_parser = leaf(byok, "set", "register or replace the team's key for a model (read from stdin)", common, set_)
    set_parser.add_argument("team")
    set_parser.add_argument("model", help="model alias of an OpenAI-compatible upstream in the team's plan")
    leaf(byok, "list", "list the team's own credentials (last 4 characters only)", common, list_).add_argument("team")
    remove_parser = leaf(byok, "remove", "remove the team's key for a model", common, remove)
    remove_parser.add_argument("team")
    remove_parser.add_argument("model")

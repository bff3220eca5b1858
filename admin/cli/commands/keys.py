"""`keys list|mint|revoke|rotate|revoke-all`: a team's API keys. A minted key is printed once."""

from __future__ import annotations

import argparse
from typing import Any

from admin.cli.api import segment
from admin.cli.commands import Subparsers, group, leaf
from admin.cli.commands.teams import team_path
from admin.cli.context import Context
from admin.cli.errors import UsageError

COLUMNS = [("key_id", "KEY ID"), ("prefix", "PREFIX"), ("status", "STATUS"), ("description", "DESCRIPTION"),
           ("created_at", "CREATED"), ("expires_at", "EXPIRES"), ("last_used_at", "LAST USED"),
           ("revoked_at", "REVOKED")]
KEY_FIELDS = [name for name, _ in COLUMNS]
SHOWN_ONCE = "This key is shown once and cannot be retrieved again: store it now (e.g. in a secret store)."


def _keys_path(team: str) -> str:
    return f"{team_path(team)}/keys"


def _key_path(team: str, key_id: str, action: str) -> str:
    return f"{_keys_path(team)}/{segment(key_id)}/{action}"


def _list(ctx: Context, args: argparse.Namespace) -> int:
    items = ctx.api.call("GET", _keys_path(args.team)).get("data") or []
    ctx.out.listing(items, COLUMNS, None)
    return 0


def _print_minted(ctx: Context, minted: dict[str, Any]) -> None:
    # The one place a key is printed: the API hands it over once, and so does the CLI.
    if ctx.out.json_mode:
        ctx.out.json(minted)
    else:
        ctx.out.record(minted, ["team", *KEY_FIELDS[:-3]])
        ctx.out.line(f"key: {minted['key']}")
    ctx.out.warn(SHOWN_ONCE)


def _body(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _mint(ctx: Context, args: argparse.Namespace) -> int:
    _print_minted(ctx, ctx.api.call("POST", _keys_path(args.team), body=_body(args, ("description", "expires_at"))))
    return 0


def _rotate(ctx: Context, args: argparse.Namespace) -> int:
    body = _body(args, ("description", "expires_at", "grace_hours"))
    if args.no_grace:
        body["revoke_previous"] = True
    _print_minted(ctx, ctx.api.call("POST", _key_path(args.team, args.key_id, "rotate"), body=body))
    return 0


def _revoke(ctx: Context, args: argparse.Namespace) -> int:
    ctx.out.show(ctx.api.call("POST", _key_path(args.team, args.key_id, "revoke")), KEY_FIELDS)
    return 0


def _confirm(ctx: Context, question: str) -> bool:
    if not ctx.stdin.isatty():
        raise UsageError("Refusing without confirmation: pass --yes.")
    ctx.out.info(f"{question} [y/N]")
    return ctx.stdin.readline().strip().lower() in ("y", "yes")


def _revoke_all(ctx: Context, args: argparse.Namespace) -> int:
    keys = [k for k in ctx.api.call("GET", _keys_path(args.team)).get("data") or [] if k.get("status") != "revoked"]
    if keys and not args.yes and not _confirm(ctx, f"Revoke all {len(keys)} keys of team {args.team}?"):
        ctx.out.info("Nothing revoked.")
        return 0
    revoked: list[str] = []
    with ctx.out.progress(f"revoking keys of {args.team}", len(keys)) as update:
        for key in keys:
            ctx.api.call("POST", _key_path(args.team, key["key_id"], "revoke"))
            revoked.append(key["key_id"])
            update(len(revoked))
    if ctx.out.json_mode:
        ctx.out.json({"team": args.team, "revoked_key_ids": revoked})
    else:
        ctx.out.info(f"Revoked {len(revoked)} key(s) of team {args.team}.")
    return 0


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    keys = group(sub, "keys", "a team's API keys", common)
    leaf(keys, "list", "list a team's keys (never the keys themselves)", common, _list).add_argument("team")
    mint = leaf(keys, "mint", "mint a key for a team (printed once)", common, _mint)
    mint.add_argument("team")
    mint.add_argument("--description")
    mint.add_argument("--expires-at", help="ISO 8601 timestamp with a UTC offset")
    revoke = leaf(keys, "revoke", "revoke a key (one-way)", common, _revoke)
    revoke.add_argument("team")
    revoke.add_argument("key_id")
    rotate = leaf(keys, "rotate", "replace a key; the old one keeps working for a grace period", common, _rotate)
    rotate.add_argument("team")
    rotate.add_argument("key_id")
    grace = rotate.add_mutually_exclusive_group()
    grace.add_argument("--grace-hours", type=float, help="how long the old key stays usable")
    grace.add_argument("--no-grace", action="store_true", help="revoke the old key now (it has leaked)")
    rotate.add_argument("--description")
    rotate.add_argument("--expires-at", help="ISO 8601 timestamp with a UTC offset")
    revoke_all = leaf(keys, "revoke-all", "revoke every key of a team", common, _revoke_all)
    revoke_all.add_argument("team")
    revoke_all.add_argument("--yes", action="store_true", help="do not ask for confirmation")

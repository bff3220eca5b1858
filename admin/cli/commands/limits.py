"""`teams limits` and `deployments limits`: set or clear an owner's limit override (RPM, TPM, monthly token cap,
allowed models), optionally until an expiry."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from admin.cli.commands import Subparsers, leaf
from admin.cli.context import Context
from admin.cli.errors import UsageError

_NUMBERS = (("rpm", "requests per minute"), ("tpm", "tokens per minute"),
            ("monthly_tokens", "a hard cap on the month's plan tokens (quota plans)"))


def add_limits_command(
    parent: Subparsers, common: argparse.ArgumentParser, owner_arg: str, path_of: Callable[[str], str]
) -> None:
    def run(ctx: Context, args: argparse.Namespace) -> int:
        path = f"{path_of(getattr(args, owner_arg))}/limits"
        reason = {"reason": args.reason} if args.reason else {}
        if args.clear:
            ctx.out.show(ctx.api.call("DELETE", path, body=reason or None))
            return 0
        body: dict[str, Any] = {name: getattr(args, name) for name, _ in _NUMBERS if getattr(args, name) is not None}
        if args.models:
            body["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
        if not body:
            raise UsageError("Nothing to set: pass --rpm, --tpm, --monthly-tokens and/or --models (or --clear).")
        if args.expires_at:
            body["expires_at"] = args.expires_at
        ctx.out.show(ctx.api.call("PUT", path, body={**body, **reason}))
        return 0

    parser = leaf(parent, "limits", "override the plan's limits (replaces any earlier override)", common, run)
    parser.add_argument(owner_arg)
    for name, text in _NUMBERS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, help=text)
    parser.add_argument("--models", help="comma-separated model aliases the owner may use")
    parser.add_argument("--expires-at", help="ISO 8601 timestamp with a UTC offset; the plan applies again after it")
    parser.add_argument("--reason", help="recorded in the audit log")
    parser.add_argument("--clear", action="store_true", help="remove the override: the plan's limits apply again")

"""`login`, `logout`, `whoami`, `configure` (save a profile) and `ui` (open the usage page signed in)."""

from __future__ import annotations

import argparse
import webbrowser
from dataclasses import asdict
from urllib.parse import quote

from admin.cli.commands import Subparsers, leaf
from admin.cli.config import PROFILE_FIELDS, save_profile
from admin.cli.context import Context
from admin.cli.errors import UsageError

UI_PATH = "/api/admin/ui"


def _login(ctx: Context, args: argparse.Namespace) -> int:
    who = ctx.sign_in.login(ctx.out.stderr)
    if ctx.out.json_mode:
        ctx.out.json({"signed_in": True, "account": who})
    else:
        ctx.out.info(f"Signed in as {who}.")
    return 0


def _logout(ctx: Context, args: argparse.Namespace) -> int:
    removed = ctx.sign_in.logout()
    if ctx.out.json_mode:
        ctx.out.json({"signed_in": False})
    else:
        ctx.out.info("Signed out." if removed else "Was not signed in.")
    return 0


def _whoami(ctx: Context, args: argparse.Namespace) -> int:
    """Who the token cache holds, read offline; no token is shown."""
    if ctx.sign_in.uses_client_secret:
        accounts = [{"username": f"app {ctx.config.client_id}", "realm": ctx.config.tenant, "environment": None}]
    else:
        accounts = ctx.sign_in.accounts()
    columns = [("username", "ACCOUNT"), ("realm", "TENANT"), ("environment", "AUTHORITY HOST")]
    ctx.out.listing([{name: a.get(name) for name, _ in columns} for a in accounts], columns, None)
    return 0 if accounts else 3


def _configure(ctx: Context, args: argparse.Namespace) -> int:
    values = {name: value for name, value in asdict(ctx.config).items() if name in PROFILE_FIELDS and value}
    save_profile(ctx.config.profile, {name: str(value) for name, value in values.items()})
    if ctx.out.json_mode:
        ctx.out.json(values)
    else:
        ctx.out.info(f"Saved {ctx.config.profile}.")
    return 0


def _ui(ctx: Context, args: argparse.Namespace) -> int:
    # The token rides in the URL fragment, which browsers never send to a server.
    url = f"{ctx.config.url}{UI_PATH}#access_token={quote(ctx.sign_in.token(), safe='')}"
    if args.print_url:
        ctx.out.warn("This URL holds your access token (valid about an hour): do not share or log it.")
        ctx.out.line(url)
        return 0
    if not webbrowser.open(url):
        raise UsageError("No browser found: run `python -m admin ui --print-url` and open the URL yourself.")
    ctx.out.info("Opened the usage page in your browser.")
    return 0


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    leaf(sub, "login", "sign in (device code; client credentials with --client-secret)", common, _login)
    leaf(sub, "logout", "forget every cached token", common, _logout)
    leaf(sub, "whoami", "who is signed in (from the token cache)", common, _whoami)
    leaf(sub, "configure", "save --url/--authority/--tenant/--client-id/--scope/--ca-bundle as the profile",
         common, _configure)
    ui = leaf(sub, "ui", "open the operators' usage page, signed in", common, _ui)
    ui.add_argument("--print-url", action="store_true", help="print the URL (it holds your token) instead")

"""`python -m admin` / `liutong-admin`: the operators' command line for the admin API."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

import requests

from admin.cli.api import AdminApi
from admin.cli.auth import SignIn
from admin.cli.commands import credits, deployments, keys, models, reports, session, teams
from admin.cli.config import DEFAULT_AUTHORITY, DEFAULT_URL, ENV_NAMES, PROFILE_ENV, TOKEN_CACHE_ENV, resolve
from admin.cli.context import Context
from admin.cli.errors import CliError, Unavailable
from admin.cli.output import Output

EPILOG = f"""\
Settings come from the flags, then {', '.join(ENV_NAMES.values())}, then the profile
({PROFILE_ENV}, default ~/.config/liutong-admin/profile.json: `make run` writes one for the local stack).
Tokens are cached in {TOKEN_CACHE_ENV} (default ~/.cache/liutong-admin/token_cache.json, mode 0600).
Exit codes: 0 ok, 1 the API refused (4xx), 2 bad usage, 3 not signed in or not allowed, 4 service unavailable.
"""
FLAGS = ("url", "authority", "tenant", "client_id", "scope", "ca_bundle", "client_secret", "profile", "token_cache")


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--url", default=default(None), help=f"admin API base URL (default {DEFAULT_URL})")
    parser.add_argument("--authority", default=default(None), help=f"Entra host (default {DEFAULT_AUTHORITY})")
    parser.add_argument("--tenant", default=default(None), help="the publisher's tenant ID")
    parser.add_argument("--client-id", default=default(None), help="the CLI's app registration (or the automation app)")
    parser.add_argument("--scope", default=default(None), help="admin API scope, e.g. api://…/user_impersonation")
    parser.add_argument("--ca-bundle", default=default(None), help="CA certificate(s) to trust for the authority")
    parser.add_argument("--client-secret", default=default(None),
                        help="sign in as an app (client credentials); prefer LIUTONG_ADMIN_CLIENT_SECRET")
    parser.add_argument("--profile", default=default(None), help="profile file")
    parser.add_argument("--token-cache", default=default(None), help="token cache file")
    parser.add_argument("--json", action="store_true", default=default(False), help="machine-readable output")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    parser = argparse.ArgumentParser(
        prog="liutong-admin", description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (session, teams, keys, deployments, reports, models, credits):
        module.register(sub, common)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Runs one command; returns its exit code. `environ` defaults to os.environ (tests pass their own)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    out = Output(json_mode=args.json, stdout=stdout or sys.stdout, stderr=stderr or sys.stderr)
    try:
        flags = {name: getattr(args, name, None) for name in FLAGS}
        config = resolve(flags, os.environ if environ is None else environ)
    except CliError as error:
        out.error(error.message)
        return error.exit_code
    sign_in = SignIn(config)
    api = AdminApi(config.url, sign_in.token, renew=lambda: sign_in.renew(out.stderr))
    try:
        return int(args.run(Context(config, out, sign_in, api, stdin or sys.stdin), args))
    except requests.RequestException as error:
        unavailable = Unavailable(f"Cannot reach the sign-in authority {config.authority}: {type(error).__name__}")
        out.error(unavailable.message)
        return unavailable.exit_code
    except CliError as error:
        out.error(error.message)
        return error.exit_code
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130
    finally:
        api.close()
        sign_in.close()

"""The CLI's commands, one module per noun; each registers its argparse sub-commands with a `run`."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from admin.cli.context import Context
from admin.cli.output import Columns

Run = Callable[[Context, argparse.Namespace], int]
if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction


def group(sub: Subparsers, name: str, help_text: str, common: argparse.ArgumentParser) -> Subparsers:
    parser = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def leaf(sub: Subparsers, name: str, help_text: str, common: argparse.ArgumentParser, run: Run) -> Any:
    parser = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
    parser.set_defaults(run=run)
    return parser


def add_paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, help="items per page (the API's default when omitted)")
    parser.add_argument("--all", action="store_true", help="follow continuation tokens to the last page")
    parser.add_argument("--continuation-token", help="start from this page")


def list_pages(ctx: Context, path: str, params: Mapping[str, Any], args: argparse.Namespace, columns: Columns) -> int:
    query = {**params, "limit": args.limit, "continuation_token": args.continuation_token}
    items: list[dict[str, Any]] = []
    next_token: str | None = None
    for page in ctx.api.pages(path, query, every=args.all):
        items.extend(page.items)
        next_token = page.next_token
    ctx.out.listing(items, columns, next_token)
    return 0

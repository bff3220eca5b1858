"""`python -m localdev.standin`: serve the Azure stand-in in the foreground until interrupted."""

from __future__ import annotations

import argparse
from typing import Any

from localdev.standin.msi import PATH as MSI_PATH
from localdev.standin.server import base_url_of, bind, build_config, make_server
from localdev.standin.state import StandinState


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localdev.standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7072)
    parser.add_argument("--identity-header", help="secret for X-IDENTITY-HEADER (default: random)")
    parser.add_argument("--service-client-id", help="client ID of the service's own identity")
    parser.add_argument("--service-principal-id", help="object (principal) ID of the service's own identity")
    parser.add_argument(
        "--publisher-tenant-id",
        "--service-tenant-id",
        dest="publisher_tenant_id",
        help="tenant of the service's own identity",
    )
    parser.add_argument("--service-resource-id", help="ARM resource ID of the service's own identity")
    parser.add_argument("--v1-issuer-host", help="v1 issuer prefix (default: {base}/sts)")
    parser.add_argument(
        "--token-lifetime", type=int, dest="token_lifetime_seconds", help="seconds (default 3600)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = vars(parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    overrides: dict[str, Any] = {name: value for name, value in args.items() if value is not None}
    sock = bind(host, port)
    state = StandinState(base_url_of(sock), build_config(None, overrides))
    print(
        f"Azure stand-in listening on {state.base_url} "
        f"(IDENTITY_ENDPOINT={state.base_url}{MSI_PATH} IDENTITY_HEADER={state.config.identity_header})",
        flush=True,
    )
    make_server(state).run(sockets=[sock])


if __name__ == "__main__":
    main()

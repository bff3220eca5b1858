"""Serve the route table under uvicorn with settings from the environment (LIUTONG_*).

The local equivalent of the Functions host for one process: used by the benchmark, which needs the
service in its own process. `make run` uses localdev.run, which also starts the dependencies.
"""

from __future__ import annotations

import argparse

import uvicorn

from core.settings import Settings
from localdev.server import UVICORN_OPTIONS, build_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    settings = Settings()
    uvicorn.run(build_app(settings), host=args.host, port=args.port, log_level=args.log_level, **UVICORN_OPTIONS)


if __name__ == "__main__":
    main()

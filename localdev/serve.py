"""Serve the route table under uvicorn with settings from the environment (LIUTONG_*).

The local equivalent of the Functions host for one process: used by the benchmarks and tests that need the
service in its own process (a second instance beside localdev.stack's, say: settings_environ gives it the same
settings). `make run` uses localdev.run, which also starts the dependencies.
"""

from __future__ import annotations

import argparse

import uvicorn
from pydantic import SecretStr

from core.settings import Settings
from localdev.server import UVICORN_OPTIONS, build_app


def settings_environ(settings: Settings) -> dict[str, str]:
    """The LIUTONG_* variables under which Settings() in another process equals `settings`."""
    environ = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        environ[f"LIUTONG_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return environ


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

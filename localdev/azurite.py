"""Start and stop Azurite's Table service (the real storage emulator, from npm)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
AZURITE_TABLE = REPO_ROOT / "node_modules" / ".bin" / "azurite-table"

# Azurite's published development account; it exists only inside the emulator.
DEV_ACCOUNT = "devstoreaccount1"
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def connection_string(host: str, port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_ACCOUNT_KEY};"
        f"TableEndpoint=http://{host}:{port}/{DEV_ACCOUNT};"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    host: str, port: int, *, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def start_azurite(
    host: str = "127.0.0.1", port: int = 10002, *, quiet: bool = True, location: str | Path | None = None
) -> subprocess.Popen[bytes]:
    """In memory by default; with `location`, data is kept in that folder across restarts."""
    if not AZURITE_TABLE.exists():
        raise FileNotFoundError(f"{AZURITE_TABLE} is missing: run `make setup` (npm ci)")
    persistence = ["--location", str(location)] if location is not None else ["--inMemoryPersistence"]
    args = [
        str(AZURITE_TABLE),
        *persistence,
        "--tableHost", host,
        "--tablePort", str(port),
        "--skipApiVersionCheck",
        "--disableTelemetry",
    ]
    if quiet:
        args.append("--silent")
    output = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen(args, stdout=output, stderr=output, cwd=REPO_ROOT)
    try:
        wait_for_port(host, port, process=process)
    except BaseException:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen[bytes], *, timeout: float = 5.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)

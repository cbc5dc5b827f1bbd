"""Real server processes for tests and the benchmark: the IPX app under uvicorn, and localstripe."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from ipx.cli import WORKER_HEALTHCHECK_SECONDS

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, deadline_s: float = 60) -> None:
    """Poll until the server answers; a process that exits early fails with its log."""
    give_up = time.monotonic() + deadline_s
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not start:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def ipx_server(env: dict[str, str], log_dir: Path, *, workers: int = 1) -> Iterator[str]:
    """`uvicorn --factory ipx.app:create_app` configured only through IPX_* variables; yields its base URL."""
    port = free_port()
    log = log_dir / f"uvicorn-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "python"), "-m", "uvicorn", "--factory", "ipx.app:create_app", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers),
             "--timeout-worker-healthcheck", str(WORKER_HEALTHCHECK_SECONDS), "--log-level", "info", "--no-access-log"],
            env={**os.environ, **env, "IPX_PUBLIC_URL": f"http://127.0.0.1:{port}"}, stdout=out,
            stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2],
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{url}/api/v1/log/checkpoint", process, log)
        yield url
    finally:
        _stop(process)


@contextmanager
def localstripe_server(log_dir: Path) -> Iterator[str]:
    """localstripe on a free port, started from scratch (its state lives in memory)."""
    port = free_port()
    log = log_dir / f"localstripe-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "localstripe"), "--port", str(port), "--from-scratch"], stdout=out,
            stderr=subprocess.STDOUT, cwd=log_dir,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{url}/js.stripe.com/v3/", process, log)
        yield url
    finally:
        _stop(process)

"""Real server processes for the integration tests and the benchmark: uvicorn and moto on free ports.

Every server runs in its own process group, so a test can SIGKILL it with all its workers (a real
crash) and teardown can always reap whatever is left, whichever way the test ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ipx.accounts.models import Role
from ipx.accounts.service import create_user
from ipx.app import bootstrap, create_app
from ipx.cli import KEEP_ALIVE_SECONDS, WORKER_HEALTHCHECK_SECONDS
from ipx.config import Settings
from ipx.db import make_engine, make_session_factory, transaction
from tests.conftest import ApiUser

VENV_BIN = Path(sys.executable).parent
READY_TIMEOUT_SECONDS = 90
STOP_TIMEOUT_SECONDS = 15
CLIENT_TIMEOUT_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ServerProcess:
    """One server command line, restartable on the same port, with its output kept in a log file."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    url: str
    ready_path: str
    ready_timeout: float = READY_TIMEOUT_SECONDS
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=self.log_path.parent,
            )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        ready_url = self.url + self.ready_path
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.argv} was not ready after {self.ready_timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def _signal_group(self, signum: signal.Signals) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):  # the whole group is already gone
                os.killpg(self.process.pid, signum)

    def crash(self) -> None:
        """kill -9 the whole process group: supervisor and workers die mid-request, nothing is flushed."""
        self._signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def stop(self) -> None:
        """Graceful shutdown, or a kill if it does not come; safe to call twice or after a crash."""
        if self.process is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait()
        # workers that outlived their supervisor would hold the port and the database
        self._signal_group(signal.SIGKILL)
        self.process = None


def ipx_server(
    database_url: str,
    data_dir: Path,
    *,
    workers: int = 2,
    ready_timeout: float = READY_TIMEOUT_SECONDS,
    access_log: bool = False,
    **settings: str | list[str],
) -> ServerProcess:
    """An IPX server as `ipx serve` runs it: bootstrapped once (key, origin, first checkpoint), then forked.

    Like `ipx serve`, the key exists before the workers start, so no worker's startup has to create it
    while another worker may be doing the same. `settings` are extra IPX_* variables (e.g. blob_url).
    A list setting goes to the workers as JSON, as IPX reads it from the environment.
    `ready_timeout` is for benchmarks whose workers load a large catalogue at start-up. `access_log` writes every
    request's line to server.log, for a test whose requests must be traced to the server.
    """
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    values = {"database_url": database_url, "data_dir": str(data_dir), "public_url": public_url, **settings}
    app = create_app(Settings(**values))  # type: ignore[arg-type]
    try:
        bootstrap(app.state, app.state.settings)
    finally:
        app.state.engine.dispose()
    env = {name: value for name, value in os.environ.items() if not name.startswith("IPX_")}
    env.update({f"IPX_{name.upper()}": value if isinstance(value, str) else json.dumps(value)
                for name, value in values.items()})
    argv = [
        sys.executable, "-m", "uvicorn", "ipx.app:create_app", "--factory", "--workers", str(workers),
        "--host", "127.0.0.1", "--port", str(port), "--timeout-worker-healthcheck", str(WORKER_HEALTHCHECK_SECONDS),
        "--timeout-keep-alive", str(KEEP_ALIVE_SECONDS),
        "--log-level", "info",  # the supervisor's word when a worker dies is at info
        *([] if access_log else ["--no-access-log"]),
    ]
    data_dir.mkdir(parents=True, exist_ok=True)
    return ServerProcess(argv, env, data_dir / "server.log", public_url, "/.well-known/ipx/keys", ready_timeout)


def add_staff(database_url: str, email: str, password: str) -> None:
    """A staff account, made straight in the database: `ipx users create` does the same, never the API."""
    engine = make_engine(database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            create_user(session, email=email, password=password, display_name="Sam Staff", role=Role.staff)
    finally:
        engine.dispose()


def moto_server(work_dir: Path) -> ServerProcess:
    """moto's S3 in server mode: a real HTTP endpoint speaking the S3 protocol, in its own process."""
    port = free_port()
    work_dir.mkdir(parents=True, exist_ok=True)
    argv = [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    return ServerProcess(argv, dict(os.environ), work_dir / "moto.log", f"http://127.0.0.1:{port}", "/moto-api/")


def sign_up(client: httpx.Client, count: int, label: str) -> list[ApiUser]:
    return [ApiUser(client, f"{label}{n}@example.org", f"{label.title()} {n}") for n in range(count)]  # type: ignore[arg-type]


@dataclass(frozen=True)
class Outcome:
    """One registration attempt as the client saw it; status None means the connection broke."""

    data: bytes
    status: int | None
    body: dict[str, Any] | None

    @property
    def acknowledged(self) -> bool:
        return self.status == 201


def register_in_parallel(
    accounts: Sequence[ApiUser], payloads: Sequence[bytes], *, threads: int = 16, filename: str = "work.png",
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Register every payload (round-robin over the accounts) from `threads` concurrent clients.

    A request that times out means the server is stuck: the attempts still queued are then given up
    at once instead of each waiting out its own timeout.
    """
    stuck = threading.Event()

    def attempt(account: ApiUser, data: bytes, title: str) -> Outcome:
        if stuck.is_set():
            return Outcome(data, None, None)
        try:
            response = account.register(data, title=title, filename=filename)
        except httpx.TimeoutException:
            stuck.set()
            return Outcome(data, None, None)
        except httpx.TransportError:
            return Outcome(data, None, None)
        is_json = response.headers.get("content-type", "").endswith("json")  # also problem+json
        outcome = Outcome(data, response.status_code, response.json() if is_json else {"detail": response.text})
        if on_done is not None:
            on_done(outcome)
        return outcome

    with ThreadPoolExecutor(threads) as pool:
        futures = [
            pool.submit(attempt, accounts[n % len(accounts)], data, f"Parallel work {n}")
            for n, data in enumerate(payloads)
        ]
        return [future.result() for future in futures]

"""Fixtures for tests against real server processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.live import CLIENT_TIMEOUT_SECONDS, ServerProcess, ipx_server


@pytest.fixture
def launch_ipx(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start IPX servers (uvicorn processes); every one is stopped at teardown, even after a failure."""
    servers: list[ServerProcess] = []

    def launch(database_url: str, *, workers: int = 2, access_log: bool = False, **settings: str) -> ServerProcess:
        server = ipx_server(database_url, tmp_path / "data", workers=workers, access_log=access_log, **settings)
        servers.append(server)
        server.start()
        return server

    yield launch
    for server in servers:
        server.stop()


@pytest.fixture
def http_client(request: pytest.FixtureRequest) -> Callable[[ServerProcess], httpx.Client]:
    """httpx clients bound to a server's URL, closed at teardown."""

    def connect(server: ServerProcess) -> httpx.Client:
        client = httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT_SECONDS)
        request.addfinalizer(client.close)
        return client

    return connect

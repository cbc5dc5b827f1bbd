"""Shared fixtures: a migrated database per test on SQLite and (when reachable) PostgreSQL.

Both databases are built once per session by Alembic, then copied per test (a file copy for SQLite,
CREATE DATABASE ... TEMPLATE for PostgreSQL), so every test starts from the real migrated schema.
With CI=true an unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import io
import itertools
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import event

from ipx.accounts.models import Role
from ipx.accounts.service import create_user
from ipx.app import create_app
from ipx.config import Settings
from ipx.db import transaction
from ipx.migrations import upgrade
from ipx.registry.evidence import TrustedKey, published_keys

PG_ADMIN_URL = os.environ.get("IPX_TEST_PG_URL", "postgresql://127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
SHARED = Path(__file__).resolve().parents[2] / "shared"
# bench/_edits.py made importable: tests apply the same edits the robustness benchmark measures.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def postgres_reachable() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def require_postgres() -> None:
    if postgres_reachable():
        return
    if IN_CI:
        pytest.fail(f"PostgreSQL is required when CI=true but {PG_ADMIN_URL} is not reachable")
    pytest.skip(f"PostgreSQL at {PG_ADMIN_URL} is not reachable")


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


class PostgresDatabases:
    """Creates throwaway databases from one migrated template; drops them all at the end."""

    def __init__(self) -> None:
        self.prefix = f"ipx_t_{uuid.uuid4().hex[:8]}"
        self.template = f"{self.prefix}_tpl"
        self.created: list[str] = []
        _pg_admin(f"CREATE DATABASE {self.template}")
        self.created.append(self.template)
        upgrade(_pg_url(self.template))

    def new(self) -> str:
        name = f"{self.prefix}_{len(self.created)}"
        _pg_admin(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        self.created.append(name)
        return _pg_url(name)

    def drop_all(self) -> None:
        for name in reversed(self.created):
            _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PostgresDatabases]:
    require_postgres()
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh migrated database: every API test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        target = tmp_path / "ipx.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    return request.getfixturevalue("pg_databases").new()


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    def build(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "data_dir": tmp_path / "data", "database_url": database_url, "public_url": "http://testserver",
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def get_counting_queries(
    client: TestClient, path: str, headers: dict[str, str] | None = None
) -> tuple[httpx.Response, int]:
    """GET `path`, and how many SQL statements the app ran to answer it (for pages that must not ask one per row)."""
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    engine = client.app.state.engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.get(path, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return response, len(statements)


def png_bytes(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small distinct PNG per seed (a Mandelbrot crop), for registrations."""
    image = Image.effect_mandelbrot(size, (-2 + seed * 0.01, -1.1, 0.9 + seed * 0.001, 1.2), 30).convert("RGB")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def ipx_keys(client: httpx.Client) -> dict[str, TrustedKey]:
    """IPX's published keys, as a verifier saves them: what every evidence bundle is checked against."""
    return published_keys(client.get("/.well-known/ipx/keys").json())


def bearer_headers(client: httpx.Client, email: str, password: str) -> dict[str, str]:
    """Log in through the API (in-process or a live server) and return the Authorization header it grants."""
    token = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


class ApiUser:
    def __init__(self, client: TestClient, email: str, display_name: str, password: str = "correct horse 42") -> None:
        self.client, self.email, self.display_name, self.password = client, email, display_name, password
        created = client.post(
            "/api/v1/auth/register", json={"email": email, "password": password, "display_name": display_name}
        )
        assert created.status_code == 201, created.text
        self.account_id = created.json()["account_id"]
        self.headers = bearer_headers(client, email, password)

    def register(self, data: bytes, title: str = "A work", filename: str = "work.png", **fields: str):  # type: ignore[no-untyped-def]
        return self.client.post(
            "/api/v1/works", headers=self.headers, files={"file": (filename, data)}, data={"title": title, **fields}
        )


@pytest.fixture
def make_user(client: TestClient) -> Callable[..., ApiUser]:
    counter = iter(range(1_000_000))

    def build(display_name: str | None = None) -> ApiUser:
        n = next(counter)
        return ApiUser(client, f"user{n}@example.org", display_name or f"Creator {n}")

    return build


@pytest.fixture
def make_staff(client: TestClient) -> Callable[[], dict[str, str]]:
    counter = itertools.count()

    def build() -> dict[str, str]:
        email, password = f"staff{next(counter)}@ipx.example", "staff password 1"
        with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
            create_user(session, email=email, password=password, display_name="Sam Staff", role=Role.staff)
        return bearer_headers(client, email, password)

    return build


@pytest.fixture
def staff(make_staff: Callable[[], dict[str, str]]) -> dict[str, str]:
    return make_staff()

"""Run Alembic migrations programmatically (`ipx db upgrade`, `make run`, tests)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from ipx.config import PROJECT_ROOT

MIGRATIONS_DIR = PROJECT_ROOT / "storage" / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "heads") -> None:
    command.upgrade(alembic_config(database_url), revision)

"""The migrations build exactly the tables the models declare, on both databases: a model changed without its
migration would work in tests that create tables from models, then fail on a deployed database."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

import ipx.models  # noqa: F401 -- registers every domain's tables on Base.metadata
from ipx.db import Base


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(_comparison(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def _comparison(connection: Connection) -> MigrationContext:
    """Alembic's comparison, told that a schema item declared for another database (`ddl_if`: the trigram indexes
    exist on PostgreSQL only) is not expected on this one."""
    dialect = connection.dialect.name

    def declared_here(item: object, name: str | None, kind: str, reflected: bool, compare_to: object) -> bool:
        condition = getattr(item, "_ddl_if", None)  # SQLAlchemy keeps Index.ddl_if(...) there
        return condition is None or condition.dialect in (None, dialect)

    return MigrationContext.configure(connection, opts={"include_object": declared_here})

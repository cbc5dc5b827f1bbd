"""The migrations build exactly the tables the models declare, on both databases: a model changed without its
migration would work in tests that create tables from models, then fail on a deployed database."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import ipx.models  # noqa: F401 -- registers every domain's tables on Base.metadata
from ipx.db import Base


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []

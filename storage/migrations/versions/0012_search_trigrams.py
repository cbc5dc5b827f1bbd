"""Trigram indexes for the registry's title and creator-name search (PostgreSQL)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

A search is a case-insensitive substring match (LIKE '%q%' on lower(...)), which a B-tree cannot serve: at 100,000
works each search scanned the table (0.35 s). pg_trgm's GIN indexes serve it for queries of three characters or
more (bench/registry_search.py). SQLite, the embedded default for small registries, keeps scanning.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

TRIGRAM_INDEXES = {
    "ix_works_title_trigrams": ("works", "title"),
    "ix_users_display_name_trigrams": ("users", "display_name"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")  # a trusted extension: the database's owner may create it
    for name, (table, column) in TRIGRAM_INDEXES.items():
        op.create_index(name, table, [sa.text(f"lower({column}) gin_trgm_ops")], postgresql_using="gin")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (table, _) in TRIGRAM_INDEXES.items():
        op.drop_index(name, table_name=table)

"""Trigram index for the marketplace's listing search (PostgreSQL)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

Every search word must appear in a listing's search_text (title, creator, work type and tags, kept in lower case):
LIKE '%word%', which a B-tree cannot serve, so at 100,000 listings a rare word scanned them all (bench/marketplace.py).
pg_trgm (enabled by 0012) serves it for words of three characters or more. SQLite keeps scanning.
"""

from __future__ import annotations

from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index(
        "ix_listings_search_text_trigrams", "listings", ["search_text"], postgresql_using="gin",
        postgresql_ops={"search_text": "gin_trgm_ops"},
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_listings_search_text_trigrams", table_name="listings")

"""RFC 3161 timestamps from an outside authority over the log's statements

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ipx.db

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('log_timestamps',
    sa.Column('index', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('authority_url', sa.String(length=500), nullable=False),
    sa.Column('response', sa.LargeBinary(), nullable=False),
    sa.Column('stamped_at', ipx.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['index'], ['log_leaves.index'], ),
    sa.PrimaryKeyConstraint('index')
    )


def downgrade() -> None:
    op.drop_table('log_timestamps')

"""Witnesses' cosignatures of the log's checkpoints

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ipx.db

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('checkpoint_cosignatures',
    sa.Column('tree_size', sa.BigInteger(), nullable=False),
    sa.Column('witness', sa.String(length=255), nullable=False),
    sa.Column('line', sa.Text(), nullable=False),
    sa.Column('cosigned_at', ipx.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tree_size'], ['log_checkpoints.tree_size'], ),
    sa.PrimaryKeyConstraint('tree_size', 'witness')
    )


def downgrade() -> None:
    op.drop_table('checkpoint_cosignatures')

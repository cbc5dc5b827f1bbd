"""The latest checkpoint cosigned for each log this instance witnesses

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ipx.db

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('witnessed_logs',
    sa.Column('origin', sa.String(length=255), nullable=False),
    sa.Column('tree_size', sa.BigInteger(), nullable=False),
    sa.Column('root_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('updated_at', ipx.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('origin')
    )


def downgrade() -> None:
    op.drop_table('witnessed_logs')

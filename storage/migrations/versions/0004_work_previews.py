"""work previews: a small JPEG per image work, kept instead of decoding the file for every thumbnail

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('work_previews',
    sa.Column('work_id', sa.String(length=36), nullable=False),
    sa.Column('side', sa.SmallInteger(), nullable=False),
    sa.Column('jpeg', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['work_id'], ['works.id'], ),
    sa.PrimaryKeyConstraint('work_id', 'side')
    )


def downgrade() -> None:
    op.drop_table('work_previews')

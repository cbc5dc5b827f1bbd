"""payment customers: each buyer's customer record at a payment provider, for card payments on the website

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ipx.db

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('payment_customers',
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('customer_ref', sa.String(length=255), nullable=False),
    sa.Column('created_at', ipx.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('account_id', 'provider')
    )


def downgrade() -> None:
    op.drop_table('payment_customers')

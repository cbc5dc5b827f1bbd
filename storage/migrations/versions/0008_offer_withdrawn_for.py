"""offers withdrawn by an exclusive sale name that sale's offer, so refunding it can put them back

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# the reason _sell_exclusively wrote until now: "exclusive offer <36-character offer id> was sold"
SOLD_REASON_PREFIX = 'exclusive offer '


def upgrade() -> None:
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('withdrawn_for_offer_id', sa.String(length=36), nullable=True))
    op.execute(
        f"UPDATE offers SET withdrawn_for_offer_id = substr(withdrawn_reason, {len(SOLD_REASON_PREFIX) + 1}, 36) "
        f"WHERE status = 'withdrawn' AND withdrawn_reason LIKE '{SOLD_REASON_PREFIX}% was sold'"
    )


def downgrade() -> None:
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.drop_column('withdrawn_for_offer_id')

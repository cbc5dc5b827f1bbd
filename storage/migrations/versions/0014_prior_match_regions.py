"""flags of a picture matched by its keypoints keep where each picture shows the other

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

Staff reviewing a flag see both pictures side by side; a crop or a picture pasted into a page is easier to judge with
the shared part outlined on each. Flags raised before this revision have none (null): they are drawn without outline.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('prior_matches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('region_in_work', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('region_in_prior_work', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('prior_matches', schema=None) as batch_op:
        batch_op.drop_column('region_in_prior_work')
        batch_op.drop_column('region_in_work')

"""complaints, counter-notices and the notifications outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ipx.db

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', ipx.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('to_email', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('subject_type', sa.String(length=32), nullable=True),
    sa.Column('subject_id', sa.String(length=64), nullable=True),
    sa.Column('sent_at', ipx.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_messages_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_messages_sent_at'), ['sent_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_messages_subject_id'), ['subject_id'], unique=False)

    op.create_table('complaints',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('case_number', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('claimed_work_id', sa.String(length=36), nullable=False),
    sa.Column('claimed_match_method', sa.String(length=32), nullable=True),
    sa.Column('target_kind', sa.String(length=16), nullable=False),
    sa.Column('target_work_id', sa.String(length=36), nullable=True),
    sa.Column('target_listing_id', sa.String(length=64), nullable=True),
    sa.Column('target_url', sa.String(length=2000), nullable=True),
    sa.Column('target_copy_sha256', sa.String(length=64), nullable=True),
    sa.Column('target_owner_id', sa.String(length=36), nullable=True),
    sa.Column('complainant_account_id', sa.String(length=36), nullable=True),
    sa.Column('complainant_name', sa.String(length=200), nullable=False),
    sa.Column('complainant_email', sa.String(length=320), nullable=False),
    sa.Column('complainant_address', sa.String(length=500), nullable=True),
    sa.Column('complainant_phone', sa.String(length=64), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('signature', sa.String(length=200), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('takedowns', sa.JSON(), nullable=False),
    sa.Column('upheld', sa.Boolean(), nullable=False),
    sa.Column('received_at', ipx.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_at', ipx.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', ipx.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('counter_statement', sa.Text(), nullable=True),
    sa.Column('counter_signature', sa.String(length=200), nullable=True),
    sa.Column('counter_filed_at', ipx.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('restore_due_at', ipx.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('legal_action_at', ipx.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('legal_action_note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['claimed_work_id'], ['works.id'], ),
    sa.ForeignKeyConstraint(['complainant_account_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['target_owner_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['target_work_id'], ['works.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_number')
    )
    with op.batch_alter_table('complaints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_complaints_claimed_work_id'), ['claimed_work_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaints_decided_at'), ['decided_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaints_received_at'), ['received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaints_restore_due_at'), ['restore_due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaints_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaints_target_kind'), ['target_kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaints_target_listing_id'), ['target_listing_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaints_target_owner_id'), ['target_owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaints_target_work_id'), ['target_work_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('complaints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_complaints_target_work_id'))
        batch_op.drop_index(batch_op.f('ix_complaints_target_owner_id'))
        batch_op.drop_index(batch_op.f('ix_complaints_target_listing_id'))
        batch_op.drop_index(batch_op.f('ix_complaints_target_kind'))
        batch_op.drop_index(batch_op.f('ix_complaints_status'))
        batch_op.drop_index(batch_op.f('ix_complaints_restore_due_at'))
        batch_op.drop_index(batch_op.f('ix_complaints_received_at'))
        batch_op.drop_index(batch_op.f('ix_complaints_decided_at'))
        batch_op.drop_index(batch_op.f('ix_complaints_claimed_work_id'))

    op.drop_table('complaints')
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_messages_subject_id'))
        batch_op.drop_index(batch_op.f('ix_outbox_messages_sent_at'))
        batch_op.drop_index(batch_op.f('ix_outbox_messages_created_at'))

    op.drop_table('outbox_messages')

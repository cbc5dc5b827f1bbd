"""marketplace: listings, offers, orders, payment events, licenses, sales suspensions, ledger

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ipx.db

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('payment_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('payment_ref', sa.String(length=255), nullable=True),
    sa.Column('order_id', sa.String(length=36), nullable=True),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.Column('received_at', ipx.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('provider', 'event_id', name='uq_payment_events_provider_event')
    )
    op.create_table('listings',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('work_id', sa.String(length=36), nullable=False),
    sa.Column('seller_id', sa.String(length=36), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('search_text', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('hidden_reason', sa.Text(), nullable=True),
    sa.Column('created_at', ipx.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['seller_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['work_id'], ['works.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_listings_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_listings_seller_id'), ['seller_id'], unique=False)
        batch_op.create_index('ix_listings_status_created', ['status', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_listings_work_id'), ['work_id'], unique=False)

    op.create_table('sales_suspensions',
    sa.Column('work_id', sa.String(length=36), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('actor_id', sa.String(length=36), nullable=True),
    sa.Column('suspended_at', ipx.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['work_id'], ['works.id'], ),
    sa.PrimaryKeyConstraint('work_id')
    )
    op.create_table('offers',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('listing_id', sa.String(length=36), nullable=False),
    sa.Column('work_id', sa.String(length=36), nullable=False),
    sa.Column('template', sa.String(length=32), nullable=False),
    sa.Column('exclusive', sa.Boolean(), nullable=False),
    sa.Column('terms', sa.JSON(), nullable=False),
    sa.Column('price_amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('withdrawn_reason', sa.Text(), nullable=True),
    sa.Column('created_at', ipx.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], ),
    sa.ForeignKeyConstraint(['work_id'], ['works.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.create_index('ix_offers_filter', ['template', 'currency', 'price_amount'], unique=False)
        batch_op.create_index(batch_op.f('ix_offers_listing_id'), ['listing_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_offers_work_id'), ['work_id'], unique=False)

    op.create_table('orders',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('offer_id', sa.String(length=36), nullable=False),
    sa.Column('listing_id', sa.String(length=36), nullable=False),
    sa.Column('work_id', sa.String(length=36), nullable=False),
    sa.Column('buyer_id', sa.String(length=36), nullable=False),
    sa.Column('seller_id', sa.String(length=36), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('fee_bps', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('payment_ref', sa.String(length=255), nullable=True),
    sa.Column('client_secret', sa.String(length=255), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('refund_ref', sa.String(length=255), nullable=True),
    sa.Column('created_at', ipx.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('paid_at', ipx.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('fulfilled_at', ipx.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', ipx.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['buyer_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], ),
    sa.ForeignKeyConstraint(['offer_id'], ['offers.id'], ),
    sa.ForeignKeyConstraint(['seller_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['work_id'], ['works.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('buyer_id', 'idempotency_key', name='uq_orders_buyer_idempotency_key'),
    sa.UniqueConstraint('payment_ref')
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orders_buyer_id'), ['buyer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_fulfilled_at'), ['fulfilled_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_offer_id'), ['offer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_seller_id'), ['seller_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_work_id'), ['work_id'], unique=False)

    op.create_table('ledger_transactions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('order_id', sa.String(length=36), nullable=True),
    sa.Column('reverses_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('memo', sa.Text(), nullable=False),
    sa.Column('created_at', ipx.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.ForeignKeyConstraint(['reverses_id'], ['ledger_transactions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_transactions_order_id'), ['order_id'], unique=False)

    op.create_table('licenses',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('order_id', sa.String(length=36), nullable=False),
    sa.Column('offer_id', sa.String(length=36), nullable=False),
    sa.Column('work_id', sa.String(length=36), nullable=False),
    sa.Column('licensor_id', sa.String(length=36), nullable=False),
    sa.Column('licensee_id', sa.String(length=36), nullable=False),
    sa.Column('exclusive', sa.Boolean(), nullable=False),
    sa.Column('terms', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('statement', sa.LargeBinary(), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('log_index', sa.BigInteger(), nullable=False),
    sa.Column('issued_at', ipx.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revocation_statement', sa.LargeBinary(), nullable=True),
    sa.Column('revocation_signature', sa.LargeBinary(), nullable=True),
    sa.Column('revocation_key_id', sa.String(length=64), nullable=True),
    sa.Column('revocation_log_index', sa.BigInteger(), nullable=True),
    sa.Column('revoked_at', ipx.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revocation_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['key_id'], ['signing_keys.key_id'], ),
    sa.ForeignKeyConstraint(['licensee_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['licensor_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['offer_id'], ['offers.id'], ),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.ForeignKeyConstraint(['revocation_key_id'], ['signing_keys.key_id'], ),
    sa.ForeignKeyConstraint(['work_id'], ['works.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('log_index'),
    sa.UniqueConstraint('order_id'),
    sa.UniqueConstraint('revocation_log_index')
    )
    with op.batch_alter_table('licenses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_licenses_licensee_id'), ['licensee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_licenses_work_id'), ['work_id'], unique=False)

    op.create_table('ledger_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account', sa.String(length=80), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('beneficiary', sa.String(length=200), nullable=True),
    sa.Column('share_bps', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_entries_account', ['account', 'currency'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entries_transaction_id'), ['transaction_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entries_transaction_id'))
        batch_op.drop_index('ix_ledger_entries_account')

    op.drop_table('ledger_entries')
    with op.batch_alter_table('licenses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_licenses_work_id'))
        batch_op.drop_index(batch_op.f('ix_licenses_licensee_id'))

    op.drop_table('licenses')
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_transactions_order_id'))

    op.drop_table('ledger_transactions')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_work_id'))
        batch_op.drop_index(batch_op.f('ix_orders_seller_id'))
        batch_op.drop_index(batch_op.f('ix_orders_offer_id'))
        batch_op.drop_index(batch_op.f('ix_orders_fulfilled_at'))
        batch_op.drop_index(batch_op.f('ix_orders_buyer_id'))

    op.drop_table('orders')
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_offers_work_id'))
        batch_op.drop_index(batch_op.f('ix_offers_listing_id'))
        batch_op.drop_index('ix_offers_filter')

    op.drop_table('offers')
    op.drop_table('sales_suspensions')
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_listings_work_id'))
        batch_op.drop_index('ix_listings_status_created')
        batch_op.drop_index(batch_op.f('ix_listings_seller_id'))
        batch_op.drop_index(batch_op.f('ix_listings_created_at'))

    op.drop_table('listings')
    op.drop_table('payment_events')

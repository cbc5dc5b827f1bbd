"""Marketplace tables: listings, offers, orders, payment events, licenses, sales holds and the ledger."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ipx.db import Base, UTCDateTime, trigram_index, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")


def _uuid() -> str:
    return str(uuid.uuid4())


class Listing(Base):
    """A registered work put up for licensing; hidden (by staff) or withdrawn listings leave search."""

    __tablename__ = "listings"
    __table_args__ = (
        Index("ix_listings_status_created", "status", "created_at"),
        trigram_index("ix_listings_search_text_trigrams", "search_text", lowered=False),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    work_id: Mapped[str] = mapped_column(ForeignKey("works.id"), index=True)
    seller_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # lowercase title, creator name, work type and tags, matched by every search word
    search_text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active / hidden
    hidden_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Offer(Base):
    """License terms at a price; locked (FOR UPDATE) while an order on its work is created or paid."""

    __tablename__ = "offers"
    __table_args__ = (Index("ix_offers_filter", "template", "currency", "price_amount"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    listing_id: Mapped[str] = mapped_column(ForeignKey("listings.id"), index=True)
    work_id: Mapped[str] = mapped_column(ForeignKey("works.id"), index=True)
    template: Mapped[str] = mapped_column(String(32))
    exclusive: Mapped[bool] = mapped_column(Boolean, default=False)
    terms: Mapped[dict[str, Any]] = mapped_column(JSON)  # terms.to_data(LicenseTerms), price included
    price_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active / withdrawn / sold
    withdrawn_reason: Mapped[str | None] = mapped_column(Text)
    # the exclusive offer whose sale withdrew this one: a refund of that sale puts it back, a seller's withdrawal never
    # (no foreign key: adding one rebuilds the table on SQLite, which orders and licenses reference)
    withdrawn_for_offer_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SalesSuspension(Base):
    """A work whose sales staff stopped (e.g. during a complaint): it can be neither listed nor bought."""

    __tablename__ = "sales_suspensions"

    work_id: Mapped[str] = mapped_column(ForeignKey("works.id"), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    actor_id: Mapped[str | None] = mapped_column(String(36))
    suspended_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Order(Base):
    """One purchase attempt: pending -> paid -> fulfilled, or failed / cancelled / refunded."""

    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("buyer_id", "idempotency_key", name="uq_orders_buyer_idempotency_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    offer_id: Mapped[str] = mapped_column(ForeignKey("offers.id"), index=True)
    listing_id: Mapped[str] = mapped_column(ForeignKey("listings.id"))
    work_id: Mapped[str] = mapped_column(ForeignKey("works.id"), index=True)
    buyer_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    seller_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    fee_bps: Mapped[int] = mapped_column(Integer)  # the platform fee agreed when the order was made
    status: Mapped[str] = mapped_column(String(16), default="pending")
    provider: Mapped[str] = mapped_column(String(32))
    payment_ref: Mapped[str | None] = mapped_column(String(255), unique=True)
    client_secret: Mapped[str | None] = mapped_column(String(255))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    refund_ref: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # failed, cancelled or refunded


class PaymentCustomer(Base):
    """A buyer's customer record at a payment provider (a Stripe Customer), made at their first card payment.

    Stripe charges a card saved by a SetupIntent only on behalf of the Customer it was saved to; one per buyer keeps
    the provider's dashboard one entry per person rather than one per order.
    """

    __tablename__ = "payment_customers"

    account_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_ref: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaymentEvent(Base):
    """Every provider event we accepted, keyed by the provider's event id: the exactly-once guard."""

    __tablename__ = "payment_events"
    __table_args__ = (UniqueConstraint("provider", "event_id", name="uq_payment_events_provider_event"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(64))
    payment_ref: Mapped[str | None] = mapped_column(String(255))
    order_id: Mapped[str | None] = mapped_column(String(36))
    outcome: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class License(Base):
    """A sold license: its signed statement and log index, and the revocation appended if refunded."""

    __tablename__ = "licenses"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), unique=True)
    offer_id: Mapped[str] = mapped_column(ForeignKey("offers.id"))
    work_id: Mapped[str] = mapped_column(ForeignKey("works.id"), index=True)
    licensor_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    licensee_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    exclusive: Mapped[bool] = mapped_column(Boolean, default=False)
    terms: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active / revoked
    statement: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(ForeignKey("signing_keys.key_id"))
    log_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revocation_statement: Mapped[bytes | None] = mapped_column(LargeBinary)
    revocation_signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    revocation_key_id: Mapped[str | None] = mapped_column(ForeignKey("signing_keys.key_id"))
    revocation_log_index: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revocation_reason: Mapped[str | None] = mapped_column(Text)


class LedgerTransaction(Base):
    """One balanced journal: its entries sum to zero per currency."""

    __tablename__ = "ledger_transactions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # sale / refund
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), index=True)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    memo: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(Base):
    """A signed amount in minor units: positive = value the account received, negative = value it gave."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_entries_account", "account", "currency"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account: Mapped[str] = mapped_column(String(80))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    # for a creator account: the co-creator (from the registration's "creators") this part belongs to
    beneficiary: Mapped[str | None] = mapped_column(String(200))
    share_bps: Mapped[int | None] = mapped_column(Integer)

"""Marketplace request and response bodies (the offer itself is `terms.LicenseTerms`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from ipx.marketplace.terms import LicenseTerms, Price


class ListingCreate(BaseModel):
    work_id: uuid.UUID
    description: str | None = Field(default=None, max_length=5000)
    tags: list[str] = Field(default_factory=list, max_length=20)
    offers: list[LicenseTerms] = Field(min_length=1, max_length=20)

    @field_validator("tags")
    @classmethod
    def _short_tags(cls, value: list[str]) -> list[str]:
        if any(len(tag) > 40 for tag in value):
            raise ValueError("each tag must be at most 40 characters")
        return value


class Party(BaseModel):
    account_id: str
    display_name: str


class OfferRead(BaseModel):
    """An offer's terms, flattened as in DESIGN.md §2, with its id, state and generated summary."""

    offer_id: str
    listing_id: str
    status: str  # active / withdrawn / sold
    template: str
    exclusive: bool
    territory: list[str]
    duration: dict[str, Any]
    uses: list[str]
    ai_training: str
    derivatives: bool
    attribution: bool
    commercial: bool
    seats: int
    print_run_cap: int | None = None
    impressions_cap: int | None = None
    price: Price
    summary: str
    unavailable_reason: str | None = None  # why it cannot be bought right now (sold, withdrawn, scope taken...)
    odrl: dict[str, Any] | None = None


class ListedWork(BaseModel):
    work_id: str
    title: str
    work_type: str
    sha256: str
    media_type: str
    registered_at: datetime
    log_index: int
    status: str
    creator: Party
    creators: list[dict[str, Any]]
    evidence_url: str
    certificate_url: str


class ListingCreated(BaseModel):
    listing_id: str
    work_id: str
    status: str
    url: str
    offers: list[OfferRead]


class ListingRead(BaseModel):
    listing_id: str
    status: str
    description: str | None
    tags: list[str]
    created_at: datetime
    sales_suspended: bool
    work: ListedWork
    evidence_url: str  # the registration's offline evidence bundle
    offers: list[OfferRead]


class ListingHit(BaseModel):
    listing_id: str
    work_id: str
    title: str
    work_type: str
    creator: Party
    description: str | None
    tags: list[str]
    created_at: datetime
    url: str
    offers: list[OfferRead]


class ListingPage(BaseModel):
    items: list[ListingHit]
    total: int
    total_exact: bool  # false when more listings match than `total` (counting stops at 10,000)
    page: int
    page_size: int


class OrderCreate(BaseModel):
    offer_id: uuid.UUID
    payment_method: str | None = Field(
        default=None, max_length=255, pattern="^(pm|card|src)_[A-Za-z0-9_]+$",
        description="Stripe only: a PaymentMethod id to confirm the payment server-side now",
    )


class PaymentInfo(BaseModel):
    provider: str
    reference: str | None
    client_secret: str | None = Field(default=None, description="Stripe: for Stripe.js, shown to the buyer only")
    confirm_url: str | None = Field(default=None, description="offline: POST here once you have paid")


class OrderRead(BaseModel):
    order_id: str
    status: str  # pending / paid / fulfilled / failed / cancelled / refunded
    offer_id: str
    listing_id: str
    work_id: str
    buyer_id: str
    seller_id: str
    amount: int
    currency: str
    created_at: datetime
    paid_at: datetime | None
    fulfilled_at: datetime | None
    closed_at: datetime | None
    failure_reason: str | None
    license_id: str | None
    license_url: str | None
    payment: PaymentInfo


class RefundRequest(BaseModel):
    reason: str = Field(default="refunded on request", min_length=1, max_length=1000)


class Revocation(BaseModel):
    revoked_at: datetime
    reason: str
    log_index: int
    evidence_url: str


class LicenseRead(BaseModel):
    license_id: str
    status: str  # active / revoked
    work_id: str
    order_id: str
    licensor: Party
    licensee: Party
    exclusive: bool
    terms: dict[str, Any]
    summary: str
    price: Price
    issued_at: datetime
    log_index: int
    key_id: str
    evidence_url: str
    revocation: Revocation | None
    odrl: dict[str, Any]  # the license as an ODRL Agreement


class AccountBalance(BaseModel):
    account: str
    currency: str
    balance: int


class LedgerSummary(BaseModel):
    transactions: int
    unbalanced: int
    accounts: list[AccountBalance]


class WebhookReceipt(BaseModel):
    received: bool
    outcome: str

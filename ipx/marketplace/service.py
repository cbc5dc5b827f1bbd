"""Marketplace: list licenses for registered works, sell them, record every trade (no HTTP, no commit).

Concurrency rule: anything that can change what a work may still sell (a payment completing, a new
listing, a withdrawal, a suspension) first locks every offer row of that work, in id order
(`SELECT ... FOR NO KEY UPDATE` on PostgreSQL; SQLite transactions already hold the write lock).
Under that lock availability is checked again at fulfilment, so 100 buyers of one exclusive offer
yield one sale; a payment that arrives for a sale that can no longer happen is cancelled or refunded
at once. A pending order reserves nothing, so placing one only locks when it takes money at once.

Pages call these functions too: every public function documents what it checks and raises.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, and_, exists, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ipx.accounts.models import User
from ipx.accounts.service import Principal
from ipx.audit import service as audit_service
from ipx.db import contains_pattern, page_of, utcnow
from ipx.errors import Conflict, Forbidden, Gone, InvalidInput, LegallyWithheld, NotFound
from ipx.marketplace import ledger, terms
from ipx.marketplace.models import License, Listing, Offer, Order, PaymentCustomer, PaymentEvent, SalesSuspension
from ipx.marketplace.payments import (
    CardEntry,
    PaymentDeclined,
    PaymentProvider,
    PaymentProviders,
    PaymentRequest,
    PaymentStatus,
    ProviderEvent,
    UnknownCustomer,
)
from ipx.registry import service as registry_service
from ipx.registry.evidence import LICENSE_TYPE, REVOCATION_TYPE
from ipx.registry.models import PriorMatch, Work

logger = logging.getLogger(__name__)

PAGE_SIZE = 20
COUNT_CAP = 10_000
OPEN_ORDER = "pending"
SELLER_WITHDRAWAL = "withdrawn by the seller"
# audit action of a provider refund of part of a price: the only record of it, as the order stays fulfilled
PARTIAL_REFUND = "partially_refunded"


@dataclass(frozen=True)
class MarketContext:
    """What the marketplace needs from the outside, built once in create_app."""

    key_dir: Path
    providers: PaymentProviders
    fee_bps: int
    currencies: frozenset[str]


@dataclass(frozen=True)
class ListingRow:
    """A search hit: the listing with its work's title, type and creator, its open offers, and those of them that
    the search's license, currency and price filters matched (a card's "from" price is the cheapest of these, not an
    offer the buyer filtered out)."""

    listing: Listing
    title: str
    work_type: str
    creator_name: str
    offers: list[Offer]
    matching: list[Offer]


@dataclass(frozen=True)
class PlacedOrder:
    order: Order
    replayed: bool  # True when the Idempotency-Key matched an earlier order of the same buyer


class OfferUnavailable(Conflict):
    title = "Offer unavailable"


class CreatorShareError(ValueError):
    """The registration's creator shares cannot be read (they are signed, so this is a bug)."""


# ----------------------------------------------------------------------------------------- listings


def parse_offer(data: dict[str, Any], position: int = 0) -> terms.LicenseTerms:
    """Validate one offer from a form or JSON (pages use this); raises InvalidInput with field locations."""
    try:
        return terms.LicenseTerms.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": ["body", "offers", position, *map(str, e["loc"])], "msg": e["msg"]} for e in exc.errors()]
        raise InvalidInput(
            "The offer is not valid: " + "; ".join(e["msg"] for e in errors) + ".", errors=errors
        ) from exc


def _check_offer_terms(offer_terms: Sequence[terms.LicenseTerms], ctx: MarketContext, today: date) -> None:
    errors = []
    for position, offer in enumerate(offer_terms):
        if offer.price.currency not in ctx.currencies:
            errors.append({
                "loc": ["body", "offers", position, "price", "currency"],
                "msg": f"{offer.price.currency} is not supported here; use one of {', '.join(sorted(ctx.currencies))}",
            })
        if terms.expired_on(offer, today):
            errors.append({
                "loc": ["body", "offers", position, "duration", "until"], "msg": "the end date has already passed",
            })
    if errors:
        raise InvalidInput("Some offers cannot be listed: " + "; ".join(e["msg"] for e in errors) + ".", errors=errors)


def _lock_work_offers(session: Session, work_id: str) -> list[Offer]:
    """Serialize everything that changes what this work may sell (see the module docstring)."""
    # FOR NO KEY UPDATE: excludes other sales of the work but not the key-share locks that inserting
    # orders and licenses (foreign keys to offers) take, so placing orders never waits on a sale
    query = select(Offer).where(Offer.work_id == work_id).order_by(Offer.id).with_for_update(key_share=True)
    return list(session.scalars(query))


def _sales_suspension(session: Session, work_id: str) -> SalesSuspension | None:
    return session.get(SalesSuspension, work_id)


def _works_taken_down(session: Session, work_ids: Collection[str]) -> set[str]:
    """Those of these works that staff hid a listing of, which holds the whole work until they restore it.

    Only a complaint hides a listing and only its closing (staff restoring, dismissing, or the counter-notice
    clock) brings it back, so a hidden listing is the takedown itself: a new listing or another listing's
    offers would put the same work straight back on sale under the open case.
    """
    hidden = select(Listing.work_id).where(Listing.work_id.in_(list(work_ids)), Listing.status == "hidden")
    return set(session.scalars(hidden))


def _works_with_sales_suspended(session: Session, work_ids: Collection[str]) -> set[str]:
    return set(session.scalars(select(SalesSuspension.work_id).where(SalesSuspension.work_id.in_(list(work_ids)))))


def _active_licenses(session: Session, work_ids: Sequence[str]) -> dict[str, list[License]]:
    """Active licenses of these works, by work id (a work without any is absent)."""
    held: dict[str, list[License]] = {}
    for issued in session.scalars(select(License).where(License.work_id.in_(work_ids), License.status == "active")):
        held.setdefault(issued.work_id, []).append(issued)
    return held


def _scope_conflict(
    session: Session, work_id: str, wanted: terms.LicenseTerms, *, exclusive: bool, today: date
) -> License | None:
    """An active license this offer would contradict: an exclusive one overlapping it, or, for an
    exclusive offer, any license overlapping it (exclusivity means nobody else holds that scope)."""
    return _conflicting_license(_active_licenses(session, [work_id]).get(work_id, []), wanted, exclusive=exclusive,
                                today=today)


def _conflicting_license(
    licenses: Sequence[License], wanted: terms.LicenseTerms, *, exclusive: bool, today: date
) -> License | None:
    for held in licenses:
        held_terms = terms.LicenseTerms.model_validate(held.terms)
        if not (held.exclusive or exclusive) or terms.expired_on(held_terms, today):
            continue
        if terms.scopes_overlap(held_terms, held.issued_at.date(), wanted, today):
            return held
    return None


def _check_listable(session: Session, work: Work, seller: Principal) -> None:
    if work.owner_id != seller.id:
        raise Forbidden("Only the creator who registered this work can list it.")
    if work.status != "registered":
        raise Conflict(f"This work is {work.status}, so it cannot be listed until that is resolved.")
    # Only a match staff cleared lets the work be sold: an open one awaits review, an upheld one is a copy.
    flag = session.execute(
        select(PriorMatch.prior_work_id, PriorMatch.review_status)
        .where(PriorMatch.work_id == work.id, PriorMatch.review_status != "cleared")
        .order_by(PriorMatch.review_status.desc())  # "upheld" before "open": the final word first
    ).first()
    if flag is not None and flag.review_status == "upheld":
        raise Conflict(
            "IPX staff found that this work copies an earlier registration by another account, so it cannot be "
            "listed.", prior_work_id=flag.prior_work_id,
        )
    if flag is not None:
        raise Conflict(
            "This work matches an earlier registration by another account; it can be listed once IPX staff "
            "have reviewed and cleared that match.", prior_work_id=flag.prior_work_id,
        )
    if _sales_suspension(session, work.id) is not None:
        raise Conflict("Sales of this work are suspended by IPX staff, so it cannot be listed.")
    if work.id in _works_taken_down(session, [work.id]):
        raise Conflict("IPX staff took down a listing of this work under an infringement complaint, so it cannot be "
                       "listed again until that case is resolved.")


def create_listing(
    session: Session, *, seller: Principal, work_id: str, offers: Sequence[terms.LicenseTerms], ctx: MarketContext,
    description: str | None = None, tags: Sequence[str] = (),
) -> tuple[Listing, list[Offer]]:
    """List a registered work with one or more offers.

    Refuses: someone else's work (403), a work not in status "registered", one with an open prior-match
    flag, suspended sales or a listing taken down (409), unsupported currencies or past end dates (422), and offers that
    conflict with an exclusive license already sold for an overlapping territory and period (409).
    """
    if not offers:
        raise InvalidInput("A listing needs at least one offer.", errors=[{"loc": ["body", "offers"], "msg": "empty"}])
    work = registry_service.get_work(session, work_id)
    _check_listable(session, work, seller)
    today = utcnow().date()
    _check_offer_terms(offers, ctx, today)
    _lock_work_offers(session, work.id)
    for position, offer_terms in enumerate(offers):
        held = _scope_conflict(session, work.id, offer_terms, exclusive=offer_terms.exclusive, today=today)
        if held is not None:
            raise Conflict(
                f"Offer {position + 1} overlaps license {held.id}, which already covers part of that territory and "
                "period" + (" exclusively." if held.exclusive else "; an exclusive offer needs the scope free."),
                license_id=held.id, errors=[{"loc": ["body", "offers", position], "msg": "scope already licensed"}],
            )
    clean_tags = sorted({tag.strip().lower() for tag in tags if tag.strip()})
    creator_name = registry_service.owner_of(session, work).display_name
    listing = Listing(
        work_id=work.id, seller_id=seller.id, description=description, tags=clean_tags,
        search_text=" ".join([work.title, creator_name, work.work_type, *clean_tags]).lower(),
    )
    session.add(listing)
    session.flush()
    rows = [
        Offer(
            listing_id=listing.id, work_id=work.id, template=t.template, exclusive=t.exclusive, terms=terms.to_data(t),
            price_amount=t.price.amount, currency=t.price.currency,
        )
        for t in offers
    ]
    session.add_all(rows)
    session.flush()
    audit_service.record(
        session, action="listing.created", subject_type="listing", subject_id=listing.id, actor_id=seller.id,
        details={"work_id": work.id, "offers": [o.id for o in rows]},
    )
    return listing, rows


def get_listing(session: Session, listing_id: str, viewer: Principal | None = None) -> Listing:
    """A listing; a hidden one only for its seller and staff (others get 404, as if it were gone)."""
    listing = session.get(Listing, listing_id)
    visible = listing is not None and (
        listing.status == "active" or (viewer is not None and (viewer.is_staff or viewer.id == listing.seller_id))
    )
    if not visible:
        raise NotFound(f"No listing has the id {listing_id}.")
    return listing  # type: ignore[return-value]


def offers_of(session: Session, listing_id: str, *, active_only: bool = False) -> list[Offer]:
    query = select(Offer).where(Offer.listing_id == listing_id)
    if active_only:
        query = query.where(Offer.status == "active")
    return list(session.scalars(query.order_by(Offer.created_at, Offer.id)))


def get_offer(session: Session, offer_id: str) -> Offer:
    offer = session.get(Offer, offer_id)
    if offer is None:
        raise NotFound(f"No offer has the id {offer_id}.")
    return offer


def offer_terms(offer: Offer) -> terms.LicenseTerms:
    return terms.LicenseTerms.model_validate(offer.terms)


def withdraw_offer(session: Session, offer_id: str, *, actor: Principal) -> Offer:
    """The seller takes an offer off sale; licenses already sold stay valid."""
    offer = get_offer(session, offer_id)
    listing = session.get(Listing, offer.listing_id)
    if listing is None or (listing.seller_id != actor.id and not actor.is_staff):
        raise Forbidden("Only the seller (or staff) can withdraw this offer.")
    _lock_work_offers(session, offer.work_id)
    if offer.withdrawn_reason == SELLER_WITHDRAWAL:
        return offer
    # An offer off sale only because an exclusive license sold (or the sold offer itself) could come back on a
    # refund of that sale: the seller's word now keeps it off for good.
    if offer.status == "active" or offer.withdrawn_for_offer_id is not None:
        offer.status = "withdrawn"
    offer.withdrawn_reason, offer.withdrawn_for_offer_id = SELLER_WITHDRAWAL, None
    audit_service.record(session, action="offer.withdrawn", subject_type="offer", subject_id=offer.id,
                         actor_id=actor.id)
    return offer


def search_listings(
    session: Session, *, q: str | None = None, template: str | None = None, min_price: int | None = None,
    max_price: int | None = None, currency: str | None = None, seller_id: str | None = None, page: int = 1,
    page_size: int = PAGE_SIZE,
) -> tuple[list[ListingRow], int]:
    """Active listings, newest first, and how many match (counted up to COUNT_CAP + 1, so a total
    above COUNT_CAP means "more than COUNT_CAP"). Every word of `q` must appear in the title, creator
    name, work type or tags; `template`, `currency` and the price bounds (minor units) must hold for
    one open offer."""
    if session.get_bind().dialect.name == "postgresql":
        # how selective a filter is depends on its values; a cached generic plan (psycopg prepares
        # repeated statements) fits none of them and made filtered searches 4x slower
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    offer_filters = [Offer.status == "active"]
    if template:
        offer_filters.append(Offer.template == template)
    if currency:
        offer_filters.append(Offer.currency == currency.upper())
    if min_price is not None:
        offer_filters.append(Offer.price_amount >= min_price)
    if max_price is not None:
        offer_filters.append(Offer.price_amount <= max_price)
    if min_price is None and max_price is None:
        has_offer = exists().where(and_(Offer.listing_id == Listing.id, *offer_filters))
    else:  # a price range matches few offers: collect them once instead of probing every listing (SQLite 10x)
        has_offer = Listing.id.in_(select(Offer.listing_id).where(*offer_filters))
    conditions = [Listing.status == "active", has_offer]
    conditions += [Listing.search_text.like(contains_pattern(w), escape="\\") for w in (q or "").lower().split()[:10]]
    if seller_id:
        conditions.append(Listing.seller_id == seller_id)
    # counting stops at COUNT_CAP: an exact "29,433 results" costs a full scan, "10,000+" a bounded one
    capped = select(Listing.id).where(*conditions).limit(COUNT_CAP + 1).subquery()
    total = session.scalar(select(func.count()).select_from(capped)) or 0
    rows = session.execute(
        select(Listing, Work.title, Work.work_type, User.display_name)
        .join(Work, Work.id == Listing.work_id)
        .join(User, User.id == Listing.seller_id)
        .where(*conditions)
        .order_by(Listing.created_at.desc(), Listing.id)
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    offers: dict[str, list[Offer]] = {}
    matching: dict[str, list[Offer]] = {}
    if rows:
        query = select(Offer, and_(*offer_filters).label("matches")).where(
            Offer.listing_id.in_([r[0].id for r in rows]), Offer.status == "active"
        )
        for offer, matches in session.execute(query.order_by(Offer.created_at, Offer.id)):
            offers.setdefault(offer.listing_id, []).append(offer)
            if matches:
                matching.setdefault(offer.listing_id, []).append(offer)
    return [ListingRow(r[0], r[1], r[2], r[3], offers.get(r[0].id, []), matching.get(r[0].id, [])) for r in rows], total


def hide_listing(session: Session, listing_id: str, *, actor_id: str | None, reason: str) -> Listing:
    """Take a listing out of search and sale, and with it every sale of its work (complaints, staff); idempotent,
    audited on change."""
    listing = session.get(Listing, listing_id)
    if listing is None:
        raise NotFound(f"No listing has the id {listing_id}.")
    _lock_work_offers(session, listing.work_id)
    if listing.status != "hidden":
        listing.status, listing.hidden_reason = "hidden", reason
        audit_service.record(session, action="listing.hidden", subject_type="listing", subject_id=listing.id,
                             actor_id=actor_id, details={"reason": reason})
    return listing


def restore_listing(session: Session, listing_id: str, *, actor_id: str | None, reason: str) -> Listing:
    """Put a hidden listing back on sale, which frees its work's other sales; idempotent, audited on change."""
    listing = session.get(Listing, listing_id)
    if listing is None:
        raise NotFound(f"No listing has the id {listing_id}.")
    _lock_work_offers(session, listing.work_id)
    if listing.status == "hidden":
        listing.status, listing.hidden_reason = "active", None
        audit_service.record(session, action="listing.restored", subject_type="listing", subject_id=listing.id,
                             actor_id=actor_id, details={"reason": reason})
    return listing


def suspend_sales(session: Session, work_id: str, *, actor_id: str | None, reason: str) -> SalesSuspension:
    """Stop all sales and new listings of a work (pending orders fail at payment); idempotent."""
    registry_service.get_work(session, work_id)
    _lock_work_offers(session, work_id)
    suspension = _sales_suspension(session, work_id)
    if suspension is None:
        suspension = SalesSuspension(work_id=work_id, reason=reason, actor_id=actor_id)
        session.add(suspension)
        session.flush()
        audit_service.record(session, action="sales.suspended", subject_type="work", subject_id=work_id,
                             actor_id=actor_id, details={"reason": reason})
    return suspension


def resume_sales(session: Session, work_id: str, *, actor_id: str | None, reason: str) -> None:
    """Lift a suspension; idempotent, audited on change."""
    _lock_work_offers(session, work_id)
    suspension = _sales_suspension(session, work_id)
    if suspension is not None:
        session.delete(suspension)
        session.flush()
        audit_service.record(session, action="sales.resumed", subject_type="work", subject_id=work_id,
                             actor_id=actor_id, details={"reason": reason})


def sales_suspended(session: Session, work_id: str) -> bool:
    return _sales_suspension(session, work_id) is not None


# ------------------------------------------------------------------------------------------- orders


def unavailable_reason(session: Session, offer: Offer, *, today: date) -> str | None:
    """Why this offer cannot be sold right now, or None. Orders call it with the work's offers locked; listings
    show it, so a buyer learns before checkout that an offer cannot be bought."""
    return unavailable_reasons(session, [offer], today=today)[offer.id]


def unavailable_reasons(session: Session, offers: Sequence[Offer], *, today: date) -> dict[str, str | None]:
    """unavailable_reason of each offer, by offer id, in five queries however many offers: a page of search results
    asked four queries an offer (110 for 20 listings, 100 ms of a 140 ms search on PostgreSQL)."""
    if not offers:
        return {}
    work_ids = list({offer.work_id for offer in offers})
    listing_ids = list({offer.listing_id for offer in offers})
    listings = {listing.id: listing for listing in session.scalars(select(Listing).where(Listing.id.in_(listing_ids)))}
    works = {work.id: work for work in session.scalars(select(Work).where(Work.id.in_(work_ids)))}
    suspended, taken_down = _works_with_sales_suspended(session, work_ids), _works_taken_down(session, work_ids)
    reasons: dict[str, str | None] = {}
    for offer in offers:
        listing, work = listings.get(offer.listing_id), works.get(offer.work_id)
        if offer.status == "sold":
            reasons[offer.id] = "This offer was an exclusive license and has been sold."
        elif offer.status != "active":
            reasons[offer.id] = "This offer has been withdrawn and is no longer for sale."
        elif listing is None or listing.status != "active":
            reasons[offer.id] = "This listing has been taken down."
        elif work is None or work.status != "registered":
            reasons[offer.id] = "This work is under dispute and cannot be licensed at the moment."
        elif offer.work_id in suspended:
            reasons[offer.id] = "Sales of this work are suspended by IPX staff."
        elif offer.work_id in taken_down:
            reasons[offer.id] = ("Another listing of this work was taken down under an infringement complaint; it "
                                 "cannot be licensed until that case is resolved.")
        elif terms.expired_on(offer_terms(offer), today):
            reasons[offer.id] = "This offer's license period has already ended."
    on_sale = [offer for offer in offers if offer.id not in reasons]
    licenses = _active_licenses(session, list({offer.work_id for offer in on_sale})) if on_sale else {}
    for offer in on_sale:
        held = _conflicting_license(licenses.get(offer.work_id, []), offer_terms(offer), exclusive=offer.exclusive,
                                    today=today)
        reasons[offer.id] = None if held is None else (
            "An exclusive license covering this territory and period has already been sold." if held.exclusive else
            "A license covering this territory and period has been sold, so it can no longer be licensed exclusively."
        )
    return reasons


def _audit_order(session: Session, order: Order, action: str, actor_id: str | None, **details: Any) -> None:
    audit_service.record(
        session, action=f"order.{action}", subject_type="order", subject_id=order.id, actor_id=actor_id,
        details={"status": order.status, **details},
    )


def _order_for_key(session: Session, buyer_id: str, idempotency_key: str | None, offer_id: str) -> Order | None:
    if not idempotency_key:
        return None
    earlier = session.scalar(select(Order).where(Order.buyer_id == buyer_id, Order.idempotency_key == idempotency_key))
    if earlier is not None and earlier.offer_id != offer_id:
        raise Conflict("This Idempotency-Key was already used for an order of a different offer; "
                       "use a new key for a new purchase.", order_id=earlier.id)
    return earlier


# Names the orders of (buyer, Idempotency-Key) pairs; any fixed UUID would do, this one must never change.
_KEYED_ORDERS = uuid.UUID("6f1c2b1e-4f0a-5c3e-9a57-0b7d3c2e8f41")


def _order_id(buyer_id: str, idempotency_key: str | None) -> str:
    """A keyed order's id follows from its buyer and key, so a retry after a failed request opens the same order.

    The payment provider de-duplicates by order id (`PaymentRequest.idempotency_key`). When a request fails after
    the provider took the money (the answer lost, or a later step raising), the order is rolled back with the
    request; a random id would make the buyer's retry a new payment and charge the card twice. Unkeyed orders
    cannot be retried safely anyway and keep random ids.
    """
    if not idempotency_key:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_KEYED_ORDERS, f"{buyer_id}\n{idempotency_key}"))


def place_order(
    session: Session, *, buyer: Principal, offer_id: str, ctx: MarketContext, idempotency_key: str | None = None,
    payment_method: str | None = None,
) -> PlacedOrder:
    """Create an order for an offer and open its payment with the configured provider.

    The same buyer retrying with the same Idempotency-Key gets the same order back (no second order,
    no second charge). Refuses buying your own work (403) and offers that are not for sale (409).
    A pending order reserves nothing, so creating one takes no lock unless money may move now: with
    Stripe and a `payment_method` the payment is confirmed here, under the work's offer locks, and the
    license issued in the same transaction. Otherwise the order waits for the buyer's confirmation
    (offline) or Stripe's webhook, and availability is checked again, locked, at that point.
    """
    offer = get_offer(session, offer_id)
    earlier = _order_for_key(session, buyer.id, idempotency_key, offer.id)
    if earlier is not None:
        return PlacedOrder(earlier, replayed=True)
    listing = session.get(Listing, offer.listing_id)
    if listing is None:
        raise NotFound(f"No listing holds the offer {offer.id}.")
    if listing.seller_id == buyer.id:
        raise Forbidden("You cannot buy a license to your own work.")
    provider = ctx.providers.default
    pays_now = payment_method is not None and not provider.buyer_confirms
    if pays_now:
        _lock_work_offers(session, offer.work_id)
    reason = unavailable_reason(session, offer, today=utcnow().date())
    if reason:
        raise OfferUnavailable(reason, offer_id=offer.id)
    order = Order(
        id=_order_id(buyer.id, idempotency_key),
        offer_id=offer.id, listing_id=offer.listing_id, work_id=offer.work_id, buyer_id=buyer.id,
        seller_id=listing.seller_id, amount=offer.price_amount, currency=offer.currency, fee_bps=ctx.fee_bps,
        provider=provider.name, idempotency_key=idempotency_key,
    )
    try:
        with session.begin_nested():
            session.add(order)
    except IntegrityError as exc:  # the same buyer and key raced in: the first order wins, this is a replay
        earlier = _order_for_key(session, buyer.id, idempotency_key, offer.id)
        if earlier is None:
            raise Conflict("This order could not be created; retry with the same Idempotency-Key.") from exc
        return PlacedOrder(earlier, replayed=True)
    _audit_order(session, order, "created", buyer.id, offer_id=offer.id, amount=order.amount, currency=order.currency)
    work = registry_service.get_work(session, offer.work_id)
    started = provider.start(PaymentRequest(
        # One key per order, whatever the card: after a charge whose answer was lost, a retry with another card must
        # not become a second payment (Stripe refuses the changed parameters: PaymentKeyReused, a 409 in words).
        order_id=order.id, amount=order.amount, currency=order.currency, idempotency_key=f"order:{order.id}",
        description=f"IPX license {offer.template} for “{work.title}”", payment_method=payment_method,
    ))
    order.payment_ref, order.client_secret = started.ref, started.client_secret
    session.flush()
    if pays_now and started.status == "succeeded":  # the offers are locked and were checked above
        _sell(session, order, provider, ctx, actor_id=buyer.id)
    return PlacedOrder(order, replayed=False)


def get_order(session: Session, order_id: str, viewer: Principal) -> Order:
    """An order, for its buyer, its seller and staff only (404 for anyone else)."""
    order = session.get(Order, order_id)
    if order is None or not (viewer.is_staff or viewer.id in (order.buyer_id, order.seller_id)):
        raise NotFound(f"No order has the id {order_id}.")
    return order


def _lock_order(session: Session, order_id: str) -> Order:
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"No order has the id {order_id}.")
    _lock_work_offers(session, order.work_id)
    session.refresh(order, with_for_update=True)  # re-read: another transaction may have settled it
    return order


def _lock_for_payment(session: Session, order_id: str) -> tuple[Order, str | None]:
    """Lock the work's offers and the order, re-read the order, re-check its offer.

    Returns the order and why its sale cannot happen (None when it can, or when the order is no longer
    pending). On a refusal the offer locks are given back at once — rolling back a savepoint releases
    the row locks taken inside it on PostgreSQL — and only the order stays locked for the failure
    write. So the 99 losers of a 100-buyer race hold the contended lock for a few reads each instead
    of queueing their commits behind one another.
    """
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"No order has the id {order_id}.")
    savepoint = session.begin_nested()
    _lock_work_offers(session, order.work_id)
    session.refresh(order, with_for_update=True)
    reason = None
    if order.status == OPEN_ORDER:
        reason = unavailable_reason(session, get_offer(session, order.offer_id), today=utcnow().date())
    if reason is None:
        savepoint.commit()  # keeps the locks until the request's transaction ends
        return order, None
    savepoint.rollback()
    session.refresh(order, with_for_update=True)
    return order, reason if order.status == OPEN_ORDER else None


def purchases_of(session: Session, buyer_id: str, *, page: int, page_size: int) -> tuple[list[Order], int]:
    """One page of a buyer's orders, newest first, and how many there are: a buyer of hundreds of licenses gets
    pages, not one page that grows with every purchase."""
    return _page_of_orders(session, Order.buyer_id == buyer_id, page=page, page_size=page_size)


def sales_of(session: Session, seller_id: str, *, page: int, page_size: int) -> tuple[list[Order], int]:
    """One page of a seller's orders, newest first, and how many there are, for the same reason as purchases_of."""
    return _page_of_orders(session, Order.seller_id == seller_id, page=page, page_size=page_size)


def _page_of_orders(
    session: Session, party: ColumnElement[bool], *, page: int, page_size: int
) -> tuple[list[Order], int]:
    return page_of(session, select(Order).where(party), Order.created_at.desc(), Order.id, page=page,
                   page_size=page_size)


def licensed_sales_count(session: Session, seller_id: str) -> int:
    """How many of a seller's orders are fulfilled (licensed and not refunded), counted by the database: the sales
    page's tile counts them all, while its table shows one page."""
    query = select(func.count()).select_from(Order).where(Order.seller_id == seller_id, Order.status == "fulfilled")
    return session.scalar(query) or 0


def confirm_offline_order(session: Session, *, order_id: str, buyer: Principal, ctx: MarketContext) -> Order:
    """The buyer declares an offline payment made: the order is paid and fulfilled, or — when the offer
    was sold exclusively in the meantime — failed (the caller reports a 409 and commits that state)."""
    order = get_order(session, order_id, buyer)
    if order.buyer_id != buyer.id:
        raise Forbidden("Only the buyer can confirm this order.")
    provider = ctx.providers.get(order.provider)
    if not provider.buyer_confirms:
        raise Conflict(f"This order is paid through {order.provider}; it completes when the payment does.")
    order, reason = _lock_for_payment(session, order.id)
    if order.status == "fulfilled":
        return order
    if order.status != OPEN_ORDER:
        raise Conflict(f"This order is {order.status} and cannot be confirmed.", order_status=order.status)
    if reason:
        _fail(session, order, provider, reason, money_taken=False, actor_id=buyer.id)
    else:
        _sell(session, order, provider, ctx, actor_id=buyer.id)
    return order


def cancel_order(session: Session, *, order_id: str, buyer: Principal, ctx: MarketContext) -> Order:
    """The buyer abandons a pending order; its payment is cancelled so no money can be taken."""
    order = get_order(session, order_id, buyer)
    if order.buyer_id != buyer.id:
        raise Forbidden("Only the buyer can cancel this order.")
    order = _lock_order(session, order.id)
    if order.status != OPEN_ORDER:
        raise Conflict(f"This order is {order.status}; only pending orders can be cancelled.",
                       order_status=order.status)
    if order.payment_ref and not ctx.providers.get(order.provider).cancel(order.payment_ref):
        raise Conflict(f"This order was already paid at {order.provider.capitalize()}, so it can no longer be "
                       "cancelled: its license follows as soon as the payment is confirmed, and the seller can "
                       "refund it.", order_status=order.status)
    _close(session, order, "cancelled", "cancelled by the buyer", actor_id=buyer.id)
    provider = ctx.providers.get(order.provider)
    if isinstance(provider, CardEntry):  # a card saved for a bank challenge the buyer gave up on
        _forget_card_after_commit(session, provider, order.payment_ref)
    return order


# ------------------------------------------------------------------------------ card payments on the website


@dataclass(frozen=True)
class CardPayment:
    """A card charged for an order: the order afterwards, and the payment's status (`requires_action`: the bank
    wants the buyer to authenticate in their browser before the charge completes)."""

    order: Order
    status: PaymentStatus


def _card_order(session: Session, order_id: str, buyer: Principal, ctx: MarketContext) -> tuple[Order, CardEntry]:
    order = get_order(session, order_id, buyer)
    if order.buyer_id != buyer.id:
        raise Forbidden("Only the buyer can pay this order.")
    provider = ctx.providers.get(order.provider)
    if not isinstance(provider, CardEntry) or provider.card_form is None:
        raise Conflict(f"This website cannot take cards for orders paid through {order.provider}.")
    return order, provider


def _customer_ref(session: Session, provider: CardEntry, buyer: Principal) -> str:
    """The buyer's customer record at the provider, made at their first card payment and kept."""
    known = session.get(PaymentCustomer, (buyer.id, provider.name))
    if known is not None:
        return known.customer_ref
    customer_ref = provider.customer_for(account_id=buyer.id, email=buyer.email)
    try:
        with session.begin_nested():
            session.add(PaymentCustomer(account_id=buyer.id, provider=provider.name, customer_ref=customer_ref))
    except IntegrityError:  # the buyer's other tab got there first; the provider gave both the same record
        return session.get(PaymentCustomer, (buyer.id, provider.name), populate_existing=True).customer_ref  # type: ignore[union-attr]
    return customer_ref


def open_card_payment(session: Session, *, order_id: str, buyer: Principal, ctx: MarketContext) -> str:
    """Open a card setup for a pending order; returns the client secret the buyer's card form confirms.

    A customer record the provider no longer knows (deleted in its dashboard; the server moved from test to live
    keys) is replaced, rather than blocking the buyer's card payments for good.
    """
    order, provider = _card_order(session, order_id, buyer, ctx)
    if order.status != OPEN_ORDER:
        raise Conflict(f"This order is {order.status}: there is nothing to pay.", order_status=order.status)
    customer_ref = _customer_ref(session, provider, buyer)
    try:
        return provider.open_card_setup(customer_ref=customer_ref, order_id=order.id)
    except UnknownCustomer:
        return provider.open_card_setup(
            customer_ref=_replace_customer(session, provider, buyer, forgotten=customer_ref), order_id=order.id
        )


def _replace_customer(session: Session, provider: CardEntry, buyer: Principal, *, forgotten: str) -> str:
    """A new customer record in place of one the provider forgot; under the row's lock, so two tabs replacing it at
    once end with one record (the second finds the first's)."""
    row = session.get(PaymentCustomer, (buyer.id, provider.name), with_for_update=True, populate_existing=True)
    if row is not None and row.customer_ref != forgotten:
        return row.customer_ref
    customer_ref = provider.customer_for(account_id=buyer.id, email=buyer.email, fresh=True)
    if row is None:
        session.add(PaymentCustomer(account_id=buyer.id, provider=provider.name, customer_ref=customer_ref))
    else:
        row.customer_ref = customer_ref
    return customer_ref


def pay_order_with_card(
    session: Session, *, order_id: str, buyer: Principal, setup_ref: str, ctx: MarketContext
) -> CardPayment:
    """Charge the card the buyer's form saved (`setup_ref`) and, when the charge goes through, sell at once.

    Runs under the work's offer locks like a webhook's success: an exclusive offer sold meanwhile fails the order
    before any money moves, and two tabs paying one order charge once (the second finds it fulfilled). The
    payment is looked up first: when it was taken already (another tab's bank challenge, or a charge whose sale
    failed afterwards) it is settled instead of charged again. A declined card raises PaymentDeclined and leaves
    the order pending for another card. Whenever the saved card is not charged, it is removed again: IPX keeps
    no cards.
    """
    order, provider = _card_order(session, order_id, buyer, ctx)
    customer = session.get(PaymentCustomer, (buyer.id, provider.name))
    charged = False
    try:
        payment, charged = _charge_saved_card(session, order, provider, customer, setup_ref, buyer, ctx)
        return payment
    except PaymentDeclined:
        charged = True  # the provider removed the declined card with its refusal
        raise
    finally:
        if not charged and customer is not None:
            provider.forget_setup_card(setup_ref, customer_ref=customer.customer_ref, order_id=order.id)


def _charge_saved_card(
    session: Session, order: Order, provider: CardEntry, customer: PaymentCustomer | None, setup_ref: str,
    buyer: Principal, ctx: MarketContext,
) -> tuple[CardPayment, bool]:
    """pay_order_with_card's decision, and whether the setup's card was charged (it then stays on the payment until
    the payment settles)."""
    order, reason = _lock_for_payment(session, order.id)
    if order.status == "fulfilled":
        return CardPayment(order, "succeeded"), False
    if order.status != OPEN_ORDER or not order.payment_ref:
        raise Conflict(f"This order is {order.status}: there is nothing to pay.", order_status=order.status)
    known = provider.current_state(order.payment_ref)
    if known.event.kind == "succeeded":
        _apply_event(session, provider, known.event, ctx)  # sells, or fails and refunds
        _forget_card_after_commit(session, provider, order.payment_ref)
        return CardPayment(order, "succeeded" if order.status == "fulfilled" else "canceled"), False
    if known.status == "processing":
        return CardPayment(order, "processing"), False
    if reason:
        _fail(session, order, provider, reason, money_taken=False, actor_id=buyer.id)
        return CardPayment(order, "canceled"), False
    if customer is None:
        raise Conflict("No card was entered for this order yet; enter the card in the payment form.")
    started = provider.pay_with_card(
        order.payment_ref, setup_ref=setup_ref, customer_ref=customer.customer_ref, order_id=order.id
    )
    if started.status == "succeeded":
        _sell(session, order, provider, ctx, actor_id=buyer.id)
        _forget_card_after_commit(session, provider, order.payment_ref)
    return CardPayment(order, started.status), True


def settle_order(session: Session, *, order_id: str, buyer: Principal, ctx: MarketContext) -> CardPayment:
    """Ask the provider how an order's payment stands and apply it as its webhook would.

    For a buyer back from authenticating with their bank: the page shows the license without waiting for the
    webhook. Whatever the order's state: a payment that went through after the order was cancelled or failed is
    refunded here too. A late or lost webhook changes nothing afterwards (a success is applied once, by status).
    """
    order, provider = _card_order(session, order_id, buyer, ctx)
    if not order.payment_ref:
        return CardPayment(order, "canceled")
    known = provider.current_state(order.payment_ref)
    if known.event.kind != "ignored":
        _apply_event(session, provider, known.event, ctx)
        if known.event.kind == "succeeded":
            _forget_card_after_commit(session, provider, order.payment_ref)
    return CardPayment(order, known.status)


def _forget_card_after_commit(session: Session, provider: CardEntry, payment_ref: str | None) -> None:
    """Once the payment is settled and committed, its card leaves the buyer's customer record: IPX offers no saved
    cards (a declined card is removed at once, by the provider). A failure here is logged by the after-commit
    runner and changes nothing about the order."""
    if payment_ref:
        session.info.setdefault("after_commit", []).append(lambda: provider.forget_card(payment_ref))


def _close(session: Session, order: Order, status: str, reason: str, *, actor_id: str | None) -> None:
    order.status, order.failure_reason, order.closed_at = status, reason, utcnow()
    _audit_order(session, order, status, actor_id, reason=reason)


def _sell(session: Session, order: Order, provider: PaymentProvider, ctx: MarketContext, *,
          actor_id: str | None) -> None:
    """Paid, then fulfilled: ledger journal, signed and logged license, exclusive bookkeeping.
    Call only with the work's offers locked and availability just checked."""
    offer = get_offer(session, order.offer_id)
    order.status, order.paid_at = "paid", utcnow()
    _audit_order(session, order, "paid", actor_id, provider=provider.name, payment_ref=order.payment_ref)
    work = registry_service.get_work(session, order.work_id)
    ledger.post(
        session, kind="sale", order_id=order.id, memo=f"sale of offer {offer.id}",
        postings=ledger.sale_postings(
            amount=order.amount, currency=order.currency, fee_bps=order.fee_bps, provider=provider.name,
            owner_account_id=work.owner_id, creators=creator_shares(work),
        ),
    )
    license_row = _issue_license(session, order, offer, work, ctx)
    if offer.exclusive:
        _sell_exclusively(session, offer, actor_id)
    order.status, order.fulfilled_at = "fulfilled", utcnow()
    _audit_order(session, order, "fulfilled", actor_id, license_id=license_row.id)


def _fail(
    session: Session, order: Order, provider: PaymentProvider, reason: str, *, money_taken: bool,
    actor_id: str | None,
) -> None:
    """A sale that cannot happen takes no money: refund what was taken, cancel what was not — and refund what the
    provider took meanwhile (a bank challenge passed in another tab) when it can no longer be cancelled."""
    if order.payment_ref and (money_taken or not provider.cancel(order.payment_ref)):
        order.refund_ref = provider.refund(order.payment_ref, amount=order.amount, idempotency_key=f"refund:{order.id}")
    _close(session, order, "failed", reason, actor_id=actor_id)


def _sell_exclusively(session: Session, offer: Offer, actor_id: str | None) -> None:
    offer.status = "sold"
    others = session.scalars(
        select(Offer).where(Offer.work_id == offer.work_id, Offer.id != offer.id, Offer.status == "active")
    )
    for other in others:
        other.status, other.withdrawn_reason = "withdrawn", f"exclusive offer {offer.id} was sold"
        other.withdrawn_for_offer_id = offer.id
        audit_service.record(session, action="offer.withdrawn", subject_type="offer", subject_id=other.id,
                             actor_id=actor_id, details={"reason": other.withdrawn_reason})


def _unsell_exclusively(session: Session, offer: Offer, actor_id: str | None, *, today: date) -> None:
    """Undo _sell_exclusively once its license is revoked: the offer and those its sale withdrew go back on sale.

    Offers the seller withdrew stay withdrawn. An offer that a license sold meanwhile now contradicts (the
    exclusive license had ended, say, and the scope was sold again) stays off sale, saying which license holds it.
    Call with the work's offers locked.
    """
    withdrawn = list(session.scalars(select(Offer).where(
        Offer.work_id == offer.work_id, Offer.withdrawn_for_offer_id == offer.id, Offer.status == "withdrawn"
    )))
    reason = f"the sale of exclusive offer {offer.id} was refunded"
    withdrawn_after_sale = offer.withdrawn_reason == SELLER_WITHDRAWAL
    if withdrawn_after_sale:
        offer.status = "withdrawn"
    for candidate in withdrawn if withdrawn_after_sale else [offer, *withdrawn]:
        candidate.withdrawn_for_offer_id = None
        held = _scope_conflict(session, candidate.work_id, offer_terms(candidate), exclusive=candidate.exclusive,
                               today=today)
        if held is not None:
            candidate.status = "withdrawn"
            candidate.withdrawn_reason = f"the exclusive sale was refunded, but license {held.id} now covers its scope"
            continue
        candidate.status, candidate.withdrawn_reason = "active", None
        audit_service.record(session, action="offer.reinstated", subject_type="offer", subject_id=candidate.id,
                             actor_id=actor_id, details={"reason": reason})


def creator_shares(work: Work) -> list[ledger.CreatorShare]:
    """Co-creators and their basis points, as signed into the registration statement."""
    try:
        return [
            ledger.CreatorShare(str(c["name"]), int(c["share_bps"]))
            for c in registry_service.statement_of(work).get("creators", [])
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise CreatorShareError(f"work {work.id} has unreadable creator shares") from exc


# ----------------------------------------------------------------------------------------- webhooks


def _record_event(session: Session, provider: str, event: ProviderEvent) -> int | None:
    """Insert the event once: None when this provider event id was already received (a redelivery)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(PaymentEvent)
        .values(provider=provider, event_id=event.event_id, event_type=event.event_type,
                payment_ref=event.payment_ref, order_id=event.order_id, outcome="received", received_at=utcnow())
        .on_conflict_do_nothing(index_elements=["provider", "event_id"])
        .returning(PaymentEvent.id)
    )
    return session.execute(statement).scalar_one_or_none()


def handle_payment_event(
    session: Session, *, provider: PaymentProvider, event: ProviderEvent, ctx: MarketContext
) -> str:
    """Apply a verified provider event exactly once and return what happened (also stored on the event).

    A redelivered event id does nothing. An event for an order we do not know is logged and kept for
    staff, never an error (providers retry errors forever). A success for an order that can no longer
    be fulfilled — or that was closed meanwhile — is refunded at once.
    """
    event_row_id = _record_event(session, provider.name, event)
    if event_row_id is None:
        return "duplicate event ignored"
    outcome = _apply_event(session, provider, event, ctx)
    if event.kind in ("succeeded", "canceled") and isinstance(provider, CardEntry):
        _forget_card_after_commit(session, provider, event.payment_ref)  # settled or given up by the webhook
    event_row = session.get(PaymentEvent, event_row_id)
    if event_row is not None:
        event_row.outcome = outcome
    return outcome


def _apply_event(session: Session, provider: PaymentProvider, event: ProviderEvent, ctx: MarketContext) -> str:
    if event.kind == "ignored":
        return f"{event.event_type} not used"
    order = session.scalar(
        select(Order).where(Order.provider == provider.name, Order.payment_ref == event.payment_ref)
    ) if event.payment_ref else None
    if order is None:
        logger.warning("payment event %s (%s) for unknown payment %s, order %s", event.event_id, event.event_type,
                       event.payment_ref, event.order_id)
        return "unknown order"
    if event.kind == "succeeded":
        if (event.amount, event.currency) != (order.amount, order.currency):
            logger.error("payment %s amount %s %s does not match order %s", event.payment_ref, event.amount,
                         event.currency, order.id)
            _audit_order(session, order, "amount_mismatch", None, paid=event.amount, currency=event.currency)
            return "amount mismatch: left for staff"
        order, reason = _lock_for_payment(session, order.id)
        if order.status == OPEN_ORDER:
            if reason:
                _fail(session, order, provider, reason, money_taken=True, actor_id=None)
            else:
                _sell(session, order, provider, ctx, actor_id=None)
            return f"order {order.status}"
        if order.status in ("failed", "cancelled") and not order.refund_ref and order.payment_ref:
            order.refund_ref = provider.refund(order.payment_ref, amount=order.amount,
                                               idempotency_key=f"refund:{order.id}")
            _audit_order(session, order, "late_payment_refunded", None, refund_ref=order.refund_ref)
            return "payment for a closed order refunded"
        return f"order already {order.status}"
    order = _lock_order(session, order.id)
    if event.kind == "failed" and order.status == OPEN_ORDER:
        # not final at Stripe: the buyer may retry the same PaymentIntent with another card
        _audit_order(session, order, "payment_failed", None, payment_ref=order.payment_ref)
        return "payment attempt failed: order still pending"
    if event.kind == "canceled" and order.status == OPEN_ORDER:
        _close(session, order, "cancelled", f"payment cancelled at {provider.name}", actor_id=None)
        return "order cancelled"
    if event.kind == "refunded" and order.status == "fulfilled":
        if event.amount_refunded is not None and event.amount_refunded < order.amount:
            # A goodwill refund of part of the price is not a cancelled sale: the license stays; the ledger takes
            # back the new part from the seller and the fee in proportion (the provider reports running totals).
            sale = ledger.sale_of_order(session, order.id)
            already = _refunded_in_part(session, order)
            if sale is not None and event.amount_refunded > already:
                ledger.reverse(session, sale, memo=f"partial refund of order {order.id} at {provider.name}",
                               refunded=event.amount_refunded, already=already)
            _audit_order(session, order, PARTIAL_REFUND, None, refunded=event.amount_refunded,
                         currency=event.currency)
            return "partial refund recorded: the license stays, left for staff"
        _refund(session, order, reason=f"refunded at {provider.name}", actor_id=None, provider=None, ctx=ctx)
        return "order refunded"
    return f"order already {order.status}"


# ------------------------------------------------------------------------------------------ refunds


def refund_order(session: Session, *, order_id: str, actor: Principal, reason: str, ctx: MarketContext) -> Order:
    """Give the buyer their money back (staff or the seller): the ledger is reversed and the license
    revoked by appending a revocation to the log; an exclusive offer sold by the order is for sale again, with the
    offers its sale withdrew. Only fulfilled orders can be refunded (409)."""
    order = get_order(session, order_id, actor)
    if not (actor.is_staff or actor.id == order.seller_id):
        raise Forbidden("Only the seller or IPX staff can refund an order.")
    order = _lock_order(session, order.id)
    if order.status != "fulfilled":
        raise Conflict(f"This order is {order.status}; only fulfilled orders can be refunded.",
                       order_status=order.status)
    _refund(session, order, reason=reason, actor_id=actor.id, provider=ctx.providers.get(order.provider), ctx=ctx)
    return order


def _refund(
    session: Session, order: Order, *, reason: str, actor_id: str | None, provider: PaymentProvider | None,
    ctx: MarketContext,
) -> None:
    """provider=None when the provider already refunded (its webhook told us). Call with the work's offers locked:
    refunding an exclusive sale puts offers back on sale."""
    remaining = order.amount - _refunded_in_part(session, order)
    if provider is not None and order.payment_ref and remaining > 0:
        # the amount is part of the key: a provider keeps a key's first answer, and a partial refund reported late
        # changes what a retry must ask for
        order.refund_ref = provider.refund(order.payment_ref, amount=remaining,
                                           idempotency_key=f"refund:{order.id}:{remaining}")
    sale = ledger.sale_of_order(session, order.id)
    if sale is not None:
        ledger.reverse(session, sale, memo=f"refund of order {order.id}: {reason}",
                       already=order.amount - remaining)
    license_row = session.scalar(select(License).where(License.order_id == order.id))
    if license_row is not None and license_row.status == "active":
        _revoke_license(session, license_row, reason=reason, actor_id=actor_id, ctx=ctx)
        offer = get_offer(session, license_row.offer_id)
        if offer.status == "sold":
            _unsell_exclusively(session, offer, actor_id, today=utcnow().date())
    _close(session, order, "refunded", reason, actor_id=actor_id)


def _refunded_in_part(session: Session, order: Order) -> int:
    """What the provider already gave back of this order (goodwill partial refunds): a refund of the whole price on
    top would be refused by the provider, or take more than was paid."""
    events = audit_service.for_subject(session, "order", order.id)
    return max((int(e.details["refunded"]) for e in events if e.action == f"order.{PARTIAL_REFUND}"), default=0)


# ----------------------------------------------------------------------------------------- licenses


def _party(session: Session, account_id: str) -> dict[str, str]:
    user = session.get(User, account_id)
    return {"account_id": account_id, "display_name": user.display_name if user else ""}


def _issue_license(session: Session, order: Order, offer: Offer, work: Work, ctx: MarketContext) -> License:
    license_id = str(uuid.uuid4())

    def statement(key_id: str, at: datetime) -> dict[str, Any]:
        return {
            "type": LICENSE_TYPE,
            "license_id": license_id,
            "work_id": work.id,
            "work_sha256": work.sha256,
            "registration_log_index": work.log_index,
            "licensor": _party(session, order.seller_id),
            "licensee": _party(session, order.buyer_id),
            "terms": offer.terms,
            "price": {"amount": order.amount, "currency": order.currency},
            "issued_at": registry_service.rfc3339(at),
            "key_id": key_id,
        }

    entry = registry_service.append_signed(session, ctx.key_dir, LICENSE_TYPE, statement)
    row = License(
        id=license_id, order_id=order.id, offer_id=offer.id, work_id=work.id, licensor_id=order.seller_id,
        licensee_id=order.buyer_id, exclusive=offer.exclusive, terms=offer.terms, statement=entry.body,
        signature=entry.signature, key_id=entry.key_id, log_index=entry.index, issued_at=entry.at,
    )
    session.add(row)
    session.flush()
    audit_service.record(session, action="license.issued", subject_type="license", subject_id=license_id,
                         actor_id=order.buyer_id, details={"order_id": order.id, "log_index": entry.index})
    return row


def _revoke_license(session: Session, row: License, *, reason: str, actor_id: str | None, ctx: MarketContext) -> None:
    entry = registry_service.append_signed(session, ctx.key_dir, REVOCATION_TYPE, lambda key_id, at: {
        "type": REVOCATION_TYPE, "license_id": row.id, "reason": reason, "revoked_at": registry_service.rfc3339(at),
        "key_id": key_id,
    })
    row.status, row.revoked_at, row.revocation_reason = "revoked", entry.at, reason
    row.revocation_statement, row.revocation_signature = entry.body, entry.signature
    row.revocation_key_id, row.revocation_log_index = entry.key_id, entry.index
    audit_service.record(session, action="license.revoked", subject_type="license", subject_id=row.id,
                         actor_id=actor_id, details={"reason": reason, "log_index": entry.index})


def get_license(session: Session, license_id: str) -> License:
    row = session.get(License, license_id)
    if row is None:
        raise NotFound(f"No license has the id {license_id}.")
    return row


def license_evidence(session: Session, row: License, witnesses: Collection[str]) -> dict[str, Any]:
    """The offline bundle for the license statement (`ipx verify` checks it like a registration's); once the license
    is revoked, it carries the revocation's bundle too, so a copy fetched after the refund cannot pass as current."""
    bundle = registry_service.evidence_bundle(
        session, statement=row.statement, signature=row.signature, key_id=row.key_id, index=row.log_index,
        witnesses=witnesses,
    )
    if row.status == "revoked":
        bundle["revocation"] = revocation_evidence(session, row, witnesses)
    return bundle


def revocation_evidence(session: Session, row: License, witnesses: Collection[str]) -> dict[str, Any]:
    """The offline bundle proving the revocation was logged."""
    if row.revocation_statement is None or row.revocation_signature is None or row.revocation_log_index is None:
        raise NotFound("This license has not been revoked.")
    return registry_service.evidence_bundle(
        session, statement=row.revocation_statement, signature=row.revocation_signature,
        key_id=row.revocation_key_id or row.key_id, index=row.revocation_log_index, witnesses=witnesses,
    )


def licensed_file(session: Session, license_id: str, caller: Principal, *, today: date) -> registry_service.StoredFile:
    """The licensed work's file, for the license's holder while the license stands; otherwise the refusal that
    license_deliveries explains (410 or 451)."""
    row = get_license(session, license_id)
    if row.licensee_id != caller.id:
        raise Forbidden("Only the holder of this license can download the work through it.")
    delivered = license_deliveries(session, [row], today=today)[row.id]
    if isinstance(delivered, (Gone, LegallyWithheld)):
        raise delivered
    return delivered


def license_deliveries(
    session: Session, rows: Sequence[License], *, today: date
) -> dict[str, registry_service.StoredFile | Gone | LegallyWithheld]:
    """What each license delivers now, by license id: its work's file, or why not. Callers check who holds them.

    A revoked or ended license gives nothing more (Gone). While a complaint holds the work (disputed, its sales
    suspended or a listing of it taken down), the file is withheld (LegallyWithheld): IPX must stop handing out
    content it was told may infringe, even to earlier buyers; the license itself is untouched and the download comes
    back when the complaint is resolved. Three queries for any number of licenses, so a page of purchases asks no
    more than a single license does.
    """
    delivered: dict[str, registry_service.StoredFile | Gone | LegallyWithheld] = {}
    standing = []
    for row in rows:
        license_terms = terms.LicenseTerms.model_validate(row.terms)
        if row.status != "active":
            delivered[row.id] = Gone("This license was revoked, so the work can no longer be downloaded through it.")
        elif terms.expired_on(license_terms, today):
            delivered[row.id] = Gone(f"This license ended on {license_terms.duration.until}, so the work can no "
                                     "longer be downloaded through it.")
        else:
            standing.append(row)
    work_ids = list({row.work_id for row in standing})
    if not work_ids:
        return delivered
    works = {work.id: work for work in session.scalars(select(Work).where(Work.id.in_(work_ids)))}
    held = {work.id for work in works.values() if work.status != "registered"}
    held |= _works_with_sales_suspended(session, work_ids) | _works_taken_down(session, work_ids)
    for row in standing:
        delivered[row.id] = LegallyWithheld(
            "Downloads of this work are paused while IPX handles an infringement complaint about it. Your license "
            "still stands; the download comes back when the complaint is resolved."
        ) if row.work_id in held else registry_service.stored_file(works[row.work_id])
    return delivered


def license_of_order(session: Session, order_id: str) -> License | None:
    return session.scalar(select(License).where(License.order_id == order_id))


def licenses_of_orders(session: Session, order_ids: Sequence[str]) -> dict[str, License]:
    """The licenses these orders issued, by order id, in one query (a page of orders, not a query per row)."""
    if not order_ids:
        return {}
    rows = session.scalars(select(License).where(License.order_id.in_(list(order_ids))))
    return {row.order_id: row for row in rows}


def licenses_of(session: Session, account_id: str) -> list[License]:
    """Licenses an account holds, newest first, for account pages."""
    return list(session.scalars(
        select(License).where(License.licensee_id == account_id).order_by(License.issued_at.desc())
    ))


# -------------------------------------------------------------------------------------- stats, ledger


def sales_summary(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    """Gross sales in [start, end): licenses fulfilled in the window (a later refund does not erase a
    sale from history), totals per currency and per license template, and listings created."""
    rows = session.execute(
        select(Offer.template, Order.currency, func.count(), func.sum(Order.amount))
        .join(Offer, Offer.id == Order.offer_id)
        .where(Order.fulfilled_at >= start, Order.fulfilled_at < end)
        .group_by(Offer.template, Order.currency)
    ).all()
    by_currency: dict[str, int] = {}
    by_template: dict[str, dict[str, Any]] = {}
    for template, currency, count, total in rows:
        by_currency[currency] = by_currency.get(currency, 0) + int(total)
        entry = by_template.setdefault(template, {"count": 0, "by_currency": {}})
        entry["count"] += count
        entry["by_currency"][currency] = entry["by_currency"].get(currency, 0) + int(total)
    listings_created = session.scalar(
        select(func.count()).select_from(Listing).where(Listing.created_at >= start, Listing.created_at < end)
    ) or 0
    return {
        "count": sum(entry["count"] for entry in by_template.values()),
        "by_currency": by_currency,
        "by_license_type": by_template,
        "listings_created": listings_created,
    }


def refunds_summary(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    """Money given back to buyers in [start, end), counted when it was given back, not in the sale's window, so
    gross sales (by fulfilment) minus these is what the window really kept.

    `count`: sales fully refunded in the window. `partial`: other sales of which part was refunded in the window (the
    license stays); a sale partly and then fully refunded within one window counts once, as refunded. `by_currency`:
    minor units returned in the window, partial refunds included. Providers report a partial refund as the total
    refunded so far, so each window adds only its increase, and a full refund adds the price less what earlier
    windows already returned: one sale's refunds over all windows add up to at most its price.
    """
    at_start = audit_service.running_totals_before(f"order.{PARTIAL_REFUND}", "refunded", start)
    at_end = audit_service.running_totals_before(f"order.{PARTIAL_REFUND}", "refunded", end)
    refunded_in_window = and_(Order.status == "refunded", Order.closed_at >= start, Order.closed_at < end)
    earlier = func.coalesce(at_start.c.total, 0)
    rows = session.execute(
        select(Order.currency, Order.amount, refunded_in_window.label("full"), earlier, at_end.c.total)
        .outerjoin(at_start, at_start.c.subject_id == Order.id)
        .outerjoin(at_end, at_end.c.subject_id == Order.id)
        .where(refunded_in_window | (at_end.c.total > earlier))  # a late event repeating a total adds nothing
    ).all()
    count = partial = 0
    by_currency: dict[str, int] = {}
    for currency, amount, full, returned_before, returned_by_end in rows:
        if full:
            count += 1
        else:
            partial += 1
        by_currency[currency] = by_currency.get(currency, 0) + (amount if full else returned_by_end) - returned_before
    return {"count": count, "partial": partial, "by_currency": by_currency}


def ledger_summary(session: Session) -> dict[str, Any]:
    return ledger.summary(session)


def display_names(session: Session, account_ids: Sequence[str]) -> dict[str, str]:
    rows = session.execute(select(User.id, User.display_name).where(User.id.in_(list(account_ids))))
    return dict(rows.all())

"""Marketplace routes: listings, orders, payment webhooks, licenses and the ledger (thin; see service)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from ipx.config import Settings
from ipx.db import utcnow
from ipx.deps import Anyone, AppSettings, Caller, Creator, DbSession, Page, Registry, Staff
from ipx.errors import PROBLEM_JSON
from ipx.marketplace import service, terms
from ipx.marketplace.models import License, Listing, Offer, Order
from ipx.marketplace.payments import build_providers
from ipx.marketplace.schemas import (
    LedgerSummary,
    LicenseRead,
    ListedWork,
    ListingCreate,
    ListingCreated,
    ListingHit,
    ListingPage,
    ListingRead,
    OfferRead,
    OrderCreate,
    OrderRead,
    Party,
    PaymentInfo,
    RefundRequest,
    Revocation,
    WebhookReceipt,
)
from ipx.openapi import FILE_RESPONSES
from ipx.registry import service as registry_service
from ipx.registry.downloads import file_download
from ipx.routing import IPXRoute

router = APIRouter(tags=["marketplace"], route_class=IPXRoute)


def locked_response(body: BaseModel, status_code: int = 200) -> Response:
    """Return a finished response from a route whose transaction holds row locks.

    For a sync route FastAPI validates a returned model in the threadpool after the handler but
    before the request's transaction commits. When every pool thread is a buyer blocked on the lock
    this transaction holds, that hop can never run: a deadlock only the pool timeout breaks. A
    ready-made Response skips the hop; the declared response_model still documents the route.
    """
    return Response(body.model_dump_json(), status_code=status_code, media_type="application/json")


def build_context(settings: Settings) -> service.MarketContext:
    """Built once in create_app: payment providers from settings, the signing key directory, the fee."""
    return service.MarketContext(
        key_dir=settings.resolved_key_dir, providers=build_providers(settings), fee_bps=settings.platform_fee_bps,
        currencies=frozenset(code.upper() for code in settings.supported_currencies),
    )


def get_market(request: Request) -> service.MarketContext:
    return request.app.state.marketplace


Market = Annotated[service.MarketContext, Depends(get_market)]


def party_uri(account_id: str) -> str:
    """An ODRL party: a stable URN, since accounts have no public page of their own."""
    return f"urn:ipx:account:{account_id}"


def offer_read(session: Session, offer: Offer, *, seller_id: str | None = None, public_url: str = "") -> OfferRead:
    """An offer's terms, summary and whether it can be bought now; with `seller_id`, also its ODRL Offer policy."""
    return offers_read(session, [offer], seller_id=seller_id, public_url=public_url)[0]


def offers_read(
    session: Session, offers: Sequence[Offer], *, seller_id: str | None = None, public_url: str = ""
) -> list[OfferRead]:
    """offer_read of several offers, whose availability is read for all of them at once."""
    reasons = service.unavailable_reasons(session, offers, today=utcnow().date())
    read = []
    for offer in offers:
        offer_terms = service.offer_terms(offer)
        odrl = terms.odrl_policy(
            offer_terms, uid=f"urn:ipx:offer:{offer.id}", target=f"{public_url}/api/v1/works/{offer.work_id}",
            assigner=party_uri(seller_id),
        ) if seller_id else None
        read.append(OfferRead(
            offer_id=offer.id, listing_id=offer.listing_id, status=offer.status, summary=terms.summary(offer_terms),
            unavailable_reason=reasons[offer.id], odrl=odrl, **offer.terms,
        ))
    return read


def _work_read(session: Session, work_id: str, public_url: str) -> ListedWork:
    work = registry_service.get_work(session, work_id)
    owner = registry_service.owner_of(session, work)
    return ListedWork(
        work_id=work.id, title=work.title, work_type=work.work_type, sha256=work.sha256, media_type=work.media_type,
        registered_at=work.registered_at, log_index=work.log_index, status=work.status,
        creator=Party(account_id=owner.id, display_name=owner.display_name),
        creators=registry_service.statement_of(work).get("creators", []),
        evidence_url=f"{public_url}/api/v1/works/{work.id}/evidence", certificate_url=f"{public_url}/works/{work.id}",
    )


def listing_read(session: Session, listing: Listing, public_url: str) -> ListingRead:
    work = _work_read(session, listing.work_id, public_url)
    return ListingRead(
        listing_id=listing.id, status=listing.status, description=listing.description, tags=listing.tags,
        created_at=listing.created_at, sales_suspended=service.sales_suspended(session, listing.work_id), work=work,
        evidence_url=work.evidence_url,
        offers=offers_read(session, service.offers_of(session, listing.id), seller_id=listing.seller_id,
                           public_url=public_url),
    )


def order_read(session: Session, order: Order, viewer_id: str, public_url: str) -> OrderRead:
    issued = service.license_of_order(session, order.id)
    return issued_order_read(order, issued.id if issued else None, viewer_id, public_url)


def issued_order_read(order: Order, license_id: str | None, viewer_id: str, public_url: str) -> OrderRead:
    """order_read with the order's license already looked up: pages look up a whole page of orders' at once."""
    return OrderRead(
        order_id=order.id, status=order.status, offer_id=order.offer_id, listing_id=order.listing_id,
        work_id=order.work_id, buyer_id=order.buyer_id, seller_id=order.seller_id, amount=order.amount,
        currency=order.currency, created_at=order.created_at, paid_at=order.paid_at, fulfilled_at=order.fulfilled_at,
        closed_at=order.closed_at, failure_reason=order.failure_reason, license_id=license_id,
        license_url=f"{public_url}/api/v1/licenses/{license_id}" if license_id else None,
        payment=PaymentInfo(
            provider=order.provider, reference=order.payment_ref,
            client_secret=order.client_secret if viewer_id == order.buyer_id and order.status == "pending" else None,
            confirm_url=f"{public_url}/api/v1/orders/{order.id}/confirm"
            if order.provider == "offline" and order.status == "pending" else None,
        ),
    )


def license_read(session: Session, row: License, public_url: str) -> LicenseRead:
    parties = service.display_names(session, [row.licensor_id, row.licensee_id])
    offer_terms = terms.LicenseTerms.model_validate(row.terms)
    base = f"{public_url}/api/v1/licenses/{row.id}"
    revocation = Revocation(
        revoked_at=row.revoked_at, reason=row.revocation_reason or "", log_index=row.revocation_log_index,
        evidence_url=f"{base}/revocation/evidence",
    ) if row.revoked_at is not None and row.revocation_log_index is not None else None
    return LicenseRead(
        license_id=row.id, status=row.status, work_id=row.work_id, order_id=row.order_id,
        licensor=Party(account_id=row.licensor_id, display_name=parties.get(row.licensor_id, "")),
        licensee=Party(account_id=row.licensee_id, display_name=parties.get(row.licensee_id, "")),
        exclusive=row.exclusive, terms=row.terms, summary=terms.summary(offer_terms), price=offer_terms.price,
        issued_at=row.issued_at, log_index=row.log_index, key_id=row.key_id, evidence_url=f"{base}/evidence",
        revocation=revocation,
        odrl=terms.odrl_policy(
            offer_terms, uid=base, target=f"{public_url}/api/v1/works/{row.work_id}",
            assigner=party_uri(row.licensor_id), assignee=party_uri(row.licensee_id),
        ),
    )


@router.post("/listings", status_code=201, response_model=ListingCreated)
def create_listing(body: ListingCreate, caller: Creator, session: DbSession, market: Market,
                   settings: AppSettings) -> Response:
    """List your registered work with one or more license offers (the owning creator only)."""
    listing, offers = service.create_listing(
        session, seller=caller, work_id=str(body.work_id), offers=body.offers, ctx=market,
        description=body.description, tags=body.tags,
    )
    return locked_response(ListingCreated(
        listing_id=listing.id, work_id=listing.work_id, status=listing.status,
        url=f"{settings.public_url}/api/v1/listings/{listing.id}",
        offers=offers_read(session, offers),
    ), 201)


@router.get("/listings", response_model=ListingPage)
def search_listings(
    session: DbSession,
    settings: AppSettings,
    q: Annotated[str | None, Query(max_length=200, description="words in title, creator, type or tags")] = None,
    license: Annotated[terms.Template | None, Query(description="offer template, e.g. standard or cc-by")] = None,
    min_price: Annotated[int | None, Query(ge=0, le=terms.MAX_PRICE_MINOR, description="minor units")] = None,
    max_price: Annotated[int | None, Query(ge=0, le=terms.MAX_PRICE_MINOR, description="minor units")] = None,
    currency: Annotated[str | None, Query(pattern="^[A-Za-z]{3}$")] = None,
    page: Page = 1,
) -> ListingPage:
    """Search open listings (anyone); price filters apply to one offer together with license and currency."""
    rows, total = service.search_listings(
        session, q=q, template=license, min_price=min_price, max_price=max_price, currency=currency, page=page,
    )
    offers = {read.offer_id: read for read in offers_read(session, [offer for row in rows for offer in row.offers])}
    items = [
        ListingHit(
            listing_id=r.listing.id, work_id=r.listing.work_id, title=r.title, work_type=r.work_type,
            creator=Party(account_id=r.listing.seller_id, display_name=r.creator_name),
            description=r.listing.description, tags=r.listing.tags, created_at=r.listing.created_at,
            url=f"{settings.public_url}/api/v1/listings/{r.listing.id}",
            offers=[offers[offer.id] for offer in r.offers],
        )
        for r in rows
    ]
    return ListingPage(items=items, total=min(total, service.COUNT_CAP), total_exact=total <= service.COUNT_CAP,
                       page=page, page_size=service.PAGE_SIZE)


@router.get("/listings/{listing_id}", response_model=ListingRead)
def get_listing(listing_id: uuid.UUID, caller: Anyone, session: DbSession, settings: AppSettings) -> ListingRead:
    """A listing with its work, the registration's evidence link and every offer's terms (anyone)."""
    listing = service.get_listing(session, str(listing_id), caller)
    return listing_read(session, listing, settings.public_url)


@router.post("/offers/{offer_id}/withdraw", response_model=OfferRead)
def withdraw_offer(offer_id: uuid.UUID, caller: Creator, session: DbSession) -> Response:
    """Take one of your offers off sale (the seller or staff); licenses already sold stay valid."""
    return locked_response(offer_read(session, service.withdraw_offer(session, str(offer_id), actor=caller)))


@router.post("/orders", status_code=201, response_model=OrderRead)
def create_order(
    body: OrderCreate,
    caller: Caller,
    session: DbSession,
    market: Market,
    settings: AppSettings,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)] = None,
) -> Response:
    """Buy a license: creates the order and opens its payment; retry safely with the same Idempotency-Key."""
    placed = service.place_order(
        session, buyer=caller, offer_id=str(body.offer_id), ctx=market, idempotency_key=idempotency_key,
        payment_method=body.payment_method,
    )
    response = locked_response(order_read(session, placed.order, caller.id, settings.public_url), 201)
    if placed.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@router.get("/orders/{order_id}", response_model=OrderRead)
def get_order(order_id: uuid.UUID, caller: Caller, session: DbSession, settings: AppSettings) -> OrderRead:
    """An order (its buyer, its seller, staff)."""
    return order_read(session, service.get_order(session, str(order_id), caller), caller.id, settings.public_url)


@router.post("/orders/{order_id}/confirm", response_model=OrderRead)
def confirm_order(
    order_id: uuid.UUID, request: Request, caller: Caller, session: DbSession, market: Market, settings: AppSettings
) -> Response:
    """Offline provider: the buyer confirms payment; the license is issued, or 409 if it sold meanwhile."""
    order = service.confirm_offline_order(session, order_id=str(order_id), buyer=caller, ctx=market)
    if order.status == "failed":
        # a 409 that still commits: the order's failed state and its audit event must be kept
        problem = service.OfferUnavailable(order.failure_reason or "The offer is no longer available.",
                                           order_id=order.id, order_status=order.status)
        return JSONResponse(problem.problem(request.url.path), status_code=409, media_type=PROBLEM_JSON)
    return locked_response(order_read(session, order, caller.id, settings.public_url))


@router.post("/orders/{order_id}/cancel", response_model=OrderRead)
def cancel_order(
    order_id: uuid.UUID, caller: Caller, session: DbSession, market: Market, settings: AppSettings
) -> Response:
    """The buyer abandons a pending order; its payment is cancelled."""
    order = service.cancel_order(session, order_id=str(order_id), buyer=caller, ctx=market)
    return locked_response(order_read(session, order, caller.id, settings.public_url))


@router.post("/orders/{order_id}/refund", response_model=OrderRead)
def refund_order(
    order_id: uuid.UUID, caller: Caller, session: DbSession, market: Market, settings: AppSettings,
    body: RefundRequest | None = None,
) -> Response:
    """Refund a fulfilled order (staff or the seller); the license is revoked in the log."""
    reason = (body or RefundRequest()).reason
    order = service.refund_order(session, order_id=str(order_id), actor=caller, reason=reason, ctx=market)
    return locked_response(order_read(session, order, caller.id, settings.public_url))


@router.post("/payments/{provider_name}/webhook", response_model=WebhookReceipt)
async def payment_webhook(provider_name: str, request: Request, session: DbSession, market: Market) -> WebhookReceipt:
    """Signed provider events (Stripe: POST /payments/stripe/webhook); each event id is applied once."""
    provider = market.providers.get(provider_name)
    payload = await request.body()
    event = provider.parse_webhook(payload, request.headers)
    outcome = await run_in_threadpool(
        service.handle_payment_event, session, provider=provider, event=event, ctx=market
    )
    return WebhookReceipt(received=True, outcome=outcome)


@router.get("/licenses/{license_id}", response_model=LicenseRead)
def get_license(license_id: uuid.UUID, session: DbSession, settings: AppSettings) -> LicenseRead:
    """A license and its status: active, or revoked with the revocation's log index (anyone)."""
    return license_read(session, service.get_license(session, str(license_id)), settings.public_url)


@router.get("/licenses/{license_id}/evidence")
def get_license_evidence(license_id: uuid.UUID, session: DbSession, registry: Registry) -> dict[str, Any]:
    """Offline evidence bundle for the signed license statement (`ipx verify` checks it)."""
    return service.license_evidence(session, service.get_license(session, str(license_id)), registry.witness_names)


@router.get("/licenses/{license_id}/file", response_class=StreamingResponse, responses=FILE_RESPONSES)
def download_licensed_file(
    license_id: uuid.UUID, caller: Caller, session: DbSession, registry: Registry
) -> StreamingResponse:
    """The licensed work's file, for the license's holder while it stands and no complaint holds the work."""
    licensed = service.licensed_file(session, str(license_id), caller, today=utcnow().date())
    return file_download(registry.blobs, licensed)


@router.get("/licenses/{license_id}/revocation/evidence")
def get_revocation_evidence(license_id: uuid.UUID, session: DbSession, registry: Registry) -> dict[str, Any]:
    """Offline evidence bundle for a license's revocation statement."""
    license_row = service.get_license(session, str(license_id))
    return service.revocation_evidence(session, license_row, registry.witness_names)


@router.get("/ledger/summary", response_model=LedgerSummary)
def ledger_summary(caller: Staff, session: DbSession) -> LedgerSummary:
    """Every account's balance, the number of journals, and how many do not balance (staff)."""
    return LedgerSummary(**service.ledger_summary(session))

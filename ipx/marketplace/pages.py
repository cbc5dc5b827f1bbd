"""The marketplace's server-rendered pages: browse, list a work, buy a license, orders, sales, licenses.

Thin like the registry pages (ipx/web/pages.py, whose PageRoute, login redirect and cross-site check
they share): every handler calls the marketplace service, and the JSON API's read models build the
context. Plain forms with POST-redirect-GET, no JavaScript, except where a payment provider's card form
needs it (Stripe.js on the order page: the card number must go to Stripe, never through IPX). A checkout
form carries an Idempotency-Key made when the page was shown, so pressing "Place order" twice makes one order.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from ipx.accounts.service import Principal
from ipx.db import utcnow
from ipx.deps import AppSettings, DbSession, PageOfResults, Registry
from ipx.errors import Gone, IPXError, LegallyWithheld, NotFound
from ipx.marketplace import service, terms, views
from ipx.marketplace.api import Market, issued_order_read, license_read, listing_read
from ipx.marketplace.models import License, Order
from ipx.marketplace.payments import CardEntry
from ipx.marketplace.schemas import ListingCreate
from ipx.registry import service as registry_service
from ipx.registry.downloads import file_download
from ipx.routing import problem_response
from ipx.web import certificates
from ipx.web.pages import Member, Visitor, error_page, page_router, render

SELLABLE_WORKS_SHOWN = 200
SALES_LISTINGS_NAMED = 3  # the sales page's Listings tile names a few, then says how many more
ORDER_STATUS_TEXT = {
    "pending": "Waiting for payment", "paid": "Paid", "fulfilled": "Licensed", "failed": "Failed",
    "cancelled": "Cancelled", "refunded": "Refunded",
}

router = page_router()


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _offer_view(offer: dict[str, Any]) -> dict[str, Any]:
    """An OfferRead as a page shows it: the API's fields plus the price and template as text."""
    price = offer["price"]
    return {
        **offer, "price_text": terms.format_money(price["amount"], price["currency"]),
        "template_label": terms.TEMPLATES[offer["template"]].label,
    }


def _work_facts(session: Session, work_id: str) -> dict[str, Any]:
    work = registry_service.get_work(session, work_id)
    return {
        "work_id": work.id, "title": work.title, "work_type": work.work_type, "status": work.status,
        "page_url": f"/works/{work.id}", "bundle_url": f"/works/{work.id}/evidence.json",
        "thumbnail_url": f"/works/{work.id}/thumbnail" if certificates.has_preview(work.media_type) else None,
    }


# --- browse -----------------------------------------------------------------------------------------------------


def _price_filter(text: str, currency: str | None, label: str, problems: list[str]) -> int | None:
    """A typed price bound in minor units of `currency`; None (with the reason in `problems`) when unusable.

    Bounds above any price an offer can have are cut to just above it: they mean "no limit" or "nothing" alike.
    """
    if not text.strip():
        return None
    if currency is None:
        problems.append(f"{label}: choose a currency too, since prices in different currencies cannot be compared.")
        return None
    try:
        return views.parse_major_units(text, currency)
    except views.AmountTooLarge:
        return terms.MAX_PRICE_MINOR + 1
    except views.MoneyInputError as exc:
        problems.append(f"{label}: {exc}.")
        return None


@router.get("/market", response_class=HTMLResponse)
def market_page(
    request: Request, session: DbSession, caller: Visitor, q: str = "", license: str = "", min_price: str = "",
    max_price: str = "", currency: str = "", page: PageOfResults = 1,
) -> HTMLResponse:
    """Search open listings by words, license template, price range and currency (anyone)."""
    market: service.MarketContext = request.app.state.marketplace
    query = q.strip()[:200]
    template = license if license in terms.TEMPLATES else None
    code = currency.strip().upper() if currency.strip().upper() in market.currencies else None
    if code is None and len(market.currencies) == 1:
        code = next(iter(market.currencies))
    problems: list[str] = []
    low = _price_filter(min_price, code, "Lowest price", problems)
    high = _price_filter(max_price, code, "Highest price", problems)
    rows, total = service.search_listings(
        session, q=query or None, template=template, min_price=low, max_price=high, currency=code, page=page,
        page_size=service.PAGE_SIZE,
    )
    filters = {"q": query, "license": template or "", "min_price": min_price.strip(), "max_price": max_price.strip(),
               "currency": code or ""}
    link_filters = {name: value for name, value in filters.items() if value}
    context = {
        "filters": filters, "problems": problems, "cards": views.listing_cards(session, rows), "page": page,
        "total": min(total, service.COUNT_CAP), "total_exact": total <= service.COUNT_CAP,
        "templates": [(slug, rule.label) for slug, rule in terms.TEMPLATES.items()],
        "currencies": sorted(market.currencies),
        "previous_url": f"/market?{urlencode({**link_filters, 'page': page - 1})}" if page > 1 else None,
        "next_url": f"/market?{urlencode({**link_filters, 'page': page + 1})}"
        if page * service.PAGE_SIZE < total else None,
        "first_url": f"/market?{urlencode(link_filters)}" if link_filters else "/market",
        "filtered": bool(link_filters),
    }
    return render(request, "market/index.html", context, caller)


@router.get("/market/listings/{listing_id}", response_class=HTMLResponse)
def listing_page(
    request: Request, listing_id: uuid.UUID, session: DbSession, settings: AppSettings, caller: Visitor,
    created: bool = False,
) -> HTMLResponse:
    """A listing: the work and its evidence, every offer's terms and a Buy button per open offer (anyone)."""
    listing = service.get_listing(session, str(listing_id), caller)
    read = listing_read(session, listing, settings.public_url).model_dump()
    is_seller = caller is not None and caller.id == listing.seller_id
    context = {
        "listing": read, "work": _work_facts(session, listing.work_id),
        "offers": [_offer_view(o) for o in read["offers"]], "is_seller": is_seller,
        "just_created": created and is_seller,
    }
    return render(request, "market/listing.html", context, caller)


@router.post("/market/offers/{offer_id}/withdraw")
def withdraw_offer(offer_id: uuid.UUID, session: DbSession, caller: Member) -> RedirectResponse:
    """The seller takes one offer off sale; licenses already sold stay valid (seller or staff)."""
    offer = service.withdraw_offer(session, str(offer_id), actor=caller)
    return _redirect(f"/market/listings/{offer.listing_id}")


# --- sell -------------------------------------------------------------------------------------------------------


def _sell_context(
    session: Session, caller: Principal, market: service.MarketContext, values: dict[str, Any],
    errors: dict[str, list[str]], summary: str | None = None,
) -> dict[str, Any]:
    works, _ = registry_service.search_works(
        session, sha256=None, q=None, owner_id=caller.id, page=1, page_size=SELLABLE_WORKS_SHOWN
    )
    return {
        "values": values, "errors": errors, "summary": summary,
        "works": [{"id": w.id, "title": w.title, "status": w.status} for w in works],
        "templates": [(slug, rule.label) for slug, rule in terms.TEMPLATES.items()],
        "uses": terms.USES, "currencies": sorted(market.currencies),
    }


@router.get("/market/sell", response_class=HTMLResponse)
def sell_page(
    request: Request, session: DbSession, market: Market, caller: Member, work_id: str = ""
) -> HTMLResponse:
    """The listing form: one of your works, a description, tags and its first offer (logged in)."""
    values = {**views.DEFAULT_OFFER_VALUES, "work_id": work_id, "description": "", "tags": ""}
    return render(request, "market/sell.html", _sell_context(session, caller, market, values, {}), caller)


@router.post("/market/sell", response_class=HTMLResponse)
async def create_listing(request: Request, session: DbSession, market: Market, caller: Member) -> Response:
    """List a work with one offer through the same service as POST /api/v1/listings (logged in)."""
    form = await request.form()
    offer_values = views.offer_values(form, [str(use) for use in form.getlist("uses")])
    values = {**offer_values, "work_id": str(form.get("work_id") or ""),
              "description": str(form.get("description") or "").strip(), "tags": str(form.get("tags") or "")}
    data, errors = views.offer_data(offer_values)
    summary, status = None, 422
    try:
        offer = service.parse_offer(data)
        body = ListingCreate.model_validate({
            "work_id": values["work_id"], "description": values["description"] or None,
            "tags": [tag.strip() for tag in values["tags"].split(",") if tag.strip()], "offers": [offer],
        })
        if not errors:
            listing, _ = service.create_listing(
                session, seller=caller, work_id=str(body.work_id), offers=body.offers, ctx=market,
                description=body.description, tags=body.tags,
            )
            return _redirect(f"/market/listings/{listing.id}?created=1")
    except ValidationError as exc:
        for item in exc.errors():
            field = str(item["loc"][0])
            message = "Choose one of your registered works." if field == "work_id" else item["msg"]
            errors.setdefault(field, []).append(message.removeprefix("Value error, "))
    except NotFound as exc:
        errors["work_id"] = [exc.detail]
    except IPXError as exc:  # contradictory terms, a flagged or disputed work, someone else's work
        for field, messages in views.offer_field_errors(exc).items():
            errors.setdefault(field, []).extend(messages)
        summary, status = (None if exc.extra.get("errors") else exc.detail), exc.status_code
    session.rollback()
    context = _sell_context(session, caller, market, values, errors, summary)
    return render(request, "market/sell.html", context, caller, status_code=status)


# --- buy --------------------------------------------------------------------------------------------------------


def _checkout_context(
    session: Session, offer_id: str, settings: AppSettings, caller: Principal, problem: str | None = None
) -> dict[str, Any]:
    offer = service.get_offer(session, offer_id)
    listing = service.get_listing(session, offer.listing_id, caller)
    read = listing_read(session, listing, settings.public_url)
    offer_view = next(_offer_view(o.model_dump()) for o in read.offers if o.offer_id == offer.id)
    if problem is None:
        own_listing = "This is your own listing: you cannot buy a license to your own work."
        problem = own_listing if listing.seller_id == caller.id else offer_view["unavailable_reason"]
    return {
        "offer": offer_view, "listing": read.model_dump(), "work": _work_facts(session, listing.work_id),
        "problem": problem, "idempotency_key": str(uuid.uuid4()),
    }


@router.get("/market/checkout/{offer_id}", response_class=HTMLResponse)
def checkout_page(
    request: Request, offer_id: uuid.UUID, session: DbSession, settings: AppSettings, market: Market, caller: Member
) -> HTMLResponse:
    """What you are about to buy, its terms and price, and the Place order button (logged in)."""
    context = _checkout_context(session, str(offer_id), settings, caller)
    context["provider"] = market.providers.default.name
    return render(request, "market/checkout.html", context, caller)


@router.post("/market/checkout/{offer_id}", response_class=HTMLResponse)
def place_order(
    request: Request, offer_id: uuid.UUID, session: DbSession, settings: AppSettings, market: Market, caller: Member,
    idempotency_key: Annotated[str, Form(min_length=1, max_length=255)],
) -> Response:
    """Create the order (once per form: the key makes a double submit a replay) and go to its page (logged in)."""
    try:
        placed = service.place_order(
            session, buyer=caller, offer_id=str(offer_id), ctx=market, idempotency_key=idempotency_key
        )
    except NotFound:
        raise
    except IPXError as exc:  # sold meanwhile, your own work, a payment provider problem: said on the form
        session.rollback()
        context = _checkout_context(session, str(offer_id), settings, caller, exc.detail)
        context["provider"] = market.providers.default.name
        return render(request, "market/checkout.html", context, caller, status_code=exc.status_code)
    return _redirect(f"/market/orders/{placed.order.id}")


def _order_view(order: Order, license_id: str | None, caller: Principal, public_url: str) -> dict[str, Any]:
    read = issued_order_read(order, license_id, caller.id, public_url).model_dump()
    return {
        **read, "amount_text": terms.format_money(order.amount, order.currency),
        "status_text": ORDER_STATUS_TEXT.get(order.status, order.status),
        "page_url": f"/market/orders/{order.id}",
        "license_page_url": f"/licenses/{read['license_id']}" if read["license_id"] else None,
    }


def _order_page(
    request: Request, session: Session, order: Order, settings: AppSettings, market: Market, caller: Principal, *,
    card_problem: str | None = None, status_code: int = 200,
) -> HTMLResponse:
    offer = service.get_offer(session, order.offer_id)
    provider = market.providers.get(order.provider)
    is_buyer = caller.id == order.buyer_id
    issued = service.license_of_order(session, order.id)
    context = {
        "order": _order_view(order, issued.id if issued else None, caller, settings.public_url),
        "offer": _offer_view(service.offer_terms(offer).model_dump(mode="json") | {"offer_id": offer.id}),
        "summary": terms.summary(service.offer_terms(offer)),
        "work": _work_facts(session, order.work_id),
        "is_buyer": is_buyer,
        "buyer_confirms": provider.buyer_confirms,
        "card_form": provider.card_form if isinstance(provider, CardEntry) and is_buyer else None,
        # the bank asked the buyer to confirm the charge: Stripe.js needs the payment's client secret for that
        "authenticate": request.query_params.get("authenticate") == "1" and is_buyer,
        "client_secret": order.client_secret if is_buyer else None,
        "unpaid": request.query_params.get("unpaid") == "1",
        "processing": request.query_params.get("processing") == "1" and order.status == service.OPEN_ORDER,
        "card_problem": card_problem,
        # a sale that failed after the money was taken (an exclusive sold meanwhile) was refunded: say so
        "refunded_in_full": bool(order.refund_ref) and order.status == "failed",
        "refund_ref": order.refund_ref,
    }
    return render(request, "market/order.html", context, caller, status_code=status_code)


@router.get("/market/orders/{order_id}", response_class=HTMLResponse)
def order_page(
    request: Request, order_id: uuid.UUID, session: DbSession, settings: AppSettings, market: Market, caller: Member
) -> HTMLResponse:
    """An order and what to do next: pay (offline, or by card), wait for the provider, or open the license."""
    order = service.get_order(session, str(order_id), caller)
    return _order_page(request, session, order, settings, market, caller)


@router.post("/market/orders/{order_id}/card-setup")
def open_card_setup(request: Request, order_id: uuid.UUID, session: DbSession, market: Market,
                    caller: Member) -> Response:
    """Asked by the order page's card form (JavaScript) when the buyer presses Pay: a card setup's client secret
    for Stripe.js, or the refusal as problem+json for the form to show."""
    try:
        secret = service.open_card_payment(session, order_id=str(order_id), buyer=caller, ctx=market)
    except IPXError as exc:
        session.rollback()
        return problem_response(exc, request)
    return JSONResponse({"client_secret": secret}, headers={"Cache-Control": "no-store"})


@router.post("/market/orders/{order_id}/card", response_class=HTMLResponse)
def pay_with_card(
    request: Request, order_id: uuid.UUID, session: DbSession, settings: AppSettings, market: Market, caller: Member,
    setup_intent: Annotated[str, Form(max_length=255)] = "",
) -> Response:
    """The card form's last step: charge the card Stripe.js saved, then show the order — licensed, failed, or
    waiting for the buyer to confirm the charge with their bank."""
    order = service.get_order(session, str(order_id), caller)
    if not setup_intent.strip():  # sent without the card form's script: JavaScript is off or Stripe.js failed
        problem = ("Enter your card in the card form above and press Pay. The form needs JavaScript: Stripe "
                   "runs it in your browser so that your card number never passes through IPX.")
        return _order_page(request, session, order, settings, market, caller, card_problem=problem, status_code=422)
    try:
        paid = service.pay_order_with_card(
            session, order_id=order.id, buyer=caller, setup_ref=setup_intent.strip(), ctx=market
        )
    except NotFound:
        raise
    except IPXError as exc:  # declined, a setup not made for this order, Stripe unreachable: said beside the form
        session.rollback()
        order = service.get_order(session, str(order_id), caller)
        return _order_page(request, session, order, settings, market, caller, card_problem=exc.detail,
                           status_code=exc.status_code)
    return _redirect(_after_card_payment(paid))


@router.post("/market/orders/{order_id}/settle")
def settle_order(order_id: uuid.UUID, session: DbSession, market: Market, caller: Member) -> RedirectResponse:
    """After the buyer confirmed (or refused) the charge with their bank: apply what Stripe says of the payment
    now, rather than wait for its webhook, and show the order."""
    settled = service.settle_order(session, order_id=str(order_id), buyer=caller, ctx=market)
    return _redirect(_after_card_payment(settled, unpaid_if_pending=True))


def _after_card_payment(payment: service.CardPayment, *, unpaid_if_pending: bool = False) -> str:
    """Where the buyer goes next: the order page, saying what the payment still waits for, if anything."""
    page = f"/market/orders/{payment.order.id}"
    if payment.order.status != service.OPEN_ORDER:
        return page
    if payment.status == "requires_action":
        return f"{page}?authenticate=1"
    if payment.status == "processing":
        return f"{page}?processing=1"
    return f"{page}?unpaid=1" if unpaid_if_pending else page


@router.post("/market/orders/{order_id}/pay")
def pay_offline(order_id: uuid.UUID, session: DbSession, market: Market, caller: Member) -> RedirectResponse:
    """Offline provider: the buyer declares the payment made; the license is issued, or the order fails if the
    offer sold meanwhile (that failure is committed and shown on the order page)."""
    service.confirm_offline_order(session, order_id=str(order_id), buyer=caller, ctx=market)
    return _redirect(f"/market/orders/{order_id}")


@router.post("/market/orders/{order_id}/cancel")
def cancel_order(order_id: uuid.UUID, session: DbSession, market: Market, caller: Member) -> RedirectResponse:
    """The buyer abandons a pending order."""
    service.cancel_order(session, order_id=str(order_id), buyer=caller, ctx=market)
    return _redirect(f"/market/orders/{order_id}")


@router.post("/market/orders/{order_id}/refund")
def refund_order(
    order_id: uuid.UUID, session: DbSession, market: Market, caller: Member,
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> RedirectResponse:
    """The seller (or staff) refunds a fulfilled order; the license is revoked in the public log."""
    service.refund_order(
        session, order_id=str(order_id), actor=caller, reason=reason.strip() or "refunded by the seller", ctx=market
    )
    return _redirect(f"/me/sales?refunded={order_id}")


# --- account pages ----------------------------------------------------------------------------------------------


def _orders_view(
    session: Session, orders: list[Order], caller: Principal, public_url: str, *, downloads: bool = False
) -> list[dict[str, Any]]:
    """Orders as the account tables show them, with their licenses (and, for the buyer, whether each license's file
    can be downloaded now) and any part of the price refunded, in a fixed number of queries however many rows there
    are."""
    titles = views.work_titles(session, [o.work_id for o in orders])
    licenses = service.licenses_of_orders(session, [o.id for o in orders])
    delivered = service.license_deliveries(session, list(licenses.values()), today=utcnow().date()) if downloads else {}
    refunded = views.refunded_in_part(session, orders)
    rows = []
    for order in orders:
        issued = licenses.get(order.id)
        row = {**_order_view(order, issued.id if issued else None, caller, public_url),
               "title": titles.get(order.work_id, ""), "work_url": f"/works/{order.work_id}",
               "refunded_in_part": refunded.get(order.id)}
        if issued is not None and issued.id in delivered:
            row["download"] = _download_view(issued.id, delivered[issued.id])
        rows.append(row)
    return rows


@router.get("/me/purchases", response_class=HTMLResponse)
def purchases_page(
    request: Request, session: DbSession, settings: AppSettings, caller: Member, page: PageOfResults
) -> HTMLResponse:
    """Your orders as a buyer, newest first, a page at a time, with their licenses and files (logged in)."""
    orders, total = service.purchases_of(session, caller.id, page=page, page_size=service.PAGE_SIZE)
    context = {
        "orders": _orders_view(session, orders, caller, settings.public_url, downloads=True), "total": total,
        "page": page, "has_next": page * service.PAGE_SIZE < total,
    }
    return render(request, "market/purchases.html", context, caller)


@router.get("/me/sales", response_class=HTMLResponse)
def sales_page(
    request: Request, session: DbSession, settings: AppSettings, caller: Member, page: PageOfResults,
    refunded: str = "",
) -> HTMLResponse:
    """Your orders as a seller, newest first, a page at a time, with each co-created sale's split; tiles with your
    balance per currency from the ledger and counts of all your sales and listings; refunds (logged in)."""
    orders, total = service.sales_of(session, caller.id, page=page, page_size=service.PAGE_SIZE)
    listings, listings_total = service.search_listings(session, seller_id=caller.id, page=1,
                                                       page_size=SALES_LISTINGS_NAMED)
    splits = views.sale_splits(session, caller.id, [o.id for o in orders])
    refunded_order = session.get(Order, refunded) if refunded else None
    context = {
        "orders": [{**order, "split": splits.get(order["order_id"], [])}
                   for order in _orders_view(session, orders, caller, settings.public_url)],
        "total": total, "page": page, "has_next": page * service.PAGE_SIZE < total,
        "licensed_sales": service.licensed_sales_count(session, caller.id),
        "balances": views.creator_balances(session, caller.id),
        "refunded": refunded_order is not None and refunded_order.seller_id == caller.id,
        "listings": views.listing_cards(session, listings), "listings_total": listings_total,
    }
    return render(request, "market/sales.html", context, caller)


# --- licenses: public verification --------------------------------------------------------------------------------


def _license_context(session: Session, license_id: uuid.UUID, public_url: str) -> dict[str, Any]:
    row: License = service.get_license(session, str(license_id))
    read = license_read(session, row, public_url).model_dump()
    base = f"/licenses/{row.id}"
    return {
        "license": read, "work": _work_facts(session, row.work_id),
        "price_text": terms.format_money(read["price"]["amount"], read["price"]["currency"]),
        "template_label": terms.TEMPLATES[read["terms"]["template"]].label,
        "issued_at": views.utc_text(row.issued_at),
        "revoked_at": views.utc_text(row.revoked_at) if row.revoked_at else None,
        "page_url": base, "public_url": f"{public_url}{base}", "bundle_url": f"{base}/evidence.json",
        "certificate_url": f"{base}/certificate",
        "revocation_bundle_url": f"/api/v1/licenses/{row.id}/revocation/evidence" if row.revoked_at else None,
        "api_url": f"/api/v1/licenses/{row.id}",
    }


@router.get("/licenses/{license_id}", response_class=HTMLResponse)
def license_page(
    request: Request, license_id: uuid.UUID, session: DbSession, settings: AppSettings, caller: Visitor
) -> HTMLResponse:
    """Is this use licensed? Status (active or revoked, with the revocation's log entry), parties, terms (anyone);
    its holder also finds the work's file here."""
    context = _license_context(session, license_id, settings.public_url)
    if caller is not None and caller.id == context["license"]["licensee"]["account_id"]:  # its holder
        row = service.get_license(session, str(license_id))
        delivered = service.license_deliveries(session, [row], today=utcnow().date())[row.id]
        context["download"] = _download_view(row.id, delivered)
    return render(request, "market/license.html", context, caller)


def _download_view(license_id: str, delivered: registry_service.StoredFile | Gone | LegallyWithheld) -> dict[str, Any]:
    """The file the license delivers, or why it cannot be downloaded now: in full for the license page, in two words
    for a table row, so that no page offers a link that would only answer 451 or 410."""
    if isinstance(delivered, (Gone, LegallyWithheld)):
        return {"refusal": delivered.detail, "label": "File on hold" if isinstance(delivered, LegallyWithheld)
                else "License ended"}
    return {"url": f"/licenses/{license_id}/file", "file": delivered}


@router.get("/licenses/{license_id}/file")
def download_licensed_file(
    request: Request, license_id: uuid.UUID, session: DbSession, caller: Member, registry: Registry
) -> Response:
    """The licensed work's file, for the license's holder while it stands (as GET /api/v1/licenses/{id}/file); a
    withheld or revoked file's page leads back to the license and the purchases, not to the home page."""
    try:
        licensed = service.licensed_file(session, str(license_id), caller, today=utcnow().date())
    except (Gone, LegallyWithheld) as refusal:
        back = [("Back to the license", f"/licenses/{license_id}"), ("My purchases", "/me/purchases")]
        return error_page(request, refusal.status_code, refusal.title, refusal.detail, refusal.headers, back)
    return file_download(registry.blobs, licensed)


@router.get("/licenses/{license_id}/evidence.json")
def download_license_evidence(license_id: uuid.UUID, session: DbSession, registry: Registry) -> JSONResponse:
    """The license's offline evidence bundle as a file to keep; `ipx verify` checks it (anyone)."""
    bundle = service.license_evidence(session, service.get_license(session, str(license_id)), registry.witness_names)
    disposition = f'attachment; filename="ipx-license-{license_id}.json"'
    return JSONResponse(bundle, headers={"Content-Disposition": disposition})


@router.get("/licenses/{license_id}/certificate", response_class=HTMLResponse)
def license_certificate_page(
    request: Request, license_id: uuid.UUID, session: DbSession, settings: AppSettings, caller: Visitor
) -> HTMLResponse:
    """A one-page printable license certificate with a QR code of its public verification page (anyone)."""
    context = _license_context(session, license_id, settings.public_url)
    context["qr_svg"] = certificates.qr_svg(context["public_url"])
    return render(request, "market/license_certificate.html", context, caller)

"""Read-only helpers for the marketplace pages: money typed by people, cards, balances, offer forms.

Pages show prices as text and take them in major units ("25.50"), while the service and the
database keep integer minor units; this module is where the two meet, so the conversion is exact
(Decimal, never float) and written once. Nothing here writes to the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ipx.errors import IPXError
from ipx.marketplace import ledger, terms
from ipx.marketplace.models import LedgerEntry, LedgerTransaction, Offer, Order
from ipx.marketplace.service import ListingRow
from ipx.registry.models import Work
from ipx.web import certificates

DEFAULT_EXPONENT = 2
LARGEST_AMOUNT_DIGITS = 15  # a typed amount's decimal exponent: past it, no price in any currency can be meant
GROUPED_THOUSANDS = re.compile(r"[-+]?[1-9]\d{0,2}(,\d{3})+(\.\d*)?")  # 1,250 or 12,345.50, never 0,500
DECIMAL_COMMA = re.compile(r"[-+]?\d+,\d{1,2}")  # 9,99 or 9,9


class MoneyInputError(ValueError):
    """A price a person typed that is not an exact amount of the currency."""


class AmountTooLarge(MoneyInputError):
    """More than any price can be; refused before it is converted (1e400000 took seconds, 1e999999 overflowed)."""


def exponent_of(currency: str | None) -> int:
    return terms.CURRENCY_EXPONENTS.get((currency or "").upper(), DEFAULT_EXPONENT)


def _without_commas(text: str) -> str:
    """A typed amount with its commas read as people mean them, or MoneyInputError when that is unclear.

    A comma between groups of three digits separates thousands; a lone comma before one or two digits is a decimal
    comma ("9,99" is not 999). Any other comma could be either, and guessing wrong multiplies a price by 100.
    """
    if "," not in text or GROUPED_THOUSANDS.fullmatch(text):
        return text.replace(",", "")
    if DECIMAL_COMMA.fullmatch(text):
        return text.replace(",", ".")
    raise MoneyInputError(f"“{text}” is unclear: write decimals after a point, like 1250.50, and commas only "
                          "between groups of three digits, like 1,250.50")


def parse_major_units(text: str, currency: str | None) -> int:
    """"25", "25.5", "9,99" or "1,250.50" in `currency` -> minor units; refuses fractions the currency lacks."""
    exponent = exponent_of(currency)
    cleaned = _without_commas(text.strip().replace(" ", ""))
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:
        raise MoneyInputError(f"enter an amount like 25 or 25.50, not “{text.strip()}”") from exc
    if not value.is_finite() or value < 0:
        raise MoneyInputError("enter an amount of zero or more")
    minor = value.scaleb(exponent) if value.adjusted() <= LARGEST_AMOUNT_DIGITS else None
    if minor is None or minor > terms.MAX_PRICE_MINOR:
        raise AmountTooLarge(f"enter at most {terms.format_money(terms.MAX_PRICE_MINOR, currency.upper())}"
                             if currency else "enter a smaller amount")
    if minor != minor.to_integral_value():
        places = f"{exponent} decimal place{'s' if exponent != 1 else ''}" if exponent else "no decimals"
        raise MoneyInputError(f"{(currency or '').upper() or 'this currency'} amounts have {places}")
    return int(minor)


def major_units_text(amount: int, currency: str) -> str:
    """Minor units back to what a person types in the form, e.g. (2500, "EUR") -> "25.00"."""
    return terms.format_money(amount, currency).split(" ", 1)[1].replace(",", "")


def from_prices(offers: Iterable[Offer]) -> list[str]:
    """The cheapest open offer in each currency, as text ("EUR 25.00"), cheapest currency code first."""
    cheapest: dict[str, int] = {}
    for offer in offers:
        cheapest[offer.currency] = min(offer.price_amount, cheapest.get(offer.currency, offer.price_amount))
    return [terms.format_money(amount, currency) for currency, amount in sorted(cheapest.items())]


def previewable_works(session: Session, work_ids: Sequence[str]) -> set[str]:
    """Which of these works have an image thumbnail (one query for a whole results page)."""
    if not work_ids:
        return set()
    rows = session.execute(select(Work.id, Work.media_type).where(Work.id.in_(list(work_ids))))
    return {work_id for work_id, media_type in rows if certificates.has_preview(media_type)}


def listing_cards(session: Session, rows: Sequence[ListingRow]) -> list[dict[str, Any]]:
    """Search hits as the market grid shows them."""
    with_preview = previewable_works(session, [row.listing.work_id for row in rows])
    return [
        {
            "url": f"/market/listings/{row.listing.id}",
            "title": row.title,
            "work_type": row.work_type,
            "creator": row.creator_name,
            "tags": row.listing.tags,
            "thumbnail_url": f"/works/{row.listing.work_id}/thumbnail" if row.listing.work_id in with_preview else None,
            "from_prices": from_prices(row.matching),
            "offer_count": len(row.offers),
            "templates": sorted({terms.TEMPLATES[o.template].label for o in row.offers}),
        }
        for row in rows
    ]


def utc_text(moment: datetime) -> str:
    """A timestamp as pages show it: UTC to the second (the signed statement keeps the exact instant)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def work_titles(session: Session, work_ids: Iterable[str]) -> dict[str, str]:
    ids = list(set(work_ids))
    if not ids:
        return {}
    return dict(session.execute(select(Work.id, Work.title).where(Work.id.in_(ids))).all())


def creator_balances(session: Session, account_id: str) -> list[str]:
    """What a seller has earned, per currency, from the ledger (sales minus refunds), as text."""
    rows = session.execute(
        select(LedgerEntry.currency, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.account == ledger.creator_account(account_id))
        .group_by(LedgerEntry.currency)
        .order_by(LedgerEntry.currency)
    )
    return [terms.format_money(int(total), currency) for currency, total in rows]


def refunded_in_part(session: Session, orders: Sequence[Order]) -> dict[str, str]:
    """What went back of each still-fulfilled order (refunds of part of the price made at the provider), as text,
    by order id, from the ledger's refund journals: one query for a page of orders."""
    fulfilled = [o.id for o in orders if o.status == "fulfilled"]
    if not fulfilled:
        return {}
    rows = session.execute(
        select(LedgerTransaction.order_id, LedgerEntry.currency, func.sum(LedgerEntry.amount))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerTransaction.kind == "refund", LedgerTransaction.order_id.in_(fulfilled),
               LedgerEntry.account.startswith("provider:"))
        .group_by(LedgerTransaction.order_id, LedgerEntry.currency)
    )
    return {order_id: terms.format_money(int(total), currency) for order_id, currency, total in rows if total}


def sale_splits(session: Session, account_id: str, order_ids: Sequence[str]) -> dict[str, list[dict[str, str]]]:
    """Each of these co-created sales' creator part per co-creator, by order id, as its ledger journal recorded it:
    the name, and the share with its amount ("70% · EUR 63.00"), which a page keeps on one line. One query for a page
    of orders, reading only that page's journals.

    Only the owner, who has an account, is paid; the journal names every co-creator's part so the owner knows what
    they owe the others. Sales of a work by one creator have nothing to split and are left out.
    """
    rows = session.execute(
        select(LedgerTransaction.order_id, LedgerEntry.beneficiary, LedgerEntry.share_bps, LedgerEntry.amount,
               LedgerEntry.currency)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerTransaction.kind == "sale", LedgerEntry.account == ledger.creator_account(account_id),
               LedgerTransaction.order_id.in_(list(order_ids)))
        .order_by(LedgerEntry.id)
    )
    parts: dict[str, list[tuple[str | None, int | None, int, str]]] = {}
    for order_id, name, share_bps, amount, currency in rows:
        parts.setdefault(order_id, []).append((name, share_bps, amount, currency))
    return {
        order_id: [{"name": name or "", "share": f"{Decimal(share_bps or 0) / 100:g}% · "
                                                 f"{terms.format_money(amount, currency)}"}
                   for name, share_bps, amount, currency in entries]
        for order_id, entries in parts.items()
        if [share_bps for _, share_bps, _, _ in entries] != [ledger.BPS]
    }


# --- the offer form ---------------------------------------------------------------------------------------------

OFFER_FLAGS = ("exclusive", "derivatives", "attribution", "commercial")
DEFAULT_OFFER_VALUES: dict[str, Any] = {
    "template": "standard", "exclusive": False, "territory": terms.WORLDWIDE, "duration": "perpetual", "until": "",
    "uses": ["web"], "ai_training": "deny", "derivatives": False, "attribution": True, "commercial": True,
    "seats": "1", "price": "", "currency": "EUR",
}


def offer_values(form: Mapping[str, Any], uses: Sequence[str]) -> dict[str, Any]:
    """The offer form as typed, to show again with the errors (checkboxes as booleans)."""
    values: dict[str, Any] = {name: str(form.get(name) or "").strip() for name in DEFAULT_OFFER_VALUES}
    values.update({flag: form.get(flag) is not None for flag in OFFER_FLAGS}, uses=list(uses))
    values["currency"] = values["currency"].upper()
    return values


def offer_data(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The form's values as the `LicenseTerms` JSON shape, plus errors only the form can make (the price text)."""
    errors: dict[str, list[str]] = {}
    amount: Any = None
    try:
        amount = parse_major_units(values["price"], values["currency"]) if values["price"] else None
    except MoneyInputError as exc:
        errors["price"] = [str(exc)[:1].upper() + str(exc)[1:]]
    if amount is None and "price" not in errors:
        errors["price"] = ["Enter the price buyers pay for this license."]
    seats: Any = values["seats"] or "1"
    with suppress(ValueError):  # "²", "3.5" or 5,000 digits stay text, which the terms refuse by name
        seats = int(seats)
    duration = {"perpetual": True} if values["duration"] != "until" else {"until": values["until"] or None}
    data = {
        "template": values["template"], "territory": [t for t in values["territory"].replace(";", ",").split(",")
                                                      if t.strip()] or [terms.WORLDWIDE],
        "duration": duration, "uses": list(values["uses"]), "ai_training": values["ai_training"] or "deny",
        "seats": seats, "price": {"amount": 1 if amount is None else amount, "currency": values["currency"]},
        **{flag: bool(values[flag]) for flag in OFFER_FLAGS},
    }
    return data, errors


# form fields that show their own errors; any other problem with an offer is shown for the offer as a whole
OFFER_FORM_FIELDS = frozenset({"price", "duration", "territory", "uses", "seats", "template", "ai_training"})


def offer_field_errors(error: IPXError) -> dict[str, list[str]]:
    """An offer's service errors (loc body.offers.N.field...) by form field; whole-offer problems under "terms"."""
    by_field: dict[str, list[str]] = {}
    for item in error.extra.get("errors", []):
        loc = [str(part) for part in item["loc"]]
        rest = loc[3:] if loc[:2] == ["body", "offers"] else loc[1:]
        field = "terms"
        if rest[:2] == ["price", "currency"]:
            field = "currency"
        elif rest:
            field = rest[0] if rest[0] in OFFER_FORM_FIELDS else "terms"
        message = str(item["msg"]).removeprefix("Value error, ")
        by_field.setdefault(field, []).append(message[:1].upper() + message[1:])
    return by_field

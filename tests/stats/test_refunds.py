"""Refunds and net sales in the quarterly statistics: money counts in the quarter it went back to the buyer."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from ipx.audit.models import AuditEvent
from ipx.db import transaction
from ipx.marketplace.models import Order
from ipx.marketplace.service import PARTIAL_REFUND
from ipx.stats.quarters import Quarter
from tests.conftest import ApiUser
from tests.marketplace import conftest as marketplace_fixtures
from tests.marketplace import test_stripe
from tests.marketplace.builders import offer
from tests.marketplace.conftest import noise_png
from tests.marketplace.test_stripe import WEBHOOK, charge_refunded_event, place, signed

# Card payments through localstripe: a partial refund exists only as Stripe's charge.refunded event.
localstripe_url = marketplace_fixtures.localstripe_url
settings = test_stripe.settings

SOLD_IN, LATER = Quarter(2025, 3), Quarter(2025, 4)
SALE_DAY = SOLD_IN.start + timedelta(days=10)
PRICES = {"EUR": 2500, "USD": 1000, "GBP": 3000}


@dataclass
class Shop:
    """One seller's work on sale in three currencies; sales and refunds are moved to the day a test names, since
    the services stamp the wall clock."""

    client: TestClient
    seller: ApiUser
    make_user: Callable[..., ApiUser]
    offer_ids: dict[str, str]

    def sell(self, currency: str) -> dict[str, Any]:
        order = place(self.client, self.make_user(), self.offer_ids[currency], payment_method="pm_card_visa")
        assert order["status"] == "fulfilled", order
        self._move(update(Order).where(Order.id == order["order_id"]).values(fulfilled_at=SALE_DAY))
        return order

    def refund(self, order: dict[str, Any], *, on: datetime) -> None:
        """A full refund by the seller: the order closes as refunded."""
        response = self.client.post(f"/api/v1/orders/{order['order_id']}/refund", headers=self.seller.headers)
        assert response.status_code == 200, response.text
        self._move(update(Order).where(Order.id == order["order_id"]).values(closed_at=on))

    def refunded_at_stripe(self, order: dict[str, Any], *, total_refunded: int, on: datetime) -> None:
        """A refund made in Stripe's dashboard, reported as the total refunded so far; the whole price closes the
        order, less leaves the sale standing with an audit event."""
        event = charge_refunded_event(order["payment"]["reference"], amount=order["amount"],
                                      amount_refunded=total_refunded, currency=order["currency"].lower())
        outcome = self.client.post(WEBHOOK, content=event, headers=signed(event)).json()["outcome"]
        if total_refunded == order["amount"]:
            assert outcome == "order refunded"
            self._move(update(Order).where(Order.id == order["order_id"]).values(closed_at=on))
            return
        assert outcome.startswith("partial refund recorded"), outcome
        self._move(update(AuditEvent).where(
            AuditEvent.subject_id == order["order_id"], AuditEvent.action == f"order.{PARTIAL_REFUND}",
            AuditEvent.occurred_at >= LATER.end,  # the event just recorded: earlier ones were moved already
        ).values(occurred_at=on))

    def _move(self, statement: Any) -> None:
        with transaction(self.client.app.state.session_factory) as session:  # type: ignore[attr-defined]
            assert session.execute(statement).rowcount == 1

    def stats(self, quarter: Quarter) -> dict[str, Any]:
        response = self.client.get("/api/v1/stats/quarterly", params={"quarter": str(quarter)})
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def shop(client: TestClient, make_user: Callable[..., ApiUser]) -> Shop:
    seller = make_user("Seller")
    work = seller.register(noise_png(701), title="Refunded harbour").json()
    listing = client.post("/api/v1/listings", headers=seller.headers, json={
        "work_id": work["work_id"],
        "offers": [offer(price={"amount": amount, "currency": currency}, uses=[use])
                   for (currency, amount), use in zip(PRICES.items(), ("web", "print", "broadcast"), strict=True)],
    })
    assert listing.status_code == 201, listing.text
    offer_ids = {o["price"]["currency"]: o["offer_id"] for o in listing.json()["offers"]}
    return Shop(client, seller, make_user, offer_ids)


def money_row(currency: str, gross: str, refunds: str, net: str) -> str:
    return (f'<th scope="row">{currency}</th><td class="num">{gross}</td><td class="num">{refunds}</td>'
            f'<td class="num">{net}</td>')


def test_full_refund_is_counted_and_netted_out(shop: Shop) -> None:
    refunded = shop.sell("EUR")
    shop.sell("EUR")
    shop.sell("USD")
    shop.refund(refunded, on=SALE_DAY + timedelta(days=5))

    stats = shop.stats(SOLD_IN)
    assert stats["sales"]["count"] == 3 and stats["sales"]["by_currency"] == {"EUR": 5000, "USD": 1000}
    assert stats["refunds"] == {"count": 1, "partial": 0, "by_currency": {"EUR": 2500}}
    assert stats["net_sales"] == {"by_currency": {"EUR": 2500, "USD": 1000}}
    headline = {m["metric"]: (m["current"], m["previous"]) for m in stats["comparison"]["metrics"]}
    assert headline["refunds"] == (1, 0) and headline["partial refunds"] == (0, 0)

    exported = shop.client.get("/api/v1/stats/quarterly", params={"quarter": str(SOLD_IN), "format": "csv"}).text
    values = {(section, key): value for _, section, key, value in list(csv.reader(io.StringIO(exported)))[1:]}
    assert values[("refunds", "count")] == "1" and values[("refunds", "partial")] == "0"
    assert values[("refunds", "by_currency.EUR")] == "2500"
    assert values[("net_sales", "by_currency.EUR")] == "2500" and values[("net_sales", "by_currency.USD")] == "1000"

    page = shop.client.get("/stats", params={"quarter": str(SOLD_IN)}).text
    assert money_row("EUR", "50.00", "25.00", "25.00") in page
    assert money_row("USD", "10.00", "0.00", "10.00") in page
    assert "1 sale refunded in full, 0 in part" in page
    tone = dict(re.findall(r'class="st-label">([^<]+)</div>\s*<div class="st-delta ([^"]*)"', page))
    assert (tone["Sales"], tone["Refunds"], tone["Partial refunds"]) == ("st-good", "st-bad", "")


def test_partial_refunds_count_once_per_sale_with_the_money_returned(shop: Shop) -> None:
    order = shop.sell("GBP")
    shop.refunded_at_stripe(order, total_refunded=100, on=SALE_DAY + timedelta(days=1))
    shop.refunded_at_stripe(order, total_refunded=400, on=SALE_DAY + timedelta(days=2))  # Stripe sends the total

    stats = shop.stats(SOLD_IN)
    assert stats["sales"]["count"] == 1 and stats["sales"]["by_currency"] == {"GBP": 3000}
    assert stats["refunds"] == {"count": 0, "partial": 1, "by_currency": {"GBP": 400}}
    assert stats["net_sales"] == {"by_currency": {"GBP": 2600}}
    assert money_row("GBP", "30.00", "4.00", "26.00") in shop.client.get("/stats", params={
        "quarter": str(SOLD_IN)}).text


def test_refund_in_a_later_quarter_counts_there_and_leaves_the_sale_quarter_alone(shop: Shop) -> None:
    order = shop.sell("EUR")
    shop.refund(order, on=LATER.start + timedelta(days=3))

    sold = shop.stats(SOLD_IN)
    assert sold["sales"]["by_currency"] == {"EUR": 2500}
    assert sold["refunds"] == {"count": 0, "partial": 0, "by_currency": {}}
    assert sold["net_sales"] == {"by_currency": {"EUR": 2500}}

    later = shop.stats(LATER)
    assert later["sales"]["count"] == 0
    assert later["refunds"] == {"count": 1, "partial": 0, "by_currency": {"EUR": 2500}}
    assert later["net_sales"] == {"by_currency": {"EUR": -2500}}
    assert later["previous"]["net_sales"] == {"by_currency": {"EUR": 2500}}
    headline = {m["metric"]: (m["current"], m["previous"]) for m in later["comparison"]["metrics"]}
    assert headline["sales"] == (0, 1) and headline["refunds"] == (1, 0)
    page = shop.client.get("/stats", params={"quarter": str(LATER)}).text
    assert money_row("EUR", "0.00", "25.00", "-25.00") in page


def test_partial_then_full_refund_across_quarters_adds_up_to_the_price(shop: Shop) -> None:
    order = shop.sell("GBP")
    shop.refunded_at_stripe(order, total_refunded=1000, on=SALE_DAY + timedelta(days=1))
    shop.refunded_at_stripe(order, total_refunded=3000, on=LATER.start + timedelta(days=1))

    assert shop.stats(SOLD_IN)["refunds"] == {"count": 0, "partial": 1, "by_currency": {"GBP": 1000}}
    later = shop.stats(LATER)
    assert later["refunds"] == {"count": 1, "partial": 0, "by_currency": {"GBP": 2000}}
    assert later["net_sales"] == {"by_currency": {"GBP": -2000}}


def test_refunds_in_several_currencies_are_kept_apart(shop: Shop) -> None:
    eur, usd = shop.sell("EUR"), shop.sell("USD")
    shop.sell("GBP")
    shop.refund(usd, on=SALE_DAY + timedelta(days=1))
    shop.refunded_at_stripe(eur, total_refunded=600, on=SALE_DAY + timedelta(days=2))

    stats = shop.stats(SOLD_IN)
    assert stats["refunds"] == {"count": 1, "partial": 1, "by_currency": {"EUR": 600, "USD": 1000}}
    assert stats["net_sales"] == {"by_currency": {"EUR": 1900, "GBP": 3000, "USD": 0}}
    page = shop.client.get("/stats", params={"quarter": str(SOLD_IN)}).text
    rows = [money_row("EUR", "25.00", "6.00", "19.00"), money_row("GBP", "30.00", "0.00", "30.00"),
            money_row("USD", "10.00", "10.00", "0.00")]
    assert all(row in page for row in rows)
    assert page.index(rows[0]) < page.index(rows[1]) < page.index(rows[2])

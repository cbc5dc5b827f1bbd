"""Paying by card on the order page, in real headless Chromium with JavaScript on, against a real uvicorn server
set to Stripe and a real localstripe process, whose stand-in for Stripe.js the page loads as it would load
js.stripe.com: the card form, a declined card, a plain payment, and a bank's 3-D Secure challenge.
Screenshots go to test-artifacts/screens/card-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ipx.migrations import upgrade
from tests.browser import PASSWORD, scripted_browser_page, shot
from tests.conftest import ApiUser
from tests.integration.live import ServerProcess, ipx_server
from tests.marketplace.builders import offer
from tests.marketplace.conftest import noise_png

pytestmark = pytest.mark.browser
__all__ = ["scripted_browser_page"]  # the shared fixture

BUYER_EMAIL = "grace@example.org"


@pytest.fixture
def stripe_server(tmp_path: Path, localstripe_url: str) -> Iterator[ServerProcess]:
    database_url = f"sqlite:///{tmp_path / 'ipx.db'}"
    upgrade(database_url)
    server = ipx_server(
        database_url, tmp_path / "data", workers=1, payment_provider="stripe", stripe_api_key="sk_test_browser",
        stripe_api_base=localstripe_url, stripe_webhook_secret="whsec_browser",
        stripe_publishable_key="pk_test_browser", stripe_js_url=f"{localstripe_url}/js.stripe.com/v3/",
    )
    server.start()
    yield server
    server.stop()


def listed_offers(base: str, count: int) -> list[str]:
    """A seller lists `count` works over the API and the buyer's account exists; returns the offer ids."""
    with httpx.Client(base_url=base, timeout=60) as http:
        seller = ApiUser(http, "ada@example.org", "Ada Lovelace")  # type: ignore[arg-type]
        ApiUser(http, BUYER_EMAIL, "Grace Hopper", PASSWORD)  # type: ignore[arg-type]
        offer_ids = []
        for number in range(count):
            picture = {"file": ("w.png", noise_png(300 + number))}
            work = http.post("/api/v1/works", headers=seller.headers, files=picture,
                             data={"title": f"Harbour at dawn {number + 1}"})
            assert work.status_code == 201, work.text
            listing = http.post("/api/v1/listings", headers=seller.headers,
                                json={"work_id": work.json()["work_id"], "offers": [offer()]})
            assert listing.status_code == 201, listing.text
            offer_ids.append(listing.json()["offers"][0]["offer_id"])
        return offer_ids


def test_a_buyer_pays_by_card_on_the_order_page(
    stripe_server: ServerProcess, scripted_browser_page: object, localstripe_url: str
) -> None:
    from playwright.sync_api import Page, expect

    page: Page = scripted_browser_page  # type: ignore[assignment]
    base = stripe_server.url
    plain_offer, challenged_offer, blocked_offer = listed_offers(base, 3)
    page.goto(base + "/login")
    page.get_by_label("Email").fill(BUYER_EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    def order(offer_id: str) -> None:
        page.goto(f"{base}/market/checkout/{offer_id}")
        page.get_by_role("button", name="Place order").click()
        expect(page.locator(".mk-status").first).to_have_text("Waiting for payment")

    def enter_card(number: str) -> None:  # localstripe's card form: one text box per field
        form = page.locator("#ipx-card-element")
        form.get_by_placeholder("number").fill(number)
        form.get_by_placeholder("exp_month").fill("12")
        form.get_by_placeholder("exp_year").fill("34")
        form.get_by_placeholder("cvc").fill("123")
        form.get_by_placeholder("postal_code").fill("75001")

    order(plain_offer)
    expect(page.locator("#ipx-card-element input")).to_have_count(5)  # Stripe.js mounted its form
    expect(page.get_by_text("Paying by card needs JavaScript")).to_be_hidden()
    shot(page, "card-01-order-form")

    enter_card("4000000000000002")  # refused by the bank when saved
    page.get_by_role("button", name="Pay EUR 25.00").click()
    expect(page.locator("[data-card-status]")).to_have_text("Your card was declined.")
    expect(page.get_by_role("button", name="Pay EUR 25.00")).to_be_enabled()
    shot(page, "card-02-declined")

    enter_card("4242424242424242")
    page.get_by_role("button", name="Pay EUR 25.00").click()
    expect(page.locator(".alert-success")).to_contain_text("Licensed.")
    expect(page.locator(".mk-status").first).to_have_text("Licensed")
    shot(page, "card-03-licensed")

    # a card whose bank asks for 3-D Secure: once when the card is saved, once for the charge
    order(challenged_offer)
    enter_card("4000002500003155")
    page.get_by_role("button", name="Pay EUR 25.00").click()
    page.get_by_role("button", name="Complete authentication").click()
    expect(page).to_have_url(f"{page.url.split('?')[0]}?authenticate=1")
    expect(page.get_by_text("Your bank asks you to confirm this payment.")).to_be_visible()
    shot(page, "card-04-bank-challenge")
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.locator(".alert-success")).to_contain_text("Licensed.")
    shot(page, "card-05-licensed-after-challenge")

    page.get_by_role("link", name="Purchases", exact=True).click()
    expect(page.locator(".mk-status")).to_have_text(["Licensed", "Licensed"])

    # a content blocker stops Stripe.js: the form says so instead of sending an empty payment
    page.route(f"{localstripe_url}/js.stripe.com/v3/", lambda route: route.abort())
    order(blocked_offer)
    expect(page.locator("[data-card-status]")).to_contain_text("Stripe's card form could not be loaded")
    page.get_by_role("button", name="Pay EUR 25.00").click()
    expect(page.locator(".mk-status").first).to_have_text("Waiting for payment")
    expect(page).not_to_have_url(re.compile(r".*/card$"))
    shot(page, "card-06-stripe-blocked")

"""Card payments on the website's order page, against a real localstripe process.

The browser's side is sent here over HTTP exactly as Stripe.js (localstripe's stand-in, localstripe-v3.js) sends
it: the card goes to Stripe with the publishable key, never to IPX. tests/marketplace/test_browser_card.py runs
the same flow through the page's script in Chromium.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import func, select

from ipx.db import transaction
from ipx.marketplace.models import Order, PaymentCustomer
from tests.conftest import ApiUser
from tests.marketplace.builders import exclusive_offer, offer
from tests.marketplace.test_pages import checkout_key

API_KEY = "sk_test_ipx_cards"
PUBLISHABLE_KEY = "pk_test_ipx_cards"
WEBHOOK_SECRET = "whsec_cards"
VISA = "4242424242424242"
DECLINED_AT_CHARGE = "4000000000000341"  # saves fine, every charge is declined
DECLINED_AT_SETUP = "4000000000000002"
ASKS_FOR_3DS = "4000002500003155"


@pytest.fixture
def settings(make_settings, localstripe_url):
    return make_settings(
        payment_provider="stripe", stripe_api_key=API_KEY, stripe_api_base=localstripe_url,
        stripe_webhook_secret=WEBHOOK_SECRET, stripe_publishable_key=PUBLISHABLE_KEY,
        stripe_js_url=f"{localstripe_url}/js.stripe.com/v3/",
    )


@pytest.fixture
def stripe_api(localstripe_url) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": localstripe_url}, max_network_retries=0)


def order_page(client, buyer: ApiUser, offer_id: str) -> str:
    """Checkout and place the order through the pages; returns the order page's path."""
    page = client.get(f"/market/checkout/{offer_id}", headers=buyer.headers)
    placed = client.post(f"/market/checkout/{offer_id}", headers=buyer.headers,
                         data={"idempotency_key": checkout_key(page.text)}, follow_redirects=False)
    assert placed.status_code == 303, placed.text
    return str(placed.headers["location"])


def card_setup(client, buyer: ApiUser, order_path: str) -> str:
    """The card form's first request: a SetupIntent's client secret."""
    response = client.post(f"{order_path}/card-setup", headers=buyer.headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return str(response.json()["client_secret"])


def stripe_js_saves(localstripe_url: str, client_secret: str, number: str = VISA) -> dict[str, Any]:
    """Stripe.js confirmCardSetup: the card goes to Stripe under the publishable key; returns the SetupIntent."""
    setup_id = client_secret.split("_secret_")[0]
    sent = httpx.post(f"{localstripe_url}/v1/setup_intents/{setup_id}/confirm", json={
        "key": PUBLISHABLE_KEY, "use_stripe_sdk": True, "client_secret": client_secret,
        "payment_method_data": {"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034,
                                                         "cvc": "123"}},
    })
    if sent.status_code == 200 and sent.json()["status"] == "requires_action":  # the bank's challenge, passed
        sent = httpx.post(f"{localstripe_url}/v1/setup_intents/{setup_id}/confirm",
                          json={"key": PUBLISHABLE_KEY, "use_stripe_sdk": True, "client_secret": client_secret})
    return dict(sent.json())


def card_saved(client, buyer: ApiUser, order_path: str, localstripe_url: str, number: str = VISA) -> str:
    """The card form's first two steps, as the buyer presses Pay: the saved card's SetupIntent id."""
    return str(stripe_js_saves(localstripe_url, card_setup(client, buyer, order_path), number)["id"])


def pay(client, buyer: ApiUser, order_path: str, setup_id: str) -> httpx.Response:
    return client.post(f"{order_path}/card", headers=buyer.headers, data={"setup_intent": setup_id},
                       follow_redirects=False)


def order_status(client, buyer: ApiUser, order_path: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/orders/{order_path.rsplit('/', 1)[1]}", headers=buyer.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_order_page_takes_a_card_and_licenses_at_once(client, make_user, list_work, stripe_api, localstripe_url):
    listed = list_work(
        offer(price={"amount": 2550, "currency": "EUR"}), offer(price={"amount": 900, "currency": "EUR"})
    )
    buyer = make_user()
    path = order_page(client, buyer, listed.offer_ids[0])
    page = client.get(path, headers=buyer.headers).text
    assert 'id="ipx-card-form"' in page and f'data-stripe-key="{PUBLISHABLE_KEY}"' in page
    assert f'<script src="{localstripe_url}/js.stripe.com/v3/"></script>' in page
    assert "Paying by card needs JavaScript" in page  # the <noscript> line for browsers without it
    assert "Pay (offline test payment)" not in page

    setup = stripe_js_saves(localstripe_url, card_setup(client, buyer, path))
    assert setup["status"] == "succeeded"
    paid = pay(client, buyer, path, setup["id"])
    assert (paid.status_code, paid.headers["location"]) == (303, path)
    shown = client.get(path, headers=buyer.headers).text
    assert "Licensed." in shown and "ipx-card-form" not in shown
    order = order_status(client, buyer, path)
    assert order["status"] == "fulfilled" and order["license_url"]
    intent = stripe_api.v1.payment_intents.retrieve(order["payment"]["reference"])
    assert (intent.status, intent.amount, intent.currency) == ("succeeded", 2550, "eur")
    assert intent.payment_method == setup["payment_method"] and intent.customer == setup["customer"]

    # the buyer's second purchase uses the same Stripe customer: one per person, not one per order
    second = order_page(client, buyer, listed.offer_ids[1])
    assert pay(client, buyer, second, card_saved(client, buyer, second, localstripe_url)).status_code == 303
    assert order_status(client, buyer, second)["status"] == "fulfilled"
    with transaction(client.app.state.session_factory) as session:
        customers = session.scalars(select(PaymentCustomer).where(PaymentCustomer.account_id == buyer.account_id))
        assert [c.customer_ref for c in customers] == [intent.customer]


def test_a_declined_card_is_said_beside_the_form_and_leaves_the_order_open(
    client, make_user, list_work, stripe_api, localstripe_url, monkeypatch
):
    listed = list_work(exclusive_offer())
    buyer = make_user()
    path = order_page(client, buyer, listed.offer_ids[0])
    intents = client.app.state.marketplace.providers.get("stripe").client.v1.payment_intents
    confirm_keys: list[str] = []
    real_confirm = intents.confirm

    def confirm(intent_id: str, *, options: Any) -> Any:
        confirm_keys.append(options["idempotency_key"])
        return real_confirm(intent_id, options=options)

    monkeypatch.setattr(intents, "confirm", confirm)
    declined = pay(client, buyer, path, card_saved(client, buyer, path, localstripe_url, DECLINED_AT_CHARGE))
    assert declined.status_code == 402
    assert "The card was declined" in declined.text and 'id="ipx-card-form"' in declined.text
    order = order_status(client, buyer, path)
    assert order["status"] == "pending"
    intent = stripe_api.v1.payment_intents.retrieve(order["payment"]["reference"])
    assert intent.status == "requires_payment_method"  # Stripe's state for "try another card"

    # a card refused when saved never reaches IPX: Stripe.js shows Stripe's words in the form
    refused = stripe_js_saves(localstripe_url, card_setup(client, buyer, path), DECLINED_AT_SETUP)
    assert refused["error"]["message"] == "Your card was declined."

    # Another card is another attempt on the same PaymentIntent, under its own idempotency key: under the first
    # card's key Stripe would answer with the first decline. (localstripe cannot confirm a PaymentIntent again
    # once a charge failed, so the retry's outcome is not asserted here; on Stripe it is the documented retry.)
    other_card = card_saved(client, buyer, path, localstripe_url)
    pay(client, buyer, path, other_card)
    assert len(confirm_keys) == 2 and confirm_keys[0] != confirm_keys[1] and confirm_keys[1].endswith(other_card)
    assert order_status(client, buyer, path)["status"] in ("pending", "fulfilled")
    assert assert_one_sale_at_most(client)


def assert_one_sale_at_most(client) -> bool:
    with transaction(client.app.state.session_factory) as session:
        return (session.scalar(select(func.count()).where(Order.status == "fulfilled")) or 0) <= 1


def test_a_card_saved_for_another_order_or_buyer_pays_nothing(client, make_user, list_work, localstripe_url):
    listed = list_work(offer(), offer(price={"amount": 700, "currency": "EUR"}))
    buyer, stranger = make_user(), make_user()
    mine, other_of_mine = order_page(client, buyer, listed.offer_ids[0]), order_page(client, buyer, listed.offer_ids[1])
    theirs = order_page(client, stranger, listed.offer_ids[0])
    my_setup = card_saved(client, buyer, mine, localstripe_url)
    their_setup = card_saved(client, stranger, theirs, localstripe_url)

    for path, setup in ((other_of_mine, my_setup), (mine, their_setup)):
        refused = pay(client, buyer, path, setup)
        assert refused.status_code == 409 and "was not made for this order" in refused.text
        assert order_status(client, buyer, path)["status"] == "pending"
    unknown = pay(client, buyer, mine, "seti_doesnotexist")
    assert unknown.status_code == 409 and "no card setup with that reference" in unknown.text
    # someone else's order cannot be paid, nor a card set up for it
    assert pay(client, stranger, mine, their_setup).status_code == 404
    assert client.post(f"{mine}/card-setup", headers=stranger.headers).status_code == 404


def test_an_exclusive_sold_meanwhile_fails_the_order_before_any_charge(
    client, make_user, list_work, stripe_api, localstripe_url
):
    listed = list_work(exclusive_offer())
    first, second = make_user(), make_user()
    first_path, second_path = (order_page(client, who, listed.offer_ids[0]) for who in (first, second))
    first_setup = card_saved(client, first, first_path, localstripe_url)
    second_setup = card_saved(client, second, second_path, localstripe_url)
    assert pay(client, first, first_path, first_setup).status_code == 303

    late = pay(client, second, second_path, second_setup)
    assert late.status_code == 303
    shown = client.get(second_path, headers=second.headers).text
    assert "This order failed." in shown and "No money was taken." in shown
    order = order_status(client, second, second_path)
    assert order["status"] == "failed"
    intent = stripe_api.v1.payment_intents.retrieve(order["payment"]["reference"])
    assert intent.status == "canceled" and intent.latest_charge is None


def test_a_bank_challenge_is_confirmed_in_the_browser_then_settled(
    client, make_user, list_work, stripe_api, localstripe_url
):
    listed = list_work(offer(), offer(price={"amount": 800, "currency": "EUR"}))
    buyer = make_user()
    path = order_page(client, buyer, listed.offer_ids[0])
    asked = pay(client, buyer, path, card_saved(client, buyer, path, localstripe_url, ASKS_FOR_3DS))
    assert (asked.status_code, asked.headers["location"]) == (303, f"{path}?authenticate=1")
    order = order_status(client, buyer, path)
    assert order["status"] == "pending"
    page = client.get(f"{path}?authenticate=1", headers=buyer.headers).text
    assert 'id="ipx-card-authenticate"' in page and f'data-client-secret="{order["payment"]["client_secret"]}"' in page

    def stripe_js_authenticates(client_secret: str, *, success: bool) -> None:  # confirmCardPayment's challenge
        intent_id = client_secret.split("_secret_")[0]
        answered = httpx.post(f"{localstripe_url}/v1/payment_intents/{intent_id}/_authenticate",
                              params={"success": str(success).lower()},
                              json={"key": PUBLISHABLE_KEY, "client_secret": client_secret})
        assert answered.status_code == 200, answered.text

    stripe_js_authenticates(order["payment"]["client_secret"], success=True)
    settled = client.post(f"{path}/settle", headers=buyer.headers, follow_redirects=False)
    assert (settled.status_code, settled.headers["location"]) == (303, path)
    assert order_status(client, buyer, path)["status"] == "fulfilled"
    # settling again, or Stripe's webhook arriving later, changes nothing
    assert client.post(f"{path}/settle", headers=buyer.headers, follow_redirects=False).status_code == 303
    with transaction(client.app.state.session_factory) as session:
        assert session.scalar(select(func.count()).where(Order.buyer_id == buyer.account_id)) == 1

    # a challenge the buyer fails leaves the order open, with the reason shown, for another try
    other = order_page(client, buyer, listed.offer_ids[1])
    pay(client, buyer, other, card_saved(client, buyer, other, localstripe_url, ASKS_FOR_3DS))
    stripe_js_authenticates(order_status(client, buyer, other)["payment"]["client_secret"], success=False)
    unsettled = client.post(f"{other}/settle", headers=buyer.headers)
    assert unsettled.status_code == 200 and unsettled.url.path == other and unsettled.url.query == b"unpaid=1"
    assert "your bank did not confirm it" in unsettled.text and 'id="ipx-card-form"' in unsettled.text
    assert order_status(client, buyer, other)["status"] == "pending"


def test_without_javascript_the_form_says_what_it_needs(client, make_user, list_work):
    listed = list_work()
    buyer = make_user()
    path = order_page(client, buyer, listed.offer_ids[0])
    sent = client.post(f"{path}/card", headers=buyer.headers, data={})
    assert sent.status_code == 422 and "The form needs JavaScript" in sent.text
    assert order_status(client, buyer, path)["status"] == "pending"
    with transaction(client.app.state.session_factory) as session:  # nothing was made at Stripe for it
        assert session.scalar(select(func.count()).select_from(PaymentCustomer)) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_offline_orders_and_servers_without_a_publishable_key_offer_no_card_form(
    make_settings, localstripe_url
):
    from fastapi.testclient import TestClient

    from ipx.app import create_app
    from tests.marketplace.conftest import noise_png

    without_card_form = (
        make_settings(),
        make_settings(payment_provider="stripe", stripe_api_key=API_KEY, stripe_api_base=localstripe_url),
    )
    for run, settings in enumerate(without_card_form):
        with TestClient(create_app(settings)) as plain:
            seller = ApiUser(plain, f"s{run}@example.org", "Seller")
            buyer = ApiUser(plain, f"b{run}@example.org", "Buyer")
            work = seller.register(noise_png(50 + run), title="No cards").json()
            listing = plain.post("/api/v1/listings", headers=seller.headers,
                                 json={"work_id": work["work_id"], "offers": [offer()]}).json()
            path = order_page(plain, buyer, listing["offers"][0]["offer_id"])
            assert "ipx-card-form" not in plain.get(path, headers=buyer.headers).text
            refused = plain.post(f"{path}/card-setup", headers=buyer.headers)
            assert refused.status_code == 409
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert "cannot take cards" in refused.json()["detail"]


# --- money taken out of the usual order: each settled, never kept without a license, never taken twice -------------


def bank_challenge_passed(client, buyer: ApiUser, order_path: str, localstripe_url: str) -> None:
    """The buyer pays with a 3-D Secure card and passes the bank's challenge, but /settle has not run yet (another
    tab, a closed window, a slow webhook): Stripe has the money, IPX does not know it."""
    asked = pay(client, buyer, order_path, card_saved(client, buyer, order_path, localstripe_url, ASKS_FOR_3DS))
    assert asked.headers["location"].endswith("?authenticate=1")
    secret = order_status(client, buyer, order_path)["payment"]["client_secret"]
    passed = httpx.post(f"{localstripe_url}/v1/payment_intents/{secret.split('_secret_')[0]}/_authenticate",
                        params={"success": "true"}, json={"key": PUBLISHABLE_KEY, "client_secret": secret})
    assert passed.status_code == 200 and passed.json()["status"] == "succeeded", passed.text


def refunds_of(stripe_api: stripe.StripeClient, payment_intent: str) -> list[int]:
    return [r.amount for r in stripe_api.v1.refunds.list(params={"payment_intent": payment_intent}).data]


def test_a_charge_whose_sale_failed_is_settled_by_the_retry_not_charged_again(
    client, make_user, list_work, stripe_api, localstripe_url, monkeypatch
):
    from ipx.errors import InternalError
    from ipx.marketplace import service

    listed = list_work(offer())
    buyer = make_user()
    path = order_page(client, buyer, listed.offer_ids[0])
    issue_license, failures = service._issue_license, iter([InternalError("the log was unavailable")])

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        for failure in failures:
            raise failure
        return issue_license(*args, **kwargs)

    monkeypatch.setattr(service, "_issue_license", fails_once)
    setup = card_saved(client, buyer, path, localstripe_url)
    assert pay(client, buyer, path, setup).status_code == 500  # Stripe took the money, then the sale failed
    order = order_status(client, buyer, path)
    assert order["status"] == "pending"
    intent = stripe_api.v1.payment_intents.retrieve(order["payment"]["reference"])
    assert intent.status == "succeeded"

    retried = pay(client, buyer, path, setup)  # the browser sends the form again
    assert (retried.status_code, retried.headers["location"]) == (303, path)
    assert order_status(client, buyer, path)["status"] == "fulfilled"
    assert len(stripe_api.v1.charges.list(params={"customer": intent.customer}).data) == 1  # the buyer's only charge


def test_an_order_paid_at_the_bank_cannot_be_cancelled_and_settles(
    client, make_user, list_work, stripe_api, localstripe_url
):
    listed = list_work(offer())
    buyer = make_user()
    path = order_page(client, buyer, listed.offer_ids[0])
    bank_challenge_passed(client, buyer, path, localstripe_url)
    cancel = client.post(f"{path}/cancel", headers=buyer.headers)
    assert cancel.status_code == 409 and "already paid at Stripe" in cancel.text
    assert order_status(client, buyer, path)["status"] == "pending"
    settled = client.post(f"{path}/settle", headers=buyer.headers, follow_redirects=False)
    assert settled.headers["location"] == path
    order = order_status(client, buyer, path)
    assert order["status"] == "fulfilled" and refunds_of(stripe_api, order["payment"]["reference"]) == []


@pytest.mark.parametrize("late_step", ["card", "settle"])
def test_money_taken_for_an_exclusive_sold_meanwhile_is_refunded_and_said(
    client, make_user, list_work, stripe_api, localstripe_url, late_step
):
    listed = list_work(exclusive_offer())  # EUR 500.00
    buyer, rival = make_user(), make_user()
    path = order_page(client, buyer, listed.offer_ids[0])
    other_tab_setup = card_saved(client, buyer, path, localstripe_url)
    bank_challenge_passed(client, buyer, path, localstripe_url)
    rival_path = order_page(client, rival, listed.offer_ids[0])
    assert pay(client, rival, rival_path, card_saved(client, rival, rival_path, localstripe_url)).status_code == 303

    if late_step == "card":  # the buyer's other tab pays with another card
        pay(client, buyer, path, other_tab_setup)
    else:
        client.post(f"{path}/settle", headers=buyer.headers)
    order = order_status(client, buyer, path)
    assert order["status"] == "failed"
    assert refunds_of(stripe_api, order["payment"]["reference"]) == [50000]
    shown = client.get(path, headers=buyer.headers).text
    assert "refunded in full" in shown and "No money was taken" not in shown


def test_a_payment_still_processing_is_said_without_a_pay_form(client, make_user, list_work, localstripe_url,
                                                               monkeypatch):
    listed = list_work(offer())
    buyer = make_user()
    path = order_page(client, buyer, listed.offer_ids[0])
    pay(client, buyer, path, card_saved(client, buyer, path, localstripe_url, ASKS_FOR_3DS))
    intents = client.app.state.marketplace.providers.get("stripe").client.v1.payment_intents
    retrieve = intents.retrieve

    def processing(ref: str, *args: Any, **kwargs: Any) -> Any:  # localstripe has no card that stays processing
        intent = retrieve(ref, *args, **kwargs)
        intent["status"] = "processing"
        return intent

    monkeypatch.setattr(intents, "retrieve", processing)
    shown = client.post(f"{path}/settle", headers=buyer.headers)
    assert shown.url.query == b"processing=1"
    assert "Stripe is processing your payment." in shown.text and 'id="ipx-card-form"' not in shown.text
    assert "did not go through" not in shown.text


def test_a_customer_stripe_no_longer_knows_is_replaced(client, make_user, list_work, localstripe_url, monkeypatch):
    listed = list_work(offer(), offer(price={"amount": 700, "currency": "EUR"}))
    buyer = make_user()
    first = order_page(client, buyer, listed.offer_ids[0])
    assert pay(client, buyer, first, card_saved(client, buyer, first, localstripe_url)).status_code == 303
    with transaction(client.app.state.session_factory) as session:
        [old_customer] = session.scalars(select(PaymentCustomer.customer_ref))
    setups = client.app.state.marketplace.providers.get("stripe").client.v1.setup_intents
    create = setups.create

    def forgets(params: Any, *args: Any, **kwargs: Any) -> Any:  # localstripe does not check customers
        if params["customer"] == old_customer:
            raise stripe.InvalidRequestError(f"No such customer: '{old_customer}'", param="customer",
                                             code="resource_missing", http_status=400)
        return create(params, *args, **kwargs)

    monkeypatch.setattr(setups, "create", forgets)
    second = order_page(client, buyer, listed.offer_ids[1])
    assert pay(client, buyer, second, card_saved(client, buyer, second, localstripe_url)).status_code == 303
    assert order_status(client, buyer, second)["status"] == "fulfilled"
    with transaction(client.app.state.session_factory) as session:
        assert list(session.scalars(select(PaymentCustomer.customer_ref))) not in ([], [old_customer])


def saved_as_stripe_saves_it(stripe_api, localstripe_url: str, client, buyer: ApiUser, path: str,
                             number: str = VISA) -> dict[str, Any]:
    """A card saved through the form and attached to the buyer's customer, as Stripe attaches it (localstripe
    does not, so the test does)."""
    setup = stripe_js_saves(localstripe_url, card_setup(client, buyer, path), number)
    stripe_api.v1.payment_methods.attach(setup["payment_method"], params={"customer": setup["customer"]})
    return setup


@pytest.mark.parametrize("how", ["paid", "declined", "paid after a bank challenge, by the webhook"])
def test_no_card_stays_on_the_customer_record(client, make_user, list_work, stripe_api, localstripe_url, how):
    from tests.marketplace.test_stripe import WEBHOOK, intent_event, signed

    listed = list_work(offer())
    buyer = make_user()
    path = order_page(client, buyer, listed.offer_ids[0])
    number = {"paid": VISA, "declined": DECLINED_AT_CHARGE}.get(how, ASKS_FOR_3DS)
    setup = saved_as_stripe_saves_it(stripe_api, localstripe_url, client, buyer, path, number)
    paid = pay(client, buyer, path, setup["id"])
    if how.endswith("by the webhook"):
        intent_id = order_status(client, buyer, path)["payment"]["reference"]
        secret = order_status(client, buyer, path)["payment"]["client_secret"]
        httpx.post(f"{localstripe_url}/v1/payment_intents/{intent_id}/_authenticate", params={"success": "true"},
                   json={"key": PUBLISHABLE_KEY, "client_secret": secret})
        event = intent_event(stripe_api.v1.payment_intents.retrieve(intent_id))
        received = client.post(WEBHOOK, content=event, headers=signed(event, secret=WEBHOOK_SECRET))
        assert received.json()["outcome"] == "order fulfilled"
    else:
        assert paid.status_code == (303 if how == "paid" else 402)
    assert stripe_api.v1.payment_methods.retrieve(setup["payment_method"]).customer is None


@pytest.mark.parametrize("meanwhile", ["the exclusive was sold", "the order was cancelled",
                                       "the order was paid in another tab", "a bank challenge was given up"])
def test_a_card_saved_but_never_charged_is_not_kept(
    client, make_user, list_work, stripe_api, localstripe_url, meanwhile
):
    listed = list_work(exclusive_offer() if meanwhile == "the exclusive was sold" else offer())
    buyer, rival = make_user(), make_user()
    path = order_page(client, buyer, listed.offer_ids[0])
    number = ASKS_FOR_3DS if meanwhile == "a bank challenge was given up" else VISA
    setup = saved_as_stripe_saves_it(stripe_api, localstripe_url, client, buyer, path, number)
    if meanwhile == "the exclusive was sold":
        rival_path = order_page(client, rival, listed.offer_ids[0])
        assert pay(client, rival, rival_path, card_saved(client, rival, rival_path, localstripe_url)).status_code == 303
        assert pay(client, buyer, path, setup["id"]).status_code == 303  # the order fails before any charge
        assert order_status(client, buyer, path)["status"] == "failed"
    elif meanwhile == "the order was cancelled":
        assert client.post(f"/api/v1/orders/{path.rsplit('/', 1)[1]}/cancel", headers=buyer.headers).status_code == 200
        assert pay(client, buyer, path, setup["id"]).status_code == 409
    elif meanwhile == "the order was paid in another tab":
        assert pay(client, buyer, path, card_saved(client, buyer, path, localstripe_url)).status_code == 303
        assert pay(client, buyer, path, setup["id"]).status_code == 303  # finds it licensed
    else:
        assert pay(client, buyer, path, setup["id"]).status_code == 303  # on to the bank's challenge
        assert stripe_api.v1.payment_methods.retrieve(setup["payment_method"]).customer is not None  # in use
        cancelled = client.post(f"{path}/cancel", follow_redirects=False, headers=buyer.headers)
        assert cancelled.status_code == 303
        assert order_status(client, buyer, path)["status"] == "cancelled"
    assert stripe_api.v1.payment_methods.retrieve(setup["payment_method"]).customer is None


def test_two_tabs_replacing_a_forgotten_customer_end_with_one(
    client, make_user, list_work, localstripe_url, monkeypatch, database_url
):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers at BEGIN, so two transactions cannot interleave there")
    from ipx.accounts.service import principal_for_token
    from ipx.marketplace import service
    from tests.races import interleave

    listed = list_work(offer(), offer(price={"amount": 700, "currency": "EUR"}))
    buyer = make_user()
    first = order_page(client, buyer, listed.offer_ids[0])
    assert pay(client, buyer, first, card_saved(client, buyer, first, localstripe_url)).status_code == 303
    factory = client.app.state.session_factory
    with transaction(factory) as session:
        [forgotten] = session.scalars(select(PaymentCustomer.customer_ref))
        buyer_principal = principal_for_token(session, buyer.headers["Authorization"].split()[1])
    setups = client.app.state.marketplace.providers.get("stripe").client.v1.setup_intents
    create = setups.create

    def forgets(params: Any, *args: Any, **kwargs: Any) -> Any:
        if params["customer"] == forgotten:
            raise stripe.InvalidRequestError(f"No such customer: '{forgotten}'", param="customer",
                                             code="resource_missing", http_status=400)
        return create(params, *args, **kwargs)

    monkeypatch.setattr(setups, "create", forgets)
    order_id = order_page(client, buyer, listed.offer_ids[1]).rsplit("/", 1)[1]
    secrets: list[str] = []

    def open_setup(session: Any) -> None:  # a tab pressing Pay
        secrets.append(service.open_card_payment(session, order_id=order_id, buyer=buyer_principal,
                                                 ctx=client.app.state.marketplace))

    interleave(factory, open_setup, open_setup)
    with transaction(factory) as session:
        [replacement] = session.scalars(select(PaymentCustomer.customer_ref))
    assert replacement != forgotten and len(secrets) == 2
    for secret in secrets:  # both tabs' setups belong to the one new customer
        assert httpx.get(f"{localstripe_url}/v1/setup_intents/{secret.split('_secret_')[0]}",
                         auth=(API_KEY, "")).json()["customer"] == replacement

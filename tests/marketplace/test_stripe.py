"""Stripe PaymentIntents and webhooks against a real localstripe process.

Two ways events arrive: localstripe delivering them to a real uvicorn server (the proof that the
wiring works end to end), and events we sign ourselves with the webhook secret, which lets the
tests forge, replay, duplicate and reorder them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import func, select

from ipx.db import transaction
from ipx.marketplace.models import LedgerTransaction, Order, PaymentEvent
from tests.conftest import ApiUser
from tests.marketplace.builders import exclusive_offer, offer
from tests.marketplace.conftest import assert_ledger_balanced, noise_png
from tests.marketplace.servers import ipx_server

API_KEY = "sk_test_ipx_marketplace"
WEBHOOK_SECRET = "whsec_ipx_test_secret"
WEBHOOK = "/api/v1/payments/stripe/webhook"


@pytest.fixture
def settings(make_settings, localstripe_url):
    return make_settings(payment_provider="stripe", stripe_api_key=API_KEY, stripe_api_base=localstripe_url,
                         stripe_webhook_secret=WEBHOOK_SECRET)


@pytest.fixture
def stripe_api(localstripe_url) -> stripe.StripeClient:
    """What the buyer's browser (Stripe.js) and the Stripe dashboard would do, against localstripe."""
    return stripe.StripeClient(API_KEY, base_addresses={"api": localstripe_url}, max_network_retries=0)


def pay_in_browser(stripe_api: stripe.StripeClient, payment_intent_id: str) -> Any:
    """Stripe.js confirmCardPayment: attach a card to the PaymentIntent and confirm it."""
    stripe_api.v1.payment_intents.update(payment_intent_id, params={"payment_method": "pm_card_visa"})
    return stripe_api.v1.payment_intents.confirm(payment_intent_id)


def signed(payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Stripe's scheme: HMAC-SHA256 over "<t>.<body>" with the endpoint's signing secret."""
    at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={at},v1={digest}", "Content-Type": "application/json"}


def intent_event(intent: Any, event_type: str = "payment_intent.succeeded", **changes: Any) -> bytes:
    obj = {"id": intent.id, "object": "payment_intent", "amount": intent.amount, "currency": intent.currency,
           "status": intent.status, "metadata": intent.metadata.to_dict()}
    obj.update(changes)
    return json.dumps({"id": f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "type": event_type,
                       "created": int(time.time()), "data": {"object": obj}}).encode()


def place(client, buyer, offer_id: str, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/orders", headers=buyer.headers, json={"offer_id": offer_id, **body})
    assert response.status_code == 201, response.text
    return response.json()


def sales_count(client) -> int:
    with transaction(client.app.state.session_factory) as session:
        return session.scalar(select(func.count()).where(LedgerTransaction.kind == "sale"))


def test_server_side_confirmation_then_refund(client, make_user, list_work, stripe_api, staff):
    listed = list_work(offer(price={"amount": 4200, "currency": "USD"}))
    order = place(client, make_user(), listed.offer_ids[0], payment_method="pm_card_visa")
    assert order["status"] == "fulfilled" and order["payment"]["provider"] == "stripe"
    intent = stripe_api.v1.payment_intents.retrieve(order["payment"]["reference"])
    assert (intent.status, intent.amount, intent.currency) == ("succeeded", 4200, "usd")
    assert intent.metadata["order_id"] == order["order_id"]
    balances = {a["account"]: a["balance"] for a in assert_ledger_balanced(client, staff)["accounts"]}
    assert balances["provider:stripe"] == -4200 and balances["platform:fees"] == 420

    refunded = client.post(f"/api/v1/orders/{order['order_id']}/refund", headers=staff)
    assert refunded.status_code == 200, refunded.text
    refunds = stripe_api.v1.refunds.list(params={"payment_intent": intent.id}).data
    assert [(r.amount, r.status) for r in refunds] == [(4200, "succeeded")]
    assert client.get(order["license_url"]).json()["status"] == "revoked"


def test_webhook_credits_once_and_rejects_forgeries(client, make_user, list_work, stripe_api):
    listed = list_work(offer(price={"amount": 1500, "currency": "EUR"}))
    buyer = make_user()
    order = place(client, buyer, listed.offer_ids[0])
    assert order["status"] == "pending" and order["payment"]["client_secret"]
    intent = pay_in_browser(stripe_api, order["payment"]["reference"])
    payload = intent_event(intent)

    for headers in (
        signed(payload, secret="whsec_someone_else"),  # forged
        signed(payload, timestamp=int(time.time()) - 3600),  # replayed an hour later
        {"Content-Type": "application/json"},  # unsigned
    ):
        rejected = client.post(WEBHOOK, content=payload, headers=headers)
        assert rejected.status_code == 400, rejected.text
        assert rejected.headers["content-type"].startswith("application/problem+json")
    tampered = payload.replace(b'"amount": 1500', b'"amount": 1')
    assert client.post(WEBHOOK, content=tampered, headers=signed(payload)).status_code == 400
    # signed with our secret, but not shaped like Stripe's events: refused in words, never a 500
    intent_object = b'{"object": "payment_intent", "id": "pi_x", "amount": 1, "currency": "eur"}'
    for body in (b"[]", b'"event"', b'{"id": "evt_1"}',
                 b'{"id": "evt_2", "type": "charge.refunded", "data": {"object": []}}',
                 b'{"id": ["evt_3"], "type": "payment_intent.succeeded", "data": {"object": ' + intent_object + b"}}",
                 b'{"id": "evt_4", "type": "payment_intent.succeeded", "data": {"object": '
                 + intent_object.replace(b'"pi_x"', b'{"pi": 1}') + b"}}"):
        malformed = client.post(WEBHOOK, content=body, headers=signed(body))
        assert malformed.status_code == 400, (body, malformed.text)
        assert malformed.headers["content-type"].startswith("application/problem+json")
    # kinds IPX does not use are acknowledged whatever their shape (Stripe disables endpoints that keep refusing)
    customer = b'{"id": "evt_5", "type": "customer.created", "data": {"object": {"currency": null}}}'
    ignored = client.post(WEBHOOK, content=customer, headers=signed(customer))
    assert ignored.json()["outcome"] == "customer.created not used"
    assert client.get(f"/api/v1/orders/{order['order_id']}", headers=buyer.headers).json()["status"] == "pending"

    first = client.post(WEBHOOK, content=payload, headers=signed(payload))
    second = client.post(WEBHOOK, content=payload, headers=signed(payload))
    assert first.json() == {"received": True, "outcome": "order fulfilled"}
    assert second.json() == {"received": True, "outcome": "duplicate event ignored"}
    assert sales_count(client) == 1
    # the same payment reported again under a new event id (Stripe retries do that) still credits once
    again = intent_event(intent)
    assert client.post(WEBHOOK, content=again, headers=signed(again)).json()["outcome"] == "order already fulfilled"
    assert sales_count(client) == 1
    assert client.get(f"/api/v1/orders/{order['order_id']}", headers=buyer.headers).json()["status"] == "fulfilled"


def test_unknown_orders_and_wrong_amounts_do_not_crash_or_credit(client, make_user, list_work, stripe_api):
    unknown = json.dumps({"id": "evt_unknown_1", "object": "event", "type": "payment_intent.succeeded",
                          "created": int(time.time()), "data": {"object": {
                              "id": "pi_not_ours", "object": "payment_intent", "amount": 100, "currency": "eur",
                              "metadata": {}}}}).encode()
    response = client.post(WEBHOOK, content=unknown, headers=signed(unknown))
    assert response.status_code == 200 and response.json()["outcome"] == "unknown order"

    irrelevant = json.dumps({"id": "evt_other_1", "object": "event", "type": "customer.created",
                             "created": int(time.time()), "data": {"object": {"id": "cus_1", "object": "customer"}}})
    assert client.post(WEBHOOK, content=irrelevant, headers=signed(irrelevant.encode())).status_code == 200

    listed = list_work(offer(price={"amount": 999, "currency": "EUR"}))
    buyer = make_user()
    order = place(client, buyer, listed.offer_ids[0])
    intent = pay_in_browser(stripe_api, order["payment"]["reference"])
    short = intent_event(intent, amount=1)
    assert client.post(WEBHOOK, content=short, headers=signed(short)).json()["outcome"].startswith("amount mismatch")
    assert client.get(f"/api/v1/orders/{order['order_id']}", headers=buyer.headers).json()["status"] == "pending"
    assert sales_count(client) == 0
    with transaction(client.app.state.session_factory) as session:
        outcomes = dict(session.execute(select(PaymentEvent.event_id, PaymentEvent.outcome)).all())
    assert outcomes["evt_unknown_1"] == "unknown order" and outcomes["evt_other_1"] == "customer.created not used"


def test_second_payment_for_a_sold_exclusive_is_refunded(client, make_user, list_work, stripe_api, staff):
    listed = list_work(exclusive_offer())
    first_buyer, second_buyer = make_user("First"), make_user("Second")
    first = place(client, first_buyer, listed.offer_ids[0])
    second = place(client, second_buyer, listed.offer_ids[0])
    paid = [pay_in_browser(stripe_api, o["payment"]["reference"]) for o in (first, second)]
    events = [intent_event(intent) for intent in paid]
    outcomes = [client.post(WEBHOOK, content=e, headers=signed(e)).json()["outcome"] for e in events]
    assert outcomes == ["order fulfilled", "order failed"]
    lost = client.get(f"/api/v1/orders/{second['order_id']}", headers=second_buyer.headers).json()
    assert lost["status"] == "failed" and "exclusive" in lost["failure_reason"]
    refunds = stripe_api.v1.refunds.list(params={"payment_intent": paid[1].id}).data
    assert [(r.amount, r.status) for r in refunds] == [(50000, "succeeded")]
    assert stripe_api.v1.refunds.list(params={"payment_intent": paid[0].id}).data == []
    assert sales_count(client) == 1
    late = client.post("/api/v1/orders", headers=make_user().headers, json={"offer_id": listed.offer_ids[0]})
    assert late.status_code == 409
    assert_ledger_balanced(client, staff)


def test_cancelled_order_cancels_the_payment_intent(client, make_user, list_work, stripe_api):
    listed = list_work()
    buyer = make_user()
    order = place(client, buyer, listed.offer_ids[0])
    cancelled = client.post(f"/api/v1/orders/{order['order_id']}/cancel", headers=buyer.headers)
    assert cancelled.json()["status"] == "cancelled"
    assert stripe_api.v1.payment_intents.retrieve(order["payment"]["reference"]).status == "canceled"
    confirm = client.post(f"/api/v1/orders/{order['order_id']}/confirm", headers=buyer.headers)
    assert confirm.status_code == 409  # Stripe orders complete through Stripe, never by the buyer's word


def test_localstripe_delivers_webhooks_to_a_real_server(database_url, tmp_path: Path, localstripe_url, stripe_api):
    env = {
        "IPX_DATABASE_URL": database_url, "IPX_DATA_DIR": str(tmp_path / "data"), "IPX_PAYMENT_PROVIDER": "stripe",
        "IPX_STRIPE_API_KEY": API_KEY, "IPX_STRIPE_API_BASE": localstripe_url,
        "IPX_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    with ipx_server(env, tmp_path) as base, httpx.Client(base_url=base, timeout=30) as http:
        hook = httpx.post(f"{localstripe_url}/_config/webhooks/ipx-{uuid.uuid4().hex[:8]}",
                          json={"url": f"{base}{WEBHOOK}", "secret": WEBHOOK_SECRET})
        assert hook.status_code == 200, hook.text
        seller = ApiUser(http, "seller@example.org", "Seller")  # type: ignore[arg-type]
        buyer = ApiUser(http, "buyer@example.org", "Buyer")  # type: ignore[arg-type]
        work = http.post("/api/v1/works", headers=seller.headers, files={"file": ("w.png", noise_png(99))},
                         data={"title": "Delivered"}).json()
        listing = http.post("/api/v1/listings", headers=seller.headers,
                            json={"work_id": work["work_id"], "offers": [offer()]}).json()
        order = place(http, buyer, listing["offers"][0]["offer_id"])
        pay_in_browser(stripe_api, order["payment"]["reference"])
        status, give_up = order["status"], time.monotonic() + 30
        while status == "pending" and time.monotonic() < give_up:
            time.sleep(0.3)
            status = http.get(f"/api/v1/orders/{order['order_id']}", headers=buyer.headers).json()["status"]
        assert status == "fulfilled"
        license_url = http.get(f"/api/v1/orders/{order['order_id']}", headers=buyer.headers).json()["license_url"]
        assert http.get(license_url).json()["status"] == "active"


def charge_refunded_event(payment_intent: str, *, amount: int, amount_refunded: int, currency: str = "gbp") -> bytes:
    return json.dumps({
        "id": f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "type": "charge.refunded", "created": int(time.time()),
        "data": {"object": {"id": "ch_x", "object": "charge", "payment_intent": payment_intent, "amount": amount,
                            "amount_refunded": amount_refunded, "refunded": amount_refunded == amount,
                            "currency": currency}},
    }).encode()


def sell_and_refund_part(client, buyer, list_work, stripe_api, refunded: int, seller=None) -> tuple[dict, str, str]:  # type: ignore[no-untyped-def]
    """A GBP 30.00 card sale of which `refunded` went back from the Stripe dashboard; (order, intent, outcome)."""
    listed = list_work(offer(price={"amount": 3000, "currency": "GBP"}), seller=seller)
    order = place(client, buyer, listed.offer_ids[0], payment_method="pm_card_visa")
    intent_id = order["payment"]["reference"]
    stripe_api.v1.refunds.create(params={"payment_intent": intent_id, "amount": refunded})
    partial = charge_refunded_event(intent_id, amount=3000, amount_refunded=refunded)
    return order, intent_id, client.post(WEBHOOK, content=partial, headers=signed(partial)).json()["outcome"]


def test_refund_made_in_the_stripe_dashboard_revokes_the_license(client, make_user, list_work, stripe_api, staff):
    buyer = make_user()
    order, intent_id, outcome = sell_and_refund_part(client, buyer, list_work, stripe_api, 100)
    assert outcome == "partial refund recorded: the license stays, left for staff"
    assert client.get(order["license_url"]).json()["status"] == "active"
    assert sales_count(client) == 1

    stripe_api.v1.refunds.create(params={"payment_intent": intent_id, "amount": 2900})
    charge_event = charge_refunded_event(intent_id, amount=3000, amount_refunded=3000)
    outcome = client.post(WEBHOOK, content=charge_event, headers=signed(charge_event)).json()["outcome"]
    assert outcome == "order refunded"
    assert client.get(f"/api/v1/orders/{order['order_id']}", headers=buyer.headers).json()["status"] == "refunded"
    assert client.get(order["license_url"]).json()["status"] == "revoked"
    # no further refund was asked of Stripe: the dashboard already made them
    assert len(stripe_api.v1.refunds.list(params={"payment_intent": intent_id}).data) == 2
    assert balances(client, staff) == {"provider:stripe": 0, "platform:fees": 0, "creator": 0}  # 100, then the rest


def test_staff_refund_after_a_partial_one_returns_only_the_rest(client, make_user, list_work, stripe_api, staff):
    order, intent_id, _ = sell_and_refund_part(client, make_user(), list_work, stripe_api, 400)
    # the ledger takes the 400 back at once, from the fee and the seller in proportion (10 % fee)
    assert balances(client, staff) == {"provider:stripe": -2600, "platform:fees": 260, "creator": 2340}
    repeated = charge_refunded_event(intent_id, amount=3000, amount_refunded=400)  # the same total again: no change
    assert client.post(WEBHOOK, content=repeated, headers=signed(repeated)).status_code == 200
    assert balances(client, staff) == {"provider:stripe": -2600, "platform:fees": 260, "creator": 2340}

    refunded = client.post(f"/api/v1/orders/{order['order_id']}/refund", headers=staff)
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["status"] == "refunded"
    refunds = stripe_api.v1.refunds.list(params={"payment_intent": intent_id}).data
    assert sorted(refund.amount for refund in refunds) == [400, 2600]
    assert balances(client, staff) == {"provider:stripe": 0, "platform:fees": 0, "creator": 0}


def test_sales_and_purchases_pages_say_what_went_back_of_a_sale(client, make_user, list_work, stripe_api):
    seller, buyer = make_user("Seller"), make_user()
    sell_and_refund_part(client, buyer, list_work, stripe_api, 400, seller=seller)
    for page, who in (("/me/sales", seller), ("/me/purchases", buyer)):
        html = client.get(page, headers=who.headers).text
        assert '<span class="small muted">GBP 4.00 refunded</span>' in html, page
    assert "GBP 23.40" in client.get("/me/sales", headers=seller.headers).text  # balance: 27.00 less 3.60


def balances(client, staff) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """GBP balances from the ledger summary, every creator account together (each test's seller is new)."""
    totals: dict[str, int] = {}
    for account in assert_ledger_balanced(client, staff)["accounts"]:
        if account["currency"] == "GBP":
            name = "creator" if account["account"].startswith("creator:") else account["account"]
            totals[name] = totals.get(name, 0) + account["balance"]
    return totals


def test_declined_card_leaves_no_order_and_no_money(client, make_user, list_work):
    listed = list_work(exclusive_offer())
    buyer = make_user()
    declined = client.post("/api/v1/orders", headers=buyer.headers,
                           json={"offer_id": listed.offer_ids[0], "payment_method": "pm_card_chargeCustomerFail"})
    assert declined.status_code == 402, declined.text
    assert declined.headers["content-type"].startswith("application/problem+json")
    with transaction(client.app.state.session_factory) as session:
        assert session.scalar(select(func.count()).where(Order.buyer_id == buyer.account_id)) == 0
    assert sales_count(client) == 0
    # the exclusive offer is still for sale
    assert place(client, make_user(), listed.offer_ids[0], payment_method="pm_card_visa")["status"] == "fulfilled"


def test_failed_attempt_keeps_the_order_open_and_cancellation_closes_it(client, make_user, list_work, stripe_api):
    listed = list_work()
    buyer = make_user()
    order = place(client, buyer, listed.offer_ids[0])
    intent = stripe_api.v1.payment_intents.retrieve(order["payment"]["reference"])
    failed = intent_event(intent, "payment_intent.payment_failed")
    assert client.post(WEBHOOK, content=failed, headers=signed(failed)).json()["outcome"].startswith("payment attempt")
    paid = intent_event(pay_in_browser(stripe_api, intent.id))  # the buyer retries with another card
    assert client.post(WEBHOOK, content=paid, headers=signed(paid)).json()["outcome"] == "order fulfilled"

    other = place(client, buyer, listed.offer_ids[0])
    cancelled = intent_event(stripe_api.v1.payment_intents.cancel(other["payment"]["reference"]),
                             "payment_intent.canceled")
    assert client.post(WEBHOOK, content=cancelled, headers=signed(cancelled)).json()["outcome"] == "order cancelled"
    assert client.get(f"/api/v1/orders/{other['order_id']}", headers=buyer.headers).json()["status"] == "cancelled"


def test_retry_after_a_lost_answer_asks_stripe_for_the_same_payment(client, make_user, list_work, monkeypatch):
    """Stripe took the money but its answer was lost: the request fails and its order rolls back. The buyer's retry
    with the same Idempotency-Key must send Stripe the very same requests under the same idempotency keys, which
    Stripe answers from its record instead of charging again (localstripe keeps no such record, so the requests
    are compared here)."""
    listed = list_work(offer(price={"amount": 4200, "currency": "USD"}))
    intents = client.app.state.marketplace.providers.get("stripe").client.v1.payment_intents
    sent: list[tuple[str, Any, Any]] = []
    real_create, real_confirm = intents.create, intents.confirm

    def create(*, params: Any, options: Any) -> Any:
        sent.append(("create", json.dumps(params, sort_keys=True), options["idempotency_key"]))
        return real_create(params=params, options=options)

    def confirm(intent_id: str, *, options: Any) -> Any:
        sent.append(("confirm", None, options["idempotency_key"]))
        confirmed = real_confirm(intent_id, options=options)
        if len(sent) == 2:
            raise stripe.APIConnectionError("Network error: read timed out")
        return confirmed

    monkeypatch.setattr(intents, "create", create)
    monkeypatch.setattr(intents, "confirm", confirm)
    buyer = make_user()
    headers = {**buyer.headers, "Idempotency-Key": "checkout-1"}
    body = {"offer_id": listed.offer_ids[0], "payment_method": "pm_card_visa"}
    lost = client.post("/api/v1/orders", headers=headers, json=body)
    assert lost.status_code == 502 and "Retrying is safe" in lost.json()["detail"]
    retried = client.post("/api/v1/orders", headers=headers, json=body)
    assert retried.status_code == 201, retried.text
    assert sent[:2] == sent[2:]
    other_buyer = make_user()
    place(client, other_buyer, listed.offer_ids[0], payment_method="pm_card_visa")
    assert sent[4][2] != sent[0][2]  # another buyer's order is another payment

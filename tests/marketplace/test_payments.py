"""One contract for every payment provider (offline, and Stripe against a real localstripe)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from ipx.errors import IPXError
from ipx.marketplace.payments import OfflineProvider, PaymentDeclined, PaymentProvider, PaymentRequest, StripeProvider
from tests.marketplace.servers import localstripe_server

PAYMENT_STATUSES = {"requires_payment_method", "requires_confirmation", "requires_action", "processing",
                    "succeeded", "failed", "canceled"}


@pytest.fixture(scope="module")
def localstripe_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with localstripe_server(tmp_path_factory.mktemp("localstripe-contract")) as url:
        yield url


@pytest.fixture(params=["offline", "stripe"])
def provider(request: pytest.FixtureRequest) -> PaymentProvider:
    if request.param == "offline":
        return OfflineProvider()
    return StripeProvider(api_key="sk_test_contract", api_base=request.getfixturevalue("localstripe_url"),
                          webhook_secret="whsec_contract")


def payment(payment_method: str | None = None, amount: int = 1234) -> PaymentRequest:
    order_id = str(uuid.uuid4())
    return PaymentRequest(order_id=order_id, amount=amount, currency="EUR", description="contract test",
                          idempotency_key=f"order:{order_id}", payment_method=payment_method)


def test_start_opens_one_payment_per_order(provider):
    first, second = provider.start(payment()), provider.start(payment())
    assert first.ref and second.ref and first.ref != second.ref
    assert {first.status, second.status} <= PAYMENT_STATUSES


def test_cancelling_an_unpaid_payment_is_safe_twice(provider):
    started = provider.start(payment())
    provider.cancel(started.ref)
    provider.cancel(started.ref)


def test_refund_after_payment_returns_the_refund_id(provider):
    started = provider.start(payment(payment_method="pm_card_visa"))
    if provider.buyer_confirms:
        assert started.status == "requires_confirmation"  # the buyer's confirmation completes it
    else:
        assert started.status == "succeeded"
    assert provider.refund(started.ref, amount=1234, idempotency_key=f"refund:{started.ref}")


def test_unsigned_webhooks_are_refused(provider):
    with pytest.raises(IPXError) as refused:
        provider.parse_webhook(b'{"id": "evt_1", "type": "payment_intent.succeeded"}', {})
    assert 400 <= refused.value.status_code < 500


def test_stripe_declined_card_is_a_402(localstripe_url):
    stripe_provider = StripeProvider(api_key="sk_test_contract", api_base=localstripe_url, webhook_secret="whsec")
    with pytest.raises(PaymentDeclined) as declined:
        stripe_provider.start(payment(payment_method="pm_card_chargeCustomerFail"))
    assert declined.value.status_code == 402 and declined.value.detail.endswith(".")

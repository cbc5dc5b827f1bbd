"""Payment providers behind one interface, chosen by settings (IPX_PAYMENT_PROVIDER).

`OfflineProvider` settles outside IPX (bank transfer, invoice, a demo): the buyer's
`POST /orders/{id}/confirm` completes the order. `StripeProvider` uses PaymentIntents and
signed webhooks, and is also a `CardEntry`: the website's order page collects a card with Stripe.js
into a SetupIntent and IPX charges it at once. The service only sees these protocols, so further flows
fit without touching it:
Stripe Checkout would be a provider whose `start` returns `next_action={"redirect_to_url": ...}`
from a Checkout Session and whose webhooks map `checkout.session.completed` to "succeeded";
Stripe Connect would add `transfer_data.destination` (the seller's connected account) and
`application_fee_amount` in `start`, once sellers have connected accounts.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import stripe

from ipx.config import Settings
from ipx.errors import Conflict, IPXError, NotFound

logger = logging.getLogger(__name__)

PaymentStatus = Literal["requires_payment_method", "requires_confirmation", "requires_action", "processing",
                        "succeeded", "failed", "canceled"]
EventKind = Literal["succeeded", "failed", "canceled", "refunded", "ignored"]


class PaymentDeclined(IPXError):
    status_code = 402
    title = "Payment declined"


class PaymentProviderUnavailable(IPXError):
    status_code = 502
    title = "Payment provider error"


class PaymentKeyReused(IPXError):
    """Stripe refused an idempotency key sent again with other parameters (another card for the same order)."""

    status_code = 409
    title = "Idempotency-Key reused"


class PaymentRefused(IPXError):
    """Stripe refused a request about a payment for a reason a retry will not change (its state moved on)."""

    status_code = 409
    title = "Payment refused"


class UnknownCustomer(IPXError):
    """Stripe no longer knows a customer IPX kept (deleted in its dashboard, or the server moved to other keys)."""

    status_code = 409
    title = "Unknown payment customer"


class WebhookRejected(IPXError):
    """A webhook whose signature, timestamp or body does not check out: forged, replayed or mangled."""

    status_code = 400
    title = "Webhook rejected"


@dataclass(frozen=True)
class PaymentRequest:
    order_id: str
    amount: int
    currency: str
    description: str
    idempotency_key: str  # the provider de-duplicates retries of the same order
    payment_method: str | None = None


@dataclass(frozen=True)
class PaymentStart:
    ref: str
    status: PaymentStatus
    client_secret: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderEvent:
    event_id: str
    event_type: str
    kind: EventKind
    payment_ref: str | None
    amount: int | None = None
    currency: str | None = None
    order_id: str | None = None
    amount_refunded: int | None = None  # on refund events: the total returned so far, which may be part of it


class PaymentProvider(Protocol):
    name: str
    buyer_confirms: bool  # True when POST /orders/{id}/confirm is how the payment completes

    def start(self, request: PaymentRequest) -> PaymentStart:
        """Open a payment for an order (and, with a payment method, try to complete it now)."""

    def cancel(self, ref: str) -> bool:
        """Release a payment that has not taken money, so it never will. False when it cannot be released any more
        because money was taken or is being taken: the caller must then sell or refund, not just close the order."""

    def refund(self, ref: str, *, amount: int, idempotency_key: str) -> str:
        """Return money taken; returns the provider's refund id."""

    def parse_webhook(self, payload: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        """Verify and decode a webhook; raise WebhookRejected unless it provably came from the provider."""


@dataclass(frozen=True)
class PaymentLookup:
    """A payment as the provider sees it now: its status, and the event its webhook would send about it."""

    status: PaymentStatus
    event: ProviderEvent


@dataclass(frozen=True)
class CardForm:
    """What the buyer's browser needs to show the provider's card form: its script and the publishable key."""

    script_url: str
    publishable_key: str


@runtime_checkable
class CardEntry(PaymentProvider, Protocol):
    """A provider whose card form runs in the buyer's browser (Stripe.js), so card numbers never reach IPX.

    The browser saves the card into a setup the server opened (`open_card_setup`, a SetupIntent for the buyer's
    customer record); the server then charges it on the order's payment (`pay_with_card`). That way every charge is
    made by IPX's server, under the order's locks, and a website payment completes in the request that makes it.
    """

    card_form: CardForm | None  # None: the provider has no browser key configured, so pages cannot take cards

    def customer_for(self, *, account_id: str, email: str, fresh: bool = False) -> str:
        """Make the buyer's customer record at the provider; returns its reference. `fresh`: a new one even if the
        provider made one for this account moments ago (that one is gone)."""

    def open_card_setup(self, *, customer_ref: str, order_id: str) -> str:
        """Open a card setup for this order; returns the client secret the card form confirms."""

    def pay_with_card(self, ref: str, *, setup_ref: str, customer_ref: str, order_id: str) -> PaymentStart:
        """Charge the card a confirmed setup saved, on the payment `ref`; raises PaymentDeclined when refused."""

    def current_state(self, ref: str) -> PaymentLookup:
        """The payment as the provider sees it now."""

    def forget_card(self, ref: str) -> None:
        """Remove the card a payment used from the buyer's customer record: IPX offers no saved cards, so it keeps
        none (refunds do not need it)."""

    def forget_setup_card(self, setup_ref: str, *, customer_ref: str, order_id: str) -> None:
        """Remove the card a setup of this order and customer saved, when it was not charged after all (the order
        was sold out, cancelled or paid in another tab meanwhile); never raises, a failure is logged."""


class OfflineProvider:
    """Money moves outside IPX; the order's buyer declares it paid. No webhooks, nothing to cancel."""

    name = "offline"
    buyer_confirms = True

    def start(self, request: PaymentRequest) -> PaymentStart:
        return PaymentStart(ref=f"offline_{request.order_id}", status="requires_confirmation")

    def cancel(self, ref: str) -> bool:
        return True

    def refund(self, ref: str, *, amount: int, idempotency_key: str) -> str:
        return f"{ref}_refund"

    def parse_webhook(self, payload: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        raise NotFound("The offline payment provider has no webhooks.")


# PaymentIntent statuses past the point of cancelling: the money is taken, or being taken
MONEY_MOVED = frozenset({"succeeded", "processing", "requires_capture"})
STRIPE_EVENT_KINDS: dict[str, EventKind] = {
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "failed",
    "payment_intent.canceled": "canceled",
    "charge.refunded": "refunded",
}


class StripeProvider:
    """Stripe PaymentIntents: card payments confirmed server-side with a PaymentMethod id, by the buyer's browser
    with the client secret, or (CardEntry) with a card the order page's Stripe.js form saved; outcomes arrive as
    signed webhooks."""

    name = "stripe"
    buyer_confirms = False

    def __init__(
        self, *, api_key: str, api_base: str, webhook_secret: str, card_form: CardForm | None = None
    ) -> None:
        self.client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base.rstrip("/")}, max_network_retries=2
        )
        self.webhook_secret = webhook_secret
        self.card_form = card_form

    def start(self, request: PaymentRequest) -> PaymentStart:
        params: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency.lower(),
            # the description rides in metadata: localstripe refuses the top-level field
            "metadata": {"order_id": request.order_id, "description": request.description[:500]},
            "payment_method_types": ["card"],
        }
        if request.payment_method:
            params["payment_method"] = request.payment_method
        try:
            intent = self.client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"{request.idempotency_key}:create"},
            )
            if request.payment_method:
                # created with its payment method, then confirmed without arguments (works on Stripe and localstripe)
                intent = self.client.v1.payment_intents.confirm(
                    intent.id, options={"idempotency_key": f"{request.idempotency_key}:confirm"}
                )
        except stripe.CardError as exc:
            raise _declined(exc) from exc
        except stripe.IdempotencyError as exc:
            raise PaymentKeyReused(
                "This Idempotency-Key already started a payment with other details (another card?). To pay with "
                "another card, place the order again with a new Idempotency-Key."
            ) from exc
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(_stripe_problem(exc)) from exc
        return PaymentStart(ref=intent.id, status=_payment_status(intent.status), client_secret=intent.client_secret)

    def customer_for(self, *, account_id: str, email: str, fresh: bool = False) -> str:
        # Two first payments at once (two tabs) make one Customer, not two. The key names the address too: Stripe
        # refuses a key sent again with other parameters (an address changed within its 24 hours).
        key = f"customer:{account_id}:{hashlib.sha256(email.encode()).hexdigest()[:16]}"
        try:
            customer = self.client.v1.customers.create(
                params={"email": email, "metadata": {"account_id": account_id}},
                options={"idempotency_key": f"{key}:{uuid.uuid4()}" if fresh else key},
            )
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(_stripe_problem(exc)) from exc
        return customer.id

    def open_card_setup(self, *, customer_ref: str, order_id: str) -> str:
        try:
            setup = self.client.v1.setup_intents.create(params={
                "customer": customer_ref, "usage": "on_session", "payment_method_types": ["card"],
                "metadata": {"order_id": order_id},
            })
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing" and exc.param == "customer":
                raise UnknownCustomer(f"Stripe knows no customer {customer_ref}.") from exc
            raise PaymentRefused(_refusal(exc)) from exc
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(_stripe_problem(exc)) from exc
        if not setup.client_secret:
            raise PaymentProviderUnavailable("Stripe opened a card setup without a client secret.")
        return setup.client_secret

    def pay_with_card(self, ref: str, *, setup_ref: str, customer_ref: str, order_id: str) -> PaymentStart:
        try:
            setup = self.client.v1.setup_intents.retrieve(setup_ref)
        except stripe.InvalidRequestError as exc:
            raise Conflict("Stripe knows no card setup with that reference; enter the card again.") from exc
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(_stripe_problem(exc)) from exc
        # The reference comes from the browser: only a setup opened for this order, by this buyer, may pay it.
        if _metadata_order_id(setup) != order_id or setup.customer != customer_ref:
            raise Conflict("That card setup was not made for this order; enter the card again.")
        if setup.status != "succeeded" or not setup.payment_method:
            raise Conflict(f"The card is not ready to be charged (Stripe says the setup is {setup.status}); "
                           "enter the card again.")
        payment_method = _id_of(setup.payment_method)
        try:
            # set the card, then confirm without arguments: localstripe implements confirm(payment_method=) as a 500
            self.client.v1.payment_intents.update(
                ref, params={"payment_method": payment_method, "customer": customer_ref}
            )
            intent = self.client.v1.payment_intents.confirm(
                # a new card is a new attempt: a declined one must not replay its decline for the next
                ref, options={"idempotency_key": f"order:{order_id}:confirm:{setup_ref}"}
            )
        except stripe.CardError as exc:
            self._detach_quietly(payment_method)  # a declined card is not kept either; the buyer enters another
            raise _declined(exc) from exc
        except stripe.InvalidRequestError as exc:  # e.g. the payment went through meanwhile: retrying cannot help
            raise PaymentRefused(_refusal(exc)) from exc
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(_stripe_problem(exc)) from exc
        return PaymentStart(ref=intent.id, status=_payment_status(intent.status), client_secret=intent.client_secret)

    def current_state(self, ref: str) -> PaymentLookup:
        try:
            intent = self.client.v1.payment_intents.retrieve(ref)
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(_stripe_problem(exc)) from exc
        kind: EventKind = {"succeeded": "succeeded", "canceled": "canceled"}.get(intent.status, "ignored")  # type: ignore[assignment]
        return PaymentLookup(status=_payment_status(intent.status), event=ProviderEvent(
            event_id=f"lookup:{intent.id}", event_type=f"payment_intent.{intent.status}", kind=kind,
            payment_ref=intent.id, amount=intent.amount, currency=intent.currency.upper(),
            order_id=_metadata_order_id(intent),
        ))

    def forget_card(self, ref: str) -> None:
        try:
            intent = self.client.v1.payment_intents.retrieve(ref)
            if intent.customer and intent.payment_method:  # only the order page's cards sit on IPX's customers
                self._detach(intent.payment_method)
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(_stripe_problem(exc)) from exc

    def forget_setup_card(self, setup_ref: str, *, customer_ref: str, order_id: str) -> None:
        try:
            setup = self.client.v1.setup_intents.retrieve(setup_ref)
        except stripe.StripeError as exc:  # a reference the browser made up, or Stripe unreachable
            logger.warning("could not look up card setup %s to remove its card: %s", setup_ref, exc)
            return
        # the reference comes from the browser: only a card saved for this order, by this buyer, is IPX's to remove
        if _metadata_order_id(setup) == order_id and setup.customer == customer_ref and setup.payment_method:
            self._detach_quietly(setup.payment_method)

    def _detach(self, payment_method: Any) -> None:
        self.client.v1.payment_methods.detach(_id_of(payment_method))

    def _detach_quietly(self, payment_method: Any) -> None:
        """Detach, logging a failure: the buyer's own error (a declined card) is what they must hear about."""
        try:
            self._detach(payment_method)
        except stripe.StripeError as exc:
            logger.warning("could not remove card %s from its customer: %s", payment_method, exc)

    def cancel(self, ref: str) -> bool:
        try:
            intent = self.client.v1.payment_intents.retrieve(ref)
            if intent.status in MONEY_MOVED:
                return False
            if intent.status != "canceled":
                self.client.v1.payment_intents.cancel(ref)
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(_stripe_problem(exc)) from exc
        return True

    def refund(self, ref: str, *, amount: int, idempotency_key: str) -> str:
        try:
            refund = self.client.v1.refunds.create(
                params={"payment_intent": ref, "amount": amount}, options={"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(_stripe_problem(exc)) from exc
        return refund.id

    def parse_webhook(self, payload: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        if not self.webhook_secret:
            raise NotFound("Stripe webhooks are not configured on this server (IPX_STRIPE_WEBHOOK_SECRET).")
        signature = headers.get("stripe-signature")
        if not signature:
            raise WebhookRejected("The request has no Stripe-Signature header.")
        try:
            # checks the HMAC with our signing secret and refuses timestamps older than 5 minutes (replays)
            event = stripe.Webhook.construct_event(payload, signature, self.webhook_secret).to_dict()
        except stripe.SignatureVerificationError as exc:
            raise WebhookRejected(f"The Stripe signature does not verify: {exc.user_message or exc}.") from exc
        except (ValueError, TypeError, AttributeError) as exc:  # not JSON, or JSON that is not an object
            raise WebhookRejected("The webhook body is not a Stripe event.") from exc
        try:
            return _stripe_event(event)
        except (KeyError, TypeError, AttributeError) as exc:  # signed by our secret, yet not shaped as Stripe's
            raise WebhookRejected(f"The Stripe event lacks a field IPX reads ({exc}).") from exc


def _metadata_order_id(stripe_object: Any) -> str | None:
    """The order an intent was opened for, from its metadata (a StripeObject, which has no `get`)."""
    return (stripe_object.metadata.to_dict() if stripe_object.metadata else {}).get("order_id")


def _payment_status(stripe_status: str) -> PaymentStatus:
    """A PaymentIntent's status as IPX names it: a charge awaiting capture is still processing."""
    return "processing" if stripe_status == "requires_capture" else stripe_status  # type: ignore[return-value]


def _stripe_event(event: dict[str, Any]) -> ProviderEvent:
    event_id, event_type = _typed(event["id"], str), _typed(event["type"], str)
    if event_type not in STRIPE_EVENT_KINDS:  # an endpoint may be sent every kind: those IPX does not use are fine
        return ProviderEvent(event_id=event_id, event_type=event_type, kind="ignored", payment_ref=None)
    obj = event["data"]["object"]
    is_intent = obj.get("object") == "payment_intent"
    metadata = obj.get("metadata") or {}
    return ProviderEvent(
        event_id=event_id,
        event_type=event_type,
        kind=STRIPE_EVENT_KINDS[event_type],
        payment_ref=_typed(obj.get("id") if is_intent else obj.get("payment_intent"), str, optional=True),
        amount=_typed(obj.get("amount"), int, optional=True),
        currency=(_typed(obj.get("currency"), str, optional=True) or "").upper() or None,
        order_id=_typed(metadata.get("order_id"), str, optional=True),
        amount_refunded=_typed(obj.get("amount_refunded"), int, optional=True),
    )


def _typed(value: Any, kind: type, *, optional: bool = False) -> Any:
    """A field of a signed event, refused (TypeError) when it is not of the type Stripe documents."""
    if (value is None and optional) or isinstance(value, kind):
        return value
    raise TypeError(f"{value!r} is not {'null or ' if optional else ''}a {kind.__name__}")


def _id_of(expandable: Any) -> str:
    """A field Stripe sends as an id, or as the object when expanded."""
    return expandable if isinstance(expandable, str) else expandable.id


def _declined(exc: stripe.CardError) -> PaymentDeclined:
    return PaymentDeclined(f"The card was declined: {exc.user_message or 'no reason given'}.")


def _refusal(exc: stripe.StripeError) -> str:
    reason = exc.user_message or "no reason given"
    return f"Stripe refused this ({reason}). Reload the order page to see where the payment stands."


def _stripe_problem(exc: stripe.StripeError) -> str:
    reason = exc.user_message or exc.__class__.__name__
    return f"Stripe could not process the request ({reason}). Retrying is safe: an order is never charged twice."


@dataclass(frozen=True)
class PaymentProviders:
    """The provider new orders use, plus every provider existing orders may still need (refunds)."""

    default: PaymentProvider
    by_name: dict[str, PaymentProvider]

    def get(self, name: str) -> PaymentProvider:
        provider = self.by_name.get(name)
        if provider is None:
            raise NotFound(f"The payment provider '{name}' is not configured on this server.")
        return provider


def build_providers(settings: Settings) -> PaymentProviders:
    offline = OfflineProvider()
    by_name: dict[str, PaymentProvider] = {offline.name: offline}
    if settings.stripe_api_key:
        by_name["stripe"] = StripeProvider(
            api_key=settings.stripe_api_key, api_base=settings.stripe_api_base,
            webhook_secret=settings.stripe_webhook_secret,
            card_form=CardForm(script_url=settings.stripe_js_url, publishable_key=settings.stripe_publishable_key)
            if settings.stripe_publishable_key else None,
        )
    if settings.payment_provider not in by_name:
        raise ValueError(
            f"IPX_PAYMENT_PROVIDER={settings.payment_provider!r} is not available: choose 'offline', or 'stripe' "
            "with IPX_STRIPE_API_KEY set"
        )
    return PaymentProviders(default=by_name[settings.payment_provider], by_name=by_name)

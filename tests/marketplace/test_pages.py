"""The marketplace pages through the app (TestClient, both databases): what each page shows, what each form
does, errors in the form with the input kept, and who may see what.

Page requests authenticate with the bearer token (pages accept it like the session cookie), so one
client can act as several people without logging in and out.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ipx.db import transaction
from ipx.marketplace import pages, service
from ipx.marketplace.models import Order
from ipx.registry.evidence import verify_bundle
from tests.conftest import ApiUser, get_counting_queries, ipx_keys
from tests.marketplace.builders import exclusive_offer, offer
from tests.marketplace.conftest import Listed, buy, noise_png

OFFER_FORM = {
    "description": "Golden light over the water", "tags": "sea, dawn", "template": "standard",
    "territory": "worldwide", "duration": "perpetual", "uses": ["web", "print"], "ai_training": "deny",
    "attribution": "yes", "commercial": "yes", "seats": "1", "price": "25.50", "currency": "EUR",
}
UUID_TEXT = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def field_errors(html: str) -> list[str]:
    return re.findall(r'class="field-error"[^>]*>([^<]*)<', html)


def checkout_key(html: str) -> str:
    found = re.search(r'name="idempotency_key" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


def order_count(client: TestClient) -> int:
    with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        return session.scalar(select(func.count()).select_from(Order)) or 0


def place_and_pay(client: TestClient, buyer: ApiUser, offer_id: str) -> str:
    """Through the pages: checkout, place the order, pay offline; returns the order id."""
    page = client.get(f"/market/checkout/{offer_id}", headers=buyer.headers)
    assert page.status_code == 200, page.text
    placed = client.post(f"/market/checkout/{offer_id}", headers=buyer.headers,
                         data={"idempotency_key": checkout_key(page.text)}, follow_redirects=False)
    assert placed.status_code == 303, placed.text
    order_url = placed.headers["location"]
    paid = client.post(f"{order_url}/pay", headers=buyer.headers)
    assert paid.status_code == 200 and "Licensed." in paid.text, paid.text
    return order_url.rsplit("/", 1)[1]


def license_id_of(client: TestClient, buyer: ApiUser, order_id: str) -> str:
    order = client.get(f"/api/v1/orders/{order_id}", headers=buyer.headers).json()
    assert order["license_id"], order
    return str(order["license_id"])


@pytest.fixture
def listed(list_work: Callable[..., Listed]) -> Listed:
    return list_work(offer(price={"amount": 2500, "currency": "EUR"}), title="Harbour at dawn", tags=["sea", "dawn"])


# --- browse -------------------------------------------------------------------------------------------------------


def test_market_search_filters_and_cards(client: TestClient, list_work: Callable[..., Listed]) -> None:
    harbour = list_work(offer(price={"amount": 2500, "currency": "EUR"}),
                        offer(template="cc-by", derivatives=True, price={"amount": 900, "currency": "USD"}),
                        title="Harbour at dawn", tags=["sea"])
    forest = list_work(exclusive_offer(), title="Forest path", tags=["trees"])

    everything = client.get("/market")
    assert everything.status_code == 200
    assert "2 listings" in everything.text
    assert f'href="/market/listings/{harbour.listing["listing_id"]}"' in everything.text
    assert f'src="/works/{harbour.work["work_id"]}/thumbnail"' in everything.text  # PNGs get a preview
    assert "from EUR 25.00 / USD 9.00" in everything.text  # the cheapest offer per currency
    assert "by Seller" in everything.text

    def titles(**params: str) -> list[str]:
        page = client.get("/market", params=params)
        assert page.status_code == 200, page.text
        return re.findall(r"<h3 dir=\"auto\">([^<]*)</h3>", page.text)

    assert titles(q="harbour sea") == ["Harbour at dawn"]
    assert titles(q="trees") == ["Forest path"]
    assert titles(q="seller") == ["Forest path", "Harbour at dawn"]  # the creator's name, newest first
    assert titles(license="exclusive") == ["Forest path"]
    assert titles(license="cc-by", currency="USD") == ["Harbour at dawn"]
    assert titles(min_price="100", currency="EUR") == ["Forest path"]  # EUR 500.00 exclusive
    assert titles(max_price="9", currency="usd") == ["Harbour at dawn"]
    assert titles(max_price="8.99", currency="USD") == []
    assert titles(min_price="25,01", currency="EUR") == ["Forest path"]  # a decimal comma, not EUR 2,501.00
    assert titles(max_price="25,00", currency="EUR") == ["Harbour at dawn"]

    assert titles(min_price="1e30", currency="EUR") == []  # beyond any price: nothing, and no overflow
    assert titles(min_price="1e999999", currency="EUR") == titles(min_price="1e400000", currency="JPY") == []
    assert titles(max_price="99999999999999999999", currency="EUR") == ["Forest path", "Harbour at dawn"]
    assert titles(page="abc") == titles(page="-3") == ["Forest path", "Harbour at dawn"]  # a hand-edited URL

    bad = client.get("/market", params={"min_price": "ten", "q": "forest", "currency": "EUR"})
    assert bad.status_code == 200
    assert "Lowest price: enter an amount like 25 or 25.50" in bad.text
    assert re.findall(r"<h3 dir=\"auto\">([^<]*)</h3>", bad.text) == ["Forest path"]
    assert 'value="forest"' in bad.text  # the search is kept in the form
    # 20 means EUR 20.00 or JPY 20: a price range needs its currency
    unclear = client.get("/market", params={"max_price": "1,2345", "currency": "EUR"})
    assert "Highest price: “1,2345” is unclear: write decimals after a point" in unclear.text
    no_currency = client.get("/market", params={"min_price": "20"})
    assert "Lowest price: choose a currency too" in no_currency.text
    assert re.findall(r"<h3 dir=\"auto\">([^<]*)</h3>", no_currency.text) == ["Forest path", "Harbour at dawn"]

    empty = client.get("/market", params={"q": "nothing like this"})
    assert "No listing matches these filters." in empty.text
    assert forest.listing["listing_id"] not in empty.text
    assert '<a class="button" href="/market">Clear filters</a>' in empty.text  # the way out, in the empty state


def test_market_from_price_is_the_cheapest_offer_the_filters_match(
    client: TestClient, list_work: Callable[..., Listed]
) -> None:
    """Filtered by "Standard", a card said "from EUR 9.00": the price of the editorial offer the filter left out."""
    list_work(offer(price={"amount": 2500, "currency": "EUR"}),
              offer(template="editorial", commercial=False, price={"amount": 900, "currency": "EUR"}),
              offer(price={"amount": 1500, "currency": "USD"}), title="Harbour at dawn")

    def from_price(**params: str) -> list[str]:
        page = client.get("/market", params=params)
        assert page.status_code == 200, page.text
        return re.findall(r'<p class="mk-price">([^<]*)</p>', page.text)

    assert from_price() == ["from EUR 9.00 / USD 15.00"]
    assert from_price(license="standard") == ["from EUR 25.00 / USD 15.00"]
    assert from_price(license="standard", currency="EUR") == ["from EUR 25.00"]
    assert from_price(currency="USD") == ["from USD 15.00"]
    assert from_price(min_price="10", currency="EUR") == ["from EUR 25.00"]


def test_market_pagination(
    client: TestClient, list_work: Callable[..., Listed], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "PAGE_SIZE", 1)
    list_work(title="Older work", tags=["sea"])
    list_work(title="Newer work", tags=["sea"])
    first = client.get("/market", params={"q": "sea"})
    assert re.findall(r"<h3 dir=\"auto\">([^<]*)</h3>", first.text) == ["Newer work"]
    assert 'href="/market?q=sea&amp;page=2"' in first.text
    second = client.get("/market", params={"q": "sea", "page": "2"})
    assert re.findall(r"<h3 dir=\"auto\">([^<]*)</h3>", second.text) == ["Older work"]
    assert 'href="/market?q=sea&amp;page=1"' in second.text
    assert "page=3" not in second.text
    past_the_end = client.get("/market", params={"q": "sea", "page": "3"})
    assert "No listings on page 3; there are 2 in all." in past_the_end.text
    assert "No listings on page 2; there is 1 in all." in client.get("/market", params={"q": "older", "page": "2"}).text
    assert "Nothing is for sale yet" not in past_the_end.text
    assert '<a class="button" href="/market?q=sea">Go to the first page</a>' in past_the_end.text
    unfiltered = client.get("/market", params={"page": "3"})
    assert '<a class="button" href="/market">Go to the first page</a>' in unfiltered.text


def test_listing_page_shows_work_terms_and_buy_buttons(
    client: TestClient, listed: Listed, make_user: Callable[..., ApiUser]
) -> None:
    listing_id, work_id, offer_id = listed.listing["listing_id"], listed.work["work_id"], listed.offer_ids[0]
    page = client.get(f"/market/listings/{listing_id}")
    assert page.status_code == 200
    assert "<h1 dir=\"auto\">Harbour at dawn</h1>" in page.text
    assert f'href="/works/{work_id}"' in page.text and f'href="/works/{work_id}/evidence.json"' in page.text
    assert "EUR 25.00" in page.text
    assert "Standard license: print and web use worldwide, perpetually." in page.text  # terms.summary
    assert f'action="/market/checkout/{offer_id}"' in page.text and "Buy this license" in page.text
    assert "Withdraw offer" not in page.text

    as_seller = client.get(f"/market/listings/{listing_id}", headers=listed.seller.headers)
    assert "Withdraw offer" in as_seller.text and "Buy this license" not in as_seller.text
    stranger = make_user("Stranger")
    refused = client.post(f"/market/offers/{offer_id}/withdraw", headers=stranger.headers)
    assert refused.status_code == 403 and "Only the seller" in refused.text
    withdrawn = client.post(f"/market/offers/{offer_id}/withdraw", headers=listed.seller.headers)
    assert withdrawn.status_code == 200 and "Withdrawn" in withdrawn.text
    assert "Buy this license" not in client.get(f"/market/listings/{listing_id}").text

    missing = client.get(f"/market/listings/{uuid.uuid4()}")
    assert missing.status_code == 404 and "No listing has the id" in missing.text
    assert client.get("/market/listings/not-a-uuid").status_code == 404


# --- sell ---------------------------------------------------------------------------------------------------------


def test_sell_form_lists_a_work_and_keeps_input_on_errors(
    client: TestClient, make_user: Callable[..., ApiUser], register_work: Callable[..., dict[str, Any]]
) -> None:
    anonymous = client.get("/market/sell", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=/market/sell"
    seller = make_user("Seller")
    work = register_work(seller, title="Harbour at dawn")
    form_page = client.get("/market/sell", params={"work_id": work["work_id"]}, headers=seller.headers)
    assert form_page.status_code == 200
    assert f'<option value="{work["work_id"]}" selected>Harbour at dawn</option>' in form_page.text

    contradictory = client.post("/market/sell", headers=seller.headers, data={
        **OFFER_FORM, "work_id": work["work_id"], "exclusive": "yes", "seats": "3", "price": "1.234",
    })
    assert contradictory.status_code == 422
    assert "An exclusive license is for one licensee: seats must be 1" in contradictory.text
    assert field_errors(contradictory.text) == ["EUR amounts have 2 decimal places"]
    assert 'value="1.234"' in contradictory.text and 'value="3"' in contradictory.text
    assert 'name="exclusive" value="yes" checked' in contradictory.text
    assert "Golden light over the water</textarea>" in contradictory.text

    no_work = client.post("/market/sell", headers=seller.headers, data={**OFFER_FORM, "work_id": ""})
    assert no_work.status_code == 422 and field_errors(no_work.text) == ["Choose one of your registered works."]
    no_uses = client.post("/market/sell", headers=seller.headers,
                          data={**OFFER_FORM, "work_id": work["work_id"], "uses": []})
    assert no_uses.status_code == 422 and len(field_errors(no_uses.text)) == 1
    for seats in ("²", "9" * 5000, "two"):  # digits int() refuses, and more digits than it converts
        odd = client.post("/market/sell", headers=seller.headers,
                          data={**OFFER_FORM, "work_id": work["work_id"], "seats": seats})
        assert odd.status_code == 422 and len(field_errors(odd.text)) == 1, seats

    others = make_user("Other")
    not_mine = client.post("/market/sell", headers=others.headers, data={**OFFER_FORM, "work_id": work["work_id"]})
    assert not_mine.status_code == 403
    assert "Only the creator who registered this work can list it." in not_mine.text

    created = client.post("/market/sell", headers=seller.headers, data={**OFFER_FORM, "work_id": work["work_id"]},
                          follow_redirects=False)
    assert created.status_code == 303
    assert re.fullmatch(rf"/market/listings/{UUID_TEXT}\?created=1", created.headers["location"])
    shown = client.get(created.headers["location"], headers=seller.headers)
    assert "<strong>Listed.</strong>" in shown.text and "EUR 25.50" in shown.text
    body = client.get("/api/v1/listings/" + created.headers["location"].split("/")[-1].split("?")[0]).json()
    assert body["tags"] == ["dawn", "sea"] and body["description"] == "Golden light over the water"
    assert body["offers"][0]["price"] == {"amount": 2550, "currency": "EUR"}
    assert body["offers"][0]["uses"] == ["print", "web"]


def test_sell_form_reads_a_decimal_comma(
    client: TestClient, make_user: Callable[..., ApiUser], register_work: Callable[..., dict[str, Any]]
) -> None:
    seller = make_user("Seller")
    work = register_work(seller)
    created = client.post("/market/sell", headers=seller.headers, data={**OFFER_FORM, "work_id": work["work_id"],
                                                                        "price": "9,99"}, follow_redirects=False)
    assert created.status_code == 303, created.text
    listing_id = created.headers["location"].split("/")[-1].split("?")[0]
    listed = client.get(f"/api/v1/listings/{listing_id}").json()
    assert listed["offers"][0]["price"] == {"amount": 999, "currency": "EUR"}


def test_a_flagged_work_is_refused_with_the_reason(
    client: TestClient, make_user: Callable[..., ApiUser]
) -> None:
    first, copier = make_user("First"), make_user("Copier")
    data = noise_png(9_001)
    assert first.register(data, title="Original").status_code == 201
    copied = copier.register(data, title="Copy")
    assert copied.status_code == 201, copied.text
    refused = client.post("/market/sell", headers=copier.headers,
                          data={**OFFER_FORM, "work_id": copied.json()["work_id"]})
    assert refused.status_code == 409
    assert "matches an earlier registration by another account" in refused.text
    assert 'value="25.50"' in refused.text  # the offer is kept for after the review


# --- buy ----------------------------------------------------------------------------------------------------------


def test_checkout_places_one_order_per_form_and_pays_offline(
    client: TestClient, listed: Listed, make_user: Callable[..., ApiUser]
) -> None:
    offer_id = listed.offer_ids[0]
    anonymous = client.get(f"/market/checkout/{offer_id}", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == f"/login?next=/market/checkout/{offer_id}"

    buyer = make_user("Buyer")
    page = client.get(f"/market/checkout/{offer_id}", headers=buyer.headers)
    assert page.status_code == 200
    assert "EUR 25.00" in page.text and "Standard license: print and web use" in page.text
    key = checkout_key(page.text)
    assert checkout_key(client.get(f"/market/checkout/{offer_id}", headers=buyer.headers).text) != key

    first = client.post(f"/market/checkout/{offer_id}", headers=buyer.headers, data={"idempotency_key": key},
                        follow_redirects=False)
    again = client.post(f"/market/checkout/{offer_id}", headers=buyer.headers, data={"idempotency_key": key},
                        follow_redirects=False)
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]  # a double submit is the same order
    assert order_count(client) == 1

    order_page = client.get(first.headers["location"], headers=buyer.headers)
    assert "Waiting for payment" in order_page.text and "Pay (offline test payment)" in order_page.text
    paid = client.post(first.headers["location"] + "/pay", headers=buyer.headers)
    assert paid.status_code == 200
    assert "<strong>Licensed.</strong>" in paid.text and "Pay (offline test payment)" not in paid.text
    order_id = first.headers["location"].rsplit("/", 1)[1]
    assert f'href="/licenses/{license_id_of(client, buyer, order_id)}"' in paid.text

    purchases = client.get("/me/purchases", headers=buyer.headers)
    assert purchases.status_code == 200
    assert "Harbour at dawn" in purchases.text and "Licensed" in purchases.text and "EUR 25.00" in purchases.text
    license_id = license_id_of(client, buyer, order_id)
    assert f'href="/licenses/{license_id}/evidence.json"' in purchases.text
    assert f'href="/licenses/{license_id}/certificate"' in purchases.text


def test_purchases_come_a_page_at_a_time(
    client: TestClient, list_work: Callable[..., Listed], make_user: Callable[..., ApiUser],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """/me/purchases listed every order on one page, however many a buyer had."""
    monkeypatch.setattr(service, "PAGE_SIZE", 2)
    buyer = make_user("Buyer")
    for title in ("First buy", "Second buy", "Third buy"):
        buy(client, buyer, list_work(title=title).offer_ids[0])

    def titles(html: str) -> list[str]:
        return re.findall(r'<strong dir="auto">([^<]*)</strong>', html)

    first = client.get("/me/purchases", headers=buyer.headers).text
    assert titles(first) == ["Third buy", "Second buy"] and "3 orders, newest first." in first
    assert 'href="/me/purchases?page=2">Older →</a>' in first and "Newer</a>" not in first
    second = client.get("/me/purchases", params={"page": "2"}, headers=buyer.headers).text
    assert titles(second) == ["First buy"] and "page 2" in second
    assert 'href="/me/purchases?page=1">← Newer</a>' in second and "Older →</a>" not in second
    assert second.count('/file" download') == 1  # its license's file, as on the first page
    beyond = client.get("/me/purchases", params={"page": "3"}, headers=buyer.headers).text
    assert "There is no page 3." in beyond and 'href="/me/purchases">Back to the newest</a>' in beyond


def page_and_queries(client: TestClient, path: str, user: ApiUser) -> tuple[str, int]:
    """A page as `user` sees it, and how many SQL statements it took to make."""
    page, queries = get_counting_queries(client, path, user.headers)
    assert page.status_code == 200, page.text
    return page.text, queries


def test_purchases_page_asks_the_same_queries_for_one_license_or_many(
    client: TestClient, list_work: Callable[..., Listed], make_user: Callable[..., ApiUser],
) -> None:
    """Each row's download check (revoked, ended, held by a complaint) ran its own queries, four a license."""
    few, many = make_user("Few"), make_user("Many")
    for position in range(4):
        listed = list_work(title=f"Work {position}")
        buy(client, many, listed.offer_ids[0])
        if position == 0:
            buy(client, few, listed.offer_ids[0])
    pages = {buyer: page_and_queries(client, "/me/purchases", buyer) for buyer in (few, many)}
    assert [page.count('/file" download') for page, _ in pages.values()] == [1, 4]
    assert pages[few][1] == pages[many][1]


def test_listing_search_asks_the_same_queries_for_one_offer_or_many(
    client: TestClient, list_work: Callable[..., Listed], make_user: Callable[..., ApiUser],
) -> None:
    """Each offer's availability (sold, suspended, taken down, scope licensed) ran four queries of its own: a page
    of 20 listings asked 110, most of a search's time on PostgreSQL (bench/marketplace.py)."""
    visitor = make_user("Visitor")
    list_work(offer(), title="Lighthouse 0")
    search = "/api/v1/listings?q=lighthouse"
    _, one_offer = page_and_queries(client, search, visitor)
    list_work(exclusive_offer(territory=["DE"]), offer(territory=["FR"]), title="Lighthouse 1")
    list_work(offer(), offer(price={"amount": 900, "currency": "EUR"}), title="Lighthouse 2")
    body, five_offers = page_and_queries(client, search, visitor)
    offers = [offer for hit in json.loads(body)["items"] for offer in hit["offers"]]
    assert len(offers) == 5 and [offer["unavailable_reason"] for offer in offers] == [None] * 5
    assert five_offers == one_offer


def test_checkout_refusals_are_shown_on_the_page(
    client: TestClient, list_work: Callable[..., Listed], make_user: Callable[..., ApiUser]
) -> None:
    listed = list_work(exclusive_offer(), title="Only one")
    offer_id = listed.offer_ids[0]
    own = client.get(f"/market/checkout/{offer_id}", headers=listed.seller.headers)
    assert "you cannot buy a license to your own work" in own.text and "Place order" not in own.text
    own_post = client.post(f"/market/checkout/{offer_id}", headers=listed.seller.headers,
                           data={"idempotency_key": "k1"})
    assert own_post.status_code == 403 and "You cannot buy a license to your own work." in own_post.text

    winner, late = make_user("Winner"), make_user("Late")
    late_form = client.get(f"/market/checkout/{offer_id}", headers=late.headers)
    place_and_pay(client, winner, offer_id)
    too_late = client.post(f"/market/checkout/{offer_id}", headers=late.headers,
                           data={"idempotency_key": checkout_key(late_form.text)})
    assert too_late.status_code == 409
    assert "This offer was an exclusive license and has been sold." in too_late.text
    assert order_count(client) == 1

    missing = client.get(f"/market/checkout/{uuid.uuid4()}", headers=late.headers)
    assert missing.status_code == 404 and "No offer has the id" in missing.text


def test_cancel_a_pending_order(client: TestClient, listed: Listed, make_user: Callable[..., ApiUser]) -> None:
    buyer = make_user("Buyer")
    page = client.get(f"/market/checkout/{listed.offer_ids[0]}", headers=buyer.headers)
    placed = client.post(f"/market/checkout/{listed.offer_ids[0]}", headers=buyer.headers,
                         data={"idempotency_key": checkout_key(page.text)}, follow_redirects=False)
    cancelled = client.post(placed.headers["location"] + "/cancel", headers=buyer.headers)
    assert cancelled.status_code == 200 and "<strong>Cancelled.</strong>" in cancelled.text
    again = client.post(placed.headers["location"] + "/pay", headers=buyer.headers)
    assert again.status_code == 409 and "cancelled and cannot be confirmed" in again.text


# --- accounts: who sees what ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/me/purchases", "/me/sales", "/market/sell"])
def test_account_pages_send_anonymous_visitors_to_log_in(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/login?next={path}"


def test_orders_are_private_to_buyer_and_seller(
    client: TestClient, listed: Listed, make_user: Callable[..., ApiUser]
) -> None:
    buyer, stranger = make_user("Buyer"), make_user("Stranger")
    order_id = place_and_pay(client, buyer, listed.offer_ids[0])
    assert client.get(f"/market/orders/{order_id}", headers=listed.seller.headers).status_code == 200
    hidden = client.get(f"/market/orders/{order_id}", headers=stranger.headers)
    assert hidden.status_code == 404 and "No order has the id" in hidden.text
    assert "Harbour at dawn" not in client.get("/me/purchases", headers=stranger.headers).text
    assert "Harbour at dawn" not in client.get("/me/sales", headers=stranger.headers).text
    assert "Harbour at dawn" not in client.get("/me/sales", headers=buyer.headers).text
    assert client.post(f"/market/orders/{order_id}/refund", headers=stranger.headers).status_code == 404
    refused = client.post(f"/market/orders/{order_id}/refund", headers=buyer.headers)
    assert refused.status_code == 403 and "Only the seller or IPX staff can refund" in refused.text
    assert client.post(f"/market/orders/{order_id}/pay", headers=stranger.headers).status_code == 404


def test_sales_balance_refund_and_license_revocation(
    client: TestClient, listed: Listed, make_user: Callable[..., ApiUser]
) -> None:
    buyer = make_user("Buyer")
    order_id = place_and_pay(client, buyer, listed.offer_ids[0])
    license_id = license_id_of(client, buyer, order_id)

    sales = client.get("/me/sales", headers=listed.seller.headers)
    assert sales.status_code == 200
    assert re.findall(r'mk-balance-amount">([^<]*)<', sales.text)[0] == "EUR 22.50"  # 25.00 less the 10 % fee
    assert f'action="/market/orders/{order_id}/refund"' in sales.text

    active = client.get(f"/licenses/{license_id}")
    assert active.status_code == 200
    assert "Active license." in active.text and "Buyer" in active.text and "Seller" in active.text
    assert "EUR 25.00" in active.text and "Standard license: print and web use" in active.text

    refunded = client.post(f"/market/orders/{order_id}/refund", headers=listed.seller.headers,
                           data={"reason": "wrong file delivered"}, follow_redirects=False)
    assert refunded.status_code == 303 and refunded.headers["location"] == f"/me/sales?refunded={order_id}"
    after = client.get(refunded.headers["location"], headers=listed.seller.headers)
    assert "<strong>Refunded.</strong>" in after.text
    assert re.findall(r'mk-balance-amount">([^<]*)<', after.text)[0] == "EUR 0.00"
    assert f'action="/market/orders/{order_id}/refund"' not in after.text

    purchases = client.get("/me/purchases", headers=buyer.headers).text
    assert f'href="/licenses/{license_id}/file"' not in purchases and "License ended" in purchases
    gone = client.get(f"/licenses/{license_id}/file", headers=buyer.headers)
    assert gone.status_code == 410 and f'href="/licenses/{license_id}">Back to the license</a>' in gone.text

    revoked = client.get(f"/licenses/{license_id}")
    body = client.get(f"/api/v1/licenses/{license_id}").json()
    assert "Revoked license." in revoked.text and "wrong file delivered" in revoked.text
    assert f"entry #{body['revocation']['log_index']} of the public log" in revoked.text
    assert f'href="/api/v1/licenses/{license_id}/revocation/evidence"' in revoked.text
    twice = client.post(f"/market/orders/{order_id}/refund", headers=listed.seller.headers)
    assert twice.status_code == 409 and "only fulfilled orders can be refunded" in twice.text


def test_sales_show_each_co_created_sale_split_as_the_ledger_recorded_it(
    client: TestClient, list_work: Callable[..., Listed], make_user: Callable[..., ApiUser],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    co_created = list_work(offer(price={"amount": 10001, "currency": "EUR"}), title="Duet",
                           creators='[{"name": "Ana Lead", "share": 70}, {"name": "Ben Second", "share": 30}]')
    solo = list_work(seller=co_created.seller, title="Solo")
    buyer = make_user("Buyer")
    duet_order = buy(client, buyer, co_created.offer_ids[0])["order_id"]
    solo_order = buy(client, buyer, solo.offer_ids[0])["order_id"]

    sales = client.get("/me/sales", headers=co_created.seller.headers).text
    rows = {order_id: row for row in sales.split("<tr>")[2:] for order_id in (duet_order, solo_order)
            if order_id[:8] in row}
    # EUR 100.01 less the 10 % fee (EUR 10.00) is EUR 90.01; the odd cent goes to the larger remainder
    split = ('<ul><li><span dir="auto">Ana Lead</span> <span class="mk-split-share">70% · EUR 63.01</span></li>'
             '<li><span dir="auto">Ben Second</span> <span class="mk-split-share">30% · EUR 27.00</span></li></ul>')
    assert split in rows[duet_order]  # one part an item: the name, then its share and amount (never broken)
    assert "mk-split-share" not in rows[solo_order]
    assert "mk-split-none" in rows[solo_order]  # a phone hides the empty cell
    # the Listings tile counts them all, names the newest and says how many it left out
    monkeypatch.setattr(pages, "SALES_LISTINGS_NAMED", 1)
    tile = client.get("/me/sales", headers=co_created.seller.headers).text
    assert re.findall(r'mk-balance-amount">([^<]*)<', tile)[2] == "2"
    assert '>Solo</a> and 1 more</p>' in tile


def test_sales_come_a_page_at_a_time_and_the_tiles_count_them_all(
    client: TestClient, list_work: Callable[..., Listed], make_user: Callable[..., ApiUser],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """/me/sales listed every order on one page, however many a seller had, and its tiles counted that list."""
    monkeypatch.setattr(service, "PAGE_SIZE", 2)
    seller, buyer = make_user("Seller"), make_user("Buyer")
    orders = [buy(client, buyer, list_work(seller=seller, title=title).offer_ids[0])["order_id"]
              for title in ("First sale", "Second sale", "Third sale")]
    refunded = client.post(f"/market/orders/{orders[0]}/refund", headers=seller.headers, follow_redirects=False)
    assert refunded.status_code == 303

    def titles(html: str) -> list[str]:
        return re.findall(r'<strong dir="auto">([^<]*)</strong>', html)

    def tiles(html: str) -> list[str]:
        return re.findall(r'mk-balance-amount">([^<]*)<', html)[1:]  # after the balance: licensed sales, listings

    first = client.get(refunded.headers["location"], headers=seller.headers).text
    assert titles(first) == ["Third sale", "Second sale"] and "3 orders, newest first." in first
    assert "<strong>Refunded.</strong>" in first  # the refunded sale is on page 2, the notice on the page shown
    assert tiles(first) == ["2", "3"] and "of 3 orders in all" in first
    assert 'href="/me/sales?page=2">Older →</a>' in first and "Newer</a>" not in first
    second = client.get("/me/sales", params={"page": "2"}, headers=seller.headers).text
    assert titles(second) == ["First sale"] and "page 2" in second and "Refunded</span>" in second
    assert tiles(second) == ["2", "3"] and "of 3 orders in all" in second
    assert 'href="/me/sales?page=1">← Newer</a>' in second and "Older →</a>" not in second
    beyond = client.get("/me/sales", params={"page": "3"}, headers=seller.headers).text
    assert "There is no page 3." in beyond and 'href="/me/sales">Back to the newest</a>' in beyond
    assert tiles(beyond) == ["2", "3"]


def test_sales_page_asks_the_same_queries_for_one_sale_or_many(
    client: TestClient, list_work: Callable[..., Listed], make_user: Callable[..., ApiUser],
) -> None:
    """A paged table keeps each row's license and split lookups batched, and the tiles' counts are single queries."""
    few, many, buyer = make_user("Few"), make_user("Many"), make_user("Buyer")
    for position in range(4):  # as many listings each, so that only the sales differ
        buy(client, buyer, list_work(seller=many, title=f"Work {position}").offer_ids[0])
        sold_once = list_work(seller=few, title=f"Work {position}")
        if position == 0:
            buy(client, buyer, sold_once.offer_ids[0])
    pages = {seller: page_and_queries(client, "/me/sales", seller) for seller in (few, many)}
    assert [page.count('class="mk-refund"') for page, _ in pages.values()] == [1, 4]
    assert pages[few][1] == pages[many][1]


def test_license_evidence_and_printable_certificate(
    client: TestClient, listed: Listed, make_user: Callable[..., ApiUser]
) -> None:
    buyer = make_user("Buyer")
    license_id = license_id_of(client, buyer, place_and_pay(client, buyer, listed.offer_ids[0]))
    download = client.get(f"/licenses/{license_id}/evidence.json")
    assert download.status_code == 200
    assert download.headers["content-disposition"] == f'attachment; filename="ipx-license-{license_id}.json"'
    bundle = download.json()
    assert bundle["statement"]["license_id"] == license_id
    assert verify_bundle(bundle, None, ipx_keys(client)).ok

    certificate = client.get(f"/licenses/{license_id}/certificate")
    assert certificate.status_code == 200
    assert "<svg" in certificate.text and f"http://testserver/licenses/{license_id}" in certificate.text
    assert "License certificate" in certificate.text and "REVOKED" not in certificate.text

    for path in (f"/licenses/{uuid.uuid4()}", f"/licenses/{uuid.uuid4()}/evidence.json", "/licenses/nope"):
        missing = client.get(path)
        assert missing.status_code == 404 and 'class="error-code"' in missing.text


def test_navigation_links(client: TestClient, make_user: Callable[..., ApiUser]) -> None:
    anonymous = client.get("/market").text
    assert 'href="/market">Market</a>' in anonymous and 'href="/me/purchases"' not in anonymous
    assert 'href="/complaints/new">Report infringement</a>' in anonymous and 'href="/stats">Statistics</a>' in anonymous
    member = client.get("/market", headers=make_user("Member").headers).text
    for link in ('href="/market/sell">Sell</a>', 'href="/me/purchases">Purchases</a>', 'href="/me/sales">Sales</a>'):
        assert link in member
    assert 'href="/staff/complaints"' not in member


# --- Stripe: the page shows what the provider returned ---------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_stripe_checkout_shows_the_payment_intent(
    make_settings: Callable[..., Any], localstripe_url: str
) -> None:
    from ipx.app import create_app

    settings = make_settings(payment_provider="stripe", stripe_api_key="sk_test_ipx_pages",
                             stripe_api_base=localstripe_url, stripe_webhook_secret="whsec_pages")
    with TestClient(create_app(settings)) as stripe_client:
        seller, buyer = ApiUser(stripe_client, "s@example.org", "Seller"), ApiUser(stripe_client, "b@example.org", "B")
        work = seller.register(noise_png(77), title="Stripe work").json()
        listing = stripe_client.post("/api/v1/listings", headers=seller.headers,
                                     json={"work_id": work["work_id"], "offers": [offer()]}).json()
        offer_id = listing["offers"][0]["offer_id"]
        page = stripe_client.get(f"/market/checkout/{offer_id}", headers=buyer.headers)
        assert "Payment by Stripe" in page.text
        placed = stripe_client.post(f"/market/checkout/{offer_id}", headers=buyer.headers,
                                    data={"idempotency_key": checkout_key(page.text)})
        assert placed.status_code == 200, placed.text
        order = client_order(stripe_client, buyer, placed.url.path.rsplit("/", 1)[1])
        assert order["payment"]["reference"].startswith("pi_")
        assert "Waiting for Stripe." in placed.text and order["payment"]["reference"] in placed.text
        assert "these pages cannot take card details" in placed.text  # no publishable key: said, not promised
        assert "Pay (offline test payment)" not in placed.text


def client_order(client: TestClient, buyer: ApiUser, order_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/orders/{order_id}", headers=buyer.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())

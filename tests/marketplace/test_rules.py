"""Listing and buying rules, each refusal a clear problem+json: ownership, registry state, terms,
exclusivity by territory and period, hidden listings, suspended sales, idempotency, permissions."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from ipx.db import transaction, utcnow
from ipx.marketplace import service
from ipx.marketplace.models import Offer, Order
from ipx.registry.models import PriorMatch, Work
from tests.marketplace.builders import exclusive_offer, offer
from tests.marketplace.conftest import buy, noise_png


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["detail"].endswith(".")
    return body


def db(client):
    return transaction(client.app.state.session_factory)


def post_listing(client, user, work_id, *offers, **extra):
    return client.post("/api/v1/listings", headers=user.headers,
                       json={"work_id": work_id, "offers": list(offers) or [offer()], **extra})


def test_only_the_owner_lists_and_nobody_buys_their_own(client, make_user, register_work, list_work):
    owner, stranger = make_user("Owner"), make_user("Stranger")
    work = register_work(owner)
    problem(post_listing(client, stranger, work["work_id"]), 403)
    problem(client.post("/api/v1/listings", json={"work_id": work["work_id"], "offers": [offer()]}), 401)
    listed = list_work(seller=owner)
    own = client.post("/api/v1/orders", headers=owner.headers, json={"offer_id": listed.offer_ids[0]})
    assert "your own work" in problem(own, 403)["detail"]


def test_bad_terms_are_422_with_locations(client, make_user, register_work):
    seller = make_user()
    work_id = register_work(seller)["work_id"]
    cases = [
        (offer(price={"amount": -100, "currency": "EUR"}), "price"),
        (offer(price={"amount": 0, "currency": "EUR"}), "price"),
        (offer(price={"amount": 100, "currency": "XYZ"}), "currency"),
        (exclusive_offer(seats=3), "seats must be 1"),
        (offer(duration={"until": "2001-01-01"}), "until"),
        (offer(uses=["print"], print_run_cap=2**53), "print_run_cap"),  # would not sign as canonical JSON
    ]
    for bad, where in cases:
        body = problem(post_listing(client, seller, work_id, bad), 422)
        assert where in str(body["errors"]) or where in body["detail"], body


def test_registry_state_gates_listing(client, make_user, register_work):
    first, copier = make_user("First"), make_user("Copier")
    image = noise_png(424242)
    assert first.register(image, title="Original").status_code == 201
    copy = copier.register(image, title="Copy")
    assert copy.status_code == 201 and copy.json()["prior_similar"]
    copy_id = copy.json()["work_id"]
    assert "cleared" in problem(post_listing(client, copier, copy_id), 409)["detail"]
    with db(client) as session:  # what the staff review (built elsewhere) does
        session.execute(update(PriorMatch).where(PriorMatch.work_id == copy_id).values(review_status="upheld"))
    assert "copies an earlier registration" in problem(post_listing(client, copier, copy_id), 409)["detail"]
    with db(client) as session:
        session.execute(update(PriorMatch).where(PriorMatch.work_id == copy_id).values(review_status="cleared"))
    assert post_listing(client, copier, copy_id).status_code == 201

    disputed = register_work(first)["work_id"]
    with db(client) as session:
        session.execute(update(Work).where(Work.id == disputed).values(status="disputed"))
    assert "disputed" in problem(post_listing(client, first, disputed), 409)["detail"]


def test_exclusive_sale_withdraws_other_offers_and_blocks_overlaps(client, make_user, list_work):
    listed = list_work(exclusive_offer(territory=["DE", "AT"], duration={"until": "2099-12-31"}), offer())
    exclusive_id, standard_id = listed.offer_ids
    buyer = make_user("Buyer")
    buy(client, buyer, exclusive_id)
    statuses = {o["offer_id"]: o["status"]
                for o in client.get(f"/api/v1/listings/{listed.listing['listing_id']}").json()["offers"]}
    assert statuses == {exclusive_id: "sold", standard_id: "withdrawn"}
    reasons = {o["offer_id"]: o["unavailable_reason"]
               for o in client.get(f"/api/v1/listings/{listed.listing['listing_id']}").json()["offers"]}
    assert "has been sold" in reasons[exclusive_id] and "withdrawn" in reasons[standard_id]
    again = client.post("/api/v1/orders", headers=make_user().headers, json={"offer_id": standard_id})
    assert problem(again, 409)["offer_id"] == standard_id

    work_id = listed.work["work_id"]
    conflict = problem(post_listing(client, listed.seller, work_id, offer(territory=["worldwide"])), 409)
    assert conflict["license_id"]
    problem(post_listing(client, listed.seller, work_id, offer(territory=["AT"], duration={"until": "2030-01-01"})),
            409)
    assert post_listing(client, listed.seller, work_id, offer(territory=["FR", "IT"])).status_code == 201


def test_refunding_an_exclusive_sale_puts_back_the_offers_it_took_off_sale(client, make_user, list_work):
    """Refunding the exclusive sale left its offer 'sold' and its siblings withdrawn: a dead listing."""
    listed = list_work(exclusive_offer(territory=["DE", "AT"]), offer(), exclusive_offer(), offer())
    exclusive_id, standard_id, worldwide_exclusive_id, sellers_own_id = listed.offer_ids
    assert client.post(f"/api/v1/offers/{sellers_own_id}/withdraw", headers=listed.seller.headers).status_code == 200
    sale = buy(client, make_user("Buyer"), exclusive_id)
    meanwhile = post_listing(client, listed.seller, listed.work["work_id"], offer(territory=["FR"])).json()
    buy(client, make_user("French buyer"), meanwhile["offers"][0]["offer_id"])  # now holds FR, outside DE and AT

    refund = client.post(f"/api/v1/orders/{sale['order_id']}/refund", headers=listed.seller.headers,
                         json={"reason": "The buyer changed their mind"})
    assert refund.status_code == 200, refund.text
    offers = {o["offer_id"]: o for o in client.get(f"/api/v1/listings/{listed.listing['listing_id']}").json()["offers"]}
    assert {offer_id: o["status"] for offer_id, o in offers.items()} == {
        exclusive_id: "active", standard_id: "active",
        worldwide_exclusive_id: "withdrawn",  # the French license now stands in its way
        sellers_own_id: "withdrawn",  # the seller's own decision is not undone
    }
    assert offers[exclusive_id]["unavailable_reason"] is None and offers[standard_id]["unavailable_reason"] is None
    assert listed.listing["listing_id"] in [i["listing_id"] for i in client.get("/api/v1/listings").json()["items"]]
    assert buy(client, make_user("Next buyer"), exclusive_id)["status"] == "fulfilled"


def test_offers_withdrawn_after_an_exclusive_sale_stay_withdrawn_after_its_refund(client, make_user, list_work):
    """Withdrawing an offer already off sale for the exclusive sale (or the sold offer itself) answered 200 and changed
    nothing, so the refund put both back on sale."""
    listed = list_work(exclusive_offer(), offer())
    exclusive_id, standard_id = listed.offer_ids
    sale = buy(client, make_user("Buyer"), exclusive_id)
    for offer_id in (exclusive_id, standard_id):
        assert client.post(f"/api/v1/offers/{offer_id}/withdraw", headers=listed.seller.headers).status_code == 200

    assert client.post(f"/api/v1/orders/{sale['order_id']}/refund", headers=listed.seller.headers,
                       json={"reason": "Refunded"}).status_code == 200

    offers = client.get(f"/api/v1/listings/{listed.listing['listing_id']}").json()["offers"]
    assert {o["offer_id"]: o["status"] for o in offers} == {exclusive_id: "withdrawn", standard_id: "withdrawn"}


def test_exclusive_offer_needs_its_scope_free_of_other_licenses(client, make_user, list_work):
    listed = list_work(offer(territory=["FR"]))
    buy(client, make_user(), listed.offer_ids[0])
    work_id = listed.work["work_id"]
    problem(post_listing(client, listed.seller, work_id, exclusive_offer(territory=["FR", "BE"])), 409)
    assert post_listing(client, listed.seller, work_id, exclusive_offer(territory=["BE"])).status_code == 201


def test_an_offer_that_cannot_be_bought_says_why_before_checkout(client, make_user, list_work):
    listed = list_work(offer(), exclusive_offer())
    standard_id, exclusive_id = listed.offer_ids
    listing_id = listed.listing["listing_id"]
    buy(client, make_user(), standard_id)  # a non-exclusive license now holds the exclusive offer's whole scope
    offers = {o["offer_id"]: o for o in client.get(f"/api/v1/listings/{listing_id}").json()["offers"]}
    assert offers[standard_id]["unavailable_reason"] is None
    reason = offers[exclusive_id]["unavailable_reason"]
    assert offers[exclusive_id]["status"] == "active" and "can no longer be licensed exclusively" in reason
    buyer = make_user()
    assert problem(client.post("/api/v1/orders", headers=buyer.headers, json={"offer_id": exclusive_id}),
                   409)["detail"] == reason
    page = client.get(f"/market/listings/{listing_id}").text
    assert reason in page and "Not available now" in page
    assert f"/market/checkout/{exclusive_id}" not in page and f"/market/checkout/{standard_id}" in page
    checkout = client.get(f"/market/checkout/{exclusive_id}", headers=buyer.headers).text
    assert reason in checkout and "Place order" not in checkout


def test_hidden_listing_and_suspended_sales(client, make_user, list_work, register_work, staff):
    listed = list_work(title="Quiet lagoon")
    listing_id, offer_id, work_id = listed.listing["listing_id"], listed.offer_ids[0], listed.work["work_id"]
    buyer = make_user()
    placed = client.post("/api/v1/orders", headers=buyer.headers, json={"offer_id": offer_id}).json()
    with db(client) as session:
        service.hide_listing(session, listing_id, actor_id=None, reason="complaint 7")
        service.hide_listing(session, listing_id, actor_id=None, reason="complaint 7")  # idempotent
    assert client.get("/api/v1/listings", params={"q": "lagoon"}).json()["total"] == 0
    problem(client.get(f"/api/v1/listings/{listing_id}"), 404)
    assert client.get(f"/api/v1/listings/{listing_id}", headers=listed.seller.headers).json()["status"] == "hidden"
    problem(client.post("/api/v1/orders", headers=buyer.headers, json={"offer_id": offer_id}), 409)
    failed = client.post(f"/api/v1/orders/{placed['order_id']}/confirm", headers=buyer.headers)
    assert "taken down" in problem(failed, 409)["detail"]
    assert client.get(f"/api/v1/orders/{placed['order_id']}", headers=buyer.headers).json()["status"] == "failed"

    with db(client) as session:
        service.restore_listing(session, listing_id, actor_id=None, reason="complaint rejected")
        service.suspend_sales(session, work_id, actor_id=None, reason="court order")
    assert client.get(f"/api/v1/listings/{listing_id}").json()["sales_suspended"] is True
    assert "suspended" in problem(
        client.post("/api/v1/orders", headers=buyer.headers, json={"offer_id": offer_id}), 409)["detail"]
    problem(post_listing(client, listed.seller, work_id), 409)
    with db(client) as session:
        service.resume_sales(session, work_id, actor_id=None, reason="order lifted")
    assert buy(client, buyer, offer_id)["status"] == "fulfilled"
    with db(client) as session:
        actions = [e.action for e in service.audit_service.for_subject(session, "listing", listing_id)]
    assert actions == ["listing.created", "listing.hidden", "listing.restored"]


def test_idempotency_key_returns_the_same_order(client, make_user, list_work):
    listed = list_work(offer(), offer(template="extended", price={"amount": 9900, "currency": "USD"}))
    buyer, other = make_user(), make_user()
    first = client.post("/api/v1/orders", headers={**buyer.headers, "Idempotency-Key": "k-1"},
                        json={"offer_id": listed.offer_ids[0]})
    again = client.post("/api/v1/orders", headers={**buyer.headers, "Idempotency-Key": "k-1"},
                        json={"offer_id": listed.offer_ids[0]})
    assert first.status_code == again.status_code == 201
    assert first.json()["order_id"] == again.json()["order_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    problem(client.post("/api/v1/orders", headers={**buyer.headers, "Idempotency-Key": "k-1"},
                        json={"offer_id": listed.offer_ids[1]}), 409)
    theirs = client.post("/api/v1/orders", headers={**other.headers, "Idempotency-Key": "k-1"},
                         json={"offer_id": listed.offer_ids[0]})
    assert theirs.status_code == 201 and theirs.json()["order_id"] != first.json()["order_id"]
    with db(client) as session:
        assert len(session.scalars(select(Order).where(Order.buyer_id == buyer.account_id)).all()) == 1


def test_permissions_on_orders_refunds_and_ledger(client, make_user, list_work, staff):
    listed = list_work()
    buyer, stranger = make_user(), make_user()
    placed = client.post("/api/v1/orders", headers=buyer.headers, json={"offer_id": listed.offer_ids[0]}).json()
    problem(client.get(f"/api/v1/orders/{placed['order_id']}", headers=stranger.headers), 404)
    assert client.get(f"/api/v1/orders/{placed['order_id']}", headers=listed.seller.headers).status_code == 200
    problem(client.post(f"/api/v1/orders/{placed['order_id']}/confirm", headers=listed.seller.headers), 403)
    problem(client.post(f"/api/v1/orders/{placed['order_id']}/refund", headers=listed.seller.headers), 409)
    confirmed = client.post(f"/api/v1/orders/{placed['order_id']}/confirm", headers=buyer.headers).json()
    assert confirmed["status"] == "fulfilled"
    problem(client.post(f"/api/v1/orders/{placed['order_id']}/refund", headers=buyer.headers), 403)
    problem(client.get("/api/v1/ledger/summary", headers=buyer.headers), 403)
    refunded = client.post(f"/api/v1/orders/{placed['order_id']}/refund", headers=staff)
    assert refunded.status_code == 200 and refunded.json()["status"] == "refunded"
    problem(client.post(f"/api/v1/orders/{placed['order_id']}/refund", headers=staff), 409)

    cancelled = client.post("/api/v1/orders", headers=buyer.headers, json={"offer_id": listed.offer_ids[0]}).json()
    assert client.post(f"/api/v1/orders/{cancelled['order_id']}/cancel",
                       headers=buyer.headers).json()["status"] == "cancelled"
    problem(client.post(f"/api/v1/orders/{cancelled['order_id']}/confirm", headers=buyer.headers), 409)
    with db(client) as session:
        actions = [e.action for e in service.audit_service.for_subject(session, "order", placed["order_id"])]
    assert actions == ["order.created", "order.paid", "order.fulfilled", "order.refunded"]


def test_search_filters_and_pages(client, make_user, list_work, monkeypatch):
    painter = make_user("Mira Painter")
    list_work(offer(price={"amount": 1000, "currency": "EUR"}), seller=painter, title="Red fox", tags=["animals"])
    list_work(offer(template="cc-by", derivatives=True, price={"amount": 300, "currency": "USD"}),
              seller=painter, title="Blue whale", tags=["animals", "ocean"])
    for n in range(22):
        list_work(offer(price={"amount": 5000 + n, "currency": "GBP"}), title=f"Filler {n}")

    def ids(**params):
        body = client.get("/api/v1/listings", params=params).json()
        return {item["title"] for item in body["items"]}, body["total"]

    assert ids(q="mira animals") == ({"Red fox", "Blue whale"}, 2)
    assert ids(q="whale ocean")[0] == {"Blue whale"}
    assert ids(license="cc-by")[0] == {"Blue whale"}
    assert ids(currency="eur", max_price=1000)[0] == {"Red fox"}
    assert ids(currency="EUR", min_price=1001)[1] == 0
    assert ids(q="filler", min_price=5010, currency="GBP")[1] == 12
    first, second = ids(q="filler", page=1), ids(q="filler", page=2)
    assert first[1] == 22 and len(first[0]) == 20 and len(second[0]) == 2 and not first[0] & second[0]
    assert ids(q="100%_")[1] == 0
    assert client.get("/api/v1/listings", params={"q": "filler"}).json()["total_exact"] is True
    monkeypatch.setattr(service, "COUNT_CAP", 5)
    capped = client.get("/api/v1/listings", params={"q": "filler"}).json()
    assert (capped["total"], capped["total_exact"], len(capped["items"])) == (5, False, 20)
    problem(client.get("/api/v1/listings", params={"license": "bogus"}), 422)


def test_sales_summary_for_statistics(client, make_user, list_work):
    start = utcnow() - timedelta(minutes=1)
    listed = list_work(offer(price={"amount": 1000, "currency": "EUR"}),
                       offer(template="extended", price={"amount": 700, "currency": "USD"}))
    buyer = make_user()
    buy(client, buyer, listed.offer_ids[0])
    buy(client, buyer, listed.offer_ids[0])
    buy(client, buyer, listed.offer_ids[1])
    list_work()
    with db(client) as session:
        summary = service.sales_summary(session, start, utcnow() + timedelta(minutes=1))
        empty = service.sales_summary(session, start - timedelta(days=2), start - timedelta(days=1))
    assert summary == {
        "count": 3,
        "by_currency": {"EUR": 2000, "USD": 700},
        "by_license_type": {"standard": {"count": 2, "by_currency": {"EUR": 2000}},
                            "extended": {"count": 1, "by_currency": {"USD": 700}}},
        "listings_created": 2,
    }
    assert empty == {"count": 0, "by_currency": {}, "by_license_type": {}, "listings_created": 0}

    problem(client.post(f"/api/v1/offers/{listed.offer_ids[1]}/withdraw", headers=buyer.headers), 403)
    withdrawn = client.post(f"/api/v1/offers/{listed.offer_ids[1]}/withdraw", headers=listed.seller.headers)
    assert withdrawn.json()["status"] == "withdrawn"
    problem(client.post("/api/v1/orders", headers=buyer.headers, json={"offer_id": listed.offer_ids[1]}), 409)
    with db(client) as session:
        assert session.get(Offer, listed.offer_ids[0]).status == "active"

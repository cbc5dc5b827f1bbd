"""hide_listing and suspend_sales go through the marketplace service, and restore undoes both."""

from __future__ import annotations

from ipx.db import transaction
from ipx.marketplace import service as marketplace_service
from tests.complaints.conftest import act, file, notice
from tests.marketplace.builders import offer
from tests.marketplace.conftest import buy


def test_hide_listing_and_suspend_sales_then_restore(client, make_user, staff, fresh_png) -> None:
    alice, bob, buyer = make_user("Alice"), make_user("Bob"), make_user("Buyer")
    original = alice.register(fresh_png(), title="Dunes").json()
    theirs = bob.register(fresh_png(), title="Dunes, traced").json()
    listing = client.post("/api/v1/listings", headers=bob.headers, json={"work_id": theirs["work_id"],
                                                                         "offers": [offer()]})
    assert listing.status_code == 201, listing.text
    listing_id, offer_id = listing.json()["listing_id"], listing.json()["offers"][0]["offer_id"]

    filed = file(client, notice(original["work_id"], {"listing_id": listing_id}))
    case = client.get(f"/api/v1/complaints/{filed['complaint_id']}", headers=bob.headers).json()
    assert case["evidence"]["infringing"]["listing_id"] == listing_id
    assert case["evidence"]["infringing"]["work_id"] == theirs["work_id"]
    assert case["evidence"]["match"] is None  # different bytes and no recorded similarity

    assert act(client, staff, filed["complaint_id"], "hide_listing", "Traced from the complainant's photo").json()[
        "takedowns"] == ["hide_listing"]
    assert client.get(f"/api/v1/listings/{listing_id}").status_code == 404
    suspended = act(client, staff, filed["complaint_id"], "suspend_sales", "Stop sales while we review")
    assert suspended.json()["takedowns"] == ["hide_listing", "suspend_sales"]
    with transaction(client.app.state.session_factory) as session:
        assert marketplace_service.sales_suspended(session, theirs["work_id"])
    refused = client.post("/api/v1/orders", headers={**buyer.headers, "Idempotency-Key": "k1"},
                          json={"offer_id": offer_id})
    assert refused.status_code in (404, 409), refused.text

    restored = act(client, staff, filed["complaint_id"], "restore", "Bob showed his own earlier sketches")
    assert restored.json()["status"] == "restored"
    assert client.get(f"/api/v1/listings/{listing_id}").status_code == 200
    with transaction(client.app.state.session_factory) as session:
        assert not marketplace_service.sales_suspended(session, theirs["work_id"])
    audit = client.get("/api/v1/staff/audit", params={"subject": listing_id}, headers=staff).json()
    assert [e["action"] for e in audit["items"]] == ["listing.restored", "listing.hidden", "listing.created"]


def test_a_hidden_listing_holds_its_work_until_the_case_is_closed(client, make_user, staff, fresh_png) -> None:
    """Relisting the work, or buying from its other listing, put it straight back on sale under the open case."""
    alice, bob, buyer = make_user("Alice"), make_user("Bob"), make_user("Buyer")
    original = alice.register(fresh_png(), title="Dunes").json()
    theirs = bob.register(fresh_png(), title="Dunes, traced").json()
    new_listing = {"work_id": theirs["work_id"], "offers": [offer()]}
    hidden, other = (client.post("/api/v1/listings", headers=bob.headers, json=new_listing).json() for _ in range(2))
    other_offer = other["offers"][0]["offer_id"]
    filed = file(client, notice(original["work_id"], {"listing_id": hidden["listing_id"]}))
    assert act(client, staff, filed["complaint_id"], "hide_listing").status_code == 200

    relisted = client.post("/api/v1/listings", headers=bob.headers, json=new_listing)
    assert relisted.status_code == 409, relisted.text
    assert "took down a listing of this work under an infringement complaint" in relisted.json()["detail"]
    sell_form = {"work_id": theirs["work_id"], "template": "standard", "uses": ["web"], "price": "15",
                 "currency": "EUR"}
    sell_page = client.post("/market/sell", headers=bob.headers, data=sell_form)
    assert sell_page.status_code == 409 and "took down a listing of this work" in sell_page.text
    shown = client.get(f"/api/v1/listings/{other['listing_id']}").json()["offers"][0]
    assert "taken down under an infringement complaint" in shown["unavailable_reason"]
    bought = client.post("/api/v1/orders", headers={**buyer.headers, "Idempotency-Key": "k1"},
                         json={"offer_id": other_offer})
    assert bought.status_code == 409, bought.text

    assert act(client, staff, filed["complaint_id"], "restore").json()["status"] == "restored"
    assert client.post("/api/v1/listings", headers=bob.headers, json=new_listing).status_code == 201
    assert buy(client, buyer, other_offer, key="k2")["status"] == "fulfilled"

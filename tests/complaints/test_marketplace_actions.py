"""hide_listing and suspend_sales go through the marketplace service, and restore undoes both."""

from __future__ import annotations

from ipx.db import transaction
from ipx.marketplace import service as marketplace_service
from tests.complaints.conftest import act, file, notice
from tests.marketplace.builders import offer


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

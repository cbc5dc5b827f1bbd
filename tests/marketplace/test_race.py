"""100 concurrent buyers of one exclusive offer, on PostgreSQL behind a real 2-worker uvicorn server:
exactly one sale, everyone else a clear 409, no money recorded for any failed attempt. Before the
race, ten concurrent retries of one order with the same Idempotency-Key create a single order."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ipx.accounts.models import User
from ipx.accounts.service import create_user, issue_token
from ipx.app import create_app
from ipx.config import Settings
from ipx.db import transaction
from ipx.marketplace import ledger
from ipx.marketplace.models import LedgerEntry, LedgerTransaction, License, Order
from ipx.registry.models import LogLeaf
from tests.conftest import ApiUser
from tests.marketplace.builders import exclusive_offer, offer
from tests.marketplace.conftest import assert_balanced_summary, noise_png
from tests.marketplace.servers import ipx_server

BUYERS = 100


def _prepare(settings: Settings) -> tuple[list[str], list[str]]:
    """Seller, work, a listing (exclusive in DE, standard in FR) and 100 buyer tokens, through the app."""
    with TestClient(create_app(settings)) as client:
        seller = ApiUser(client, "seller@example.org", "Seller")
        work = seller.register(noise_png(7), title="Only one may have it").json()
        listing = client.post("/api/v1/listings", headers=seller.headers,
                              json={"work_id": work["work_id"], "offers": [exclusive_offer(territory=["DE"]),
                                                                 offer(territory=["FR"])]})
        assert listing.status_code == 201, listing.text
        with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
            first = create_user(session, email="buyer0@example.org", password="buyer password", display_name="B0")
            buyers = [first] + [  # one Argon2 hash for all: hashing 100 passwords would dominate the test
                User(email=f"buyer{n}@example.org", display_name=f"Buyer {n}", password_hash=first.password_hash)
                for n in range(1, BUYERS)
            ]
            session.add_all(buyers)
            session.flush()
            tokens = [issue_token(session, buyer, 3600)[0] for buyer in buyers]
        return [o["offer_id"] for o in listing.json()["offers"]], tokens


def _attempt(base: str, token: str, offer_id: str, start: threading.Barrier) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"race-{token[:12]}"}
    with httpx.Client(base_url=base, timeout=120) as http:
        start.wait()
        placed = http.post("/api/v1/orders", headers=headers, json={"offer_id": offer_id})
        if placed.status_code != 201:
            return placed
        return http.post(f"/api/v1/orders/{placed.json()['order_id']}/confirm", headers=headers)


def _same_key_burst(base: str, token: str, offer_id: str) -> list[httpx.Response]:
    """One buyer's client retrying POST /orders ten times at once with the same Idempotency-Key."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "retry-storm"}
    start = threading.Barrier(10)

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=base, timeout=120) as http:
            start.wait()
            return http.post("/api/v1/orders", headers=headers, json={"offer_id": offer_id})

    with ThreadPoolExecutor(10) as pool:
        return list(pool.map(post, range(10)))


@pytest.mark.postgres
@pytest.mark.slow
def test_hundred_buyers_one_exclusive_offer(pg_databases, tmp_path: Path) -> None:
    url = pg_databases.new()
    settings = Settings(data_dir=tmp_path / "data", database_url=url, public_url="http://testserver")
    (offer_id, standard_id), tokens = _prepare(settings)
    env = {"IPX_DATABASE_URL": url, "IPX_DATA_DIR": str(settings.data_dir)}
    with ipx_server(env, tmp_path, workers=2) as base:
        retries = _same_key_burst(base, tokens[0], standard_id)
        start = threading.Barrier(BUYERS)
        with ThreadPoolExecutor(BUYERS) as pool:
            results = list(pool.map(lambda token: _attempt(base, token, offer_id, start), tokens))

    assert {r.status_code for r in retries} == {201}
    assert len({r.json()["order_id"] for r in retries}) == 1  # ten concurrent retries, one order

    won = [r for r in results if r.status_code == 200]
    lost = [r for r in results if r.status_code == 409]
    assert len(won) == 1 and won[0].json()["status"] == "fulfilled", [r.text for r in won]
    assert len(lost) == BUYERS - 1, sorted({(r.status_code, r.text[:200]) for r in results if r.status_code != 409})
    for response in lost:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "exclusive" in response.json()["detail"]

    with transaction(create_app(settings).state.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(License)) == 1
        assert session.scalar(select(func.count()).where(LogLeaf.entry_type == "ipx.license/v1")) == 1
        statuses = dict(session.execute(
            select(Order.status, func.count()).where(Order.offer_id == offer_id).group_by(Order.status)
        ).all())
        assert statuses.get("fulfilled") == 1 and set(statuses) <= {"fulfilled", "failed"}
        assert session.scalar(select(func.count()).where(LedgerTransaction.kind == "sale")) == 1
        failed_with_money = session.scalar(
            select(func.count()).select_from(LedgerEntry)
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .join(Order, Order.id == LedgerTransaction.order_id)
            .where(Order.status != "fulfilled")
        )
        assert failed_with_money == 0
        assert_balanced_summary(ledger.summary(session))

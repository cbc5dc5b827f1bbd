"""Marketplace test helpers: offers as data, a registered-and-listed work, staff callers."""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ipx.app import create_app
from ipx.config import Settings
from ipx.db import transaction
from ipx.marketplace import ledger
from tests.conftest import ApiUser
from tests.marketplace.builders import offer
from tests.marketplace.servers import localstripe_server

_seeds = itertools.count(1)


def noise_png(seed: int) -> bytes:
    """Random blocks: perceptually unrelated for every seed, so no listing trips the prior-match check."""
    blocks = np.random.default_rng(seed).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(blocks).resize((64, 48), Image.Resampling.NEAREST).save(out, "PNG")
    return out.getvalue()


@dataclass
class Listed:
    seller: ApiUser
    work: dict[str, Any]
    listing: dict[str, Any]

    @property
    def offer_ids(self) -> list[str]:
        return [o["offer_id"] for o in self.listing["offers"]]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The shared client, plus the ledger invariant checked after every marketplace test that used it."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client
        with transaction(test_client.app.state.session_factory) as session:  # type: ignore[attr-defined]
            assert_balanced_summary(ledger.summary(session))


def assert_balanced_summary(summary: dict[str, Any]) -> None:
    """No journal is unbalanced and all accounts of a currency sum to zero."""
    assert summary["unbalanced"] == 0, summary
    per_currency: dict[str, int] = {}
    for account in summary["accounts"]:
        per_currency[account["currency"]] = per_currency.get(account["currency"], 0) + account["balance"]
    assert all(total == 0 for total in per_currency.values()), per_currency


@pytest.fixture
def register_work(client: TestClient) -> Callable[..., dict[str, Any]]:
    def build(owner: ApiUser, title: str = "Harbour at dawn", **fields: str) -> dict[str, Any]:
        response = owner.register(noise_png(next(_seeds)), title=title, **fields)
        assert response.status_code == 201, response.text
        return response.json()

    return build


@pytest.fixture
def list_work(client: TestClient, make_user: Callable[..., ApiUser],
              register_work: Callable[..., dict[str, Any]]) -> Callable[..., Listed]:
    """Register a work for a (new) seller and list it with the given offers."""

    def build(*offers: dict[str, Any], seller: ApiUser | None = None, title: str = "Harbour at dawn",
              tags: list[str] | None = None, **fields: str) -> Listed:
        seller = seller or make_user("Seller")
        work = register_work(seller, title=title, **fields)
        response = client.post("/api/v1/listings", headers=seller.headers, json={
            "work_id": work["work_id"], "description": "Golden light", "tags": tags or ["sea"],
            "offers": list(offers) or [offer()],
        })
        assert response.status_code == 201, response.text
        return Listed(seller, work, response.json())

    return build


def buy(client: TestClient, buyer: ApiUser, offer_id: str, key: str | None = None) -> dict[str, Any]:
    """Place and confirm an offline order; returns the confirmed order body."""
    headers = {**buyer.headers, **({"Idempotency-Key": key} if key else {})}
    placed = client.post("/api/v1/orders", headers=headers, json={"offer_id": offer_id})
    assert placed.status_code == 201, placed.text
    confirmed = client.post(f"/api/v1/orders/{placed.json()['order_id']}/confirm", headers=buyer.headers)
    assert confirmed.status_code == 200, confirmed.text
    return confirmed.json()


def assert_ledger_balanced(client: TestClient, staff: dict[str, str]) -> dict[str, Any]:
    summary = client.get("/api/v1/ledger/summary", headers=staff)
    assert summary.status_code == 200, summary.text
    body = summary.json()
    assert_balanced_summary(body)
    return body


@pytest.fixture(scope="session")
def localstripe_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One localstripe per test process: each test makes its own customers and payments, so none share state."""
    with localstripe_server(tmp_path_factory.mktemp("localstripe")) as url:
        yield url

"""Complaint test helpers: works registered by distinct accounts, staff callers, notices as data."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import ApiUser
from tests.marketplace.conftest import noise_png

_seeds = itertools.count(1000)


def notice(work_id: str | None, infringing: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A complete, valid notice; override or drop (value None) any element."""
    body: dict[str, Any] = {
        "work_id": work_id, "infringing": infringing,
        "complainant": {"name": "Alice Original", "email": "alice.claims@example.org", "address": "1 Quay St"},
        "good_faith": True, "accuracy": True, "signature": "Alice Original",
        "description": "My photograph was re-registered byte for byte by another account.",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


@dataclass
class CopyCase:
    """Alice registered a work first; Bob registered the same bytes later (an exact prior match)."""

    alice: ApiUser
    bob: ApiUser
    original: dict[str, Any]
    copy: dict[str, Any]
    data: bytes


def register_a_copy(copy_case: CopyCase, copier: ApiUser, data: bytes, label: str = "") -> tuple[dict, dict]:
    """Alice registers `data` as another work, then `copier` registers the same bytes: both works, as created."""
    original = copy_case.alice.register(data, title=f"Original{label}")
    copied = copier.register(data, title=f"Copy{label}")
    assert original.status_code == copied.status_code == 201, (original.text, copied.text)
    return original.json(), copied.json()


@pytest.fixture
def copy_case(make_user: Callable[..., ApiUser]) -> CopyCase:
    alice, bob = make_user("Alice"), make_user("Bob")
    data = noise_png(next(_seeds))
    original = alice.register(data, title="Harbour at dawn")
    assert original.status_code == 201, original.text
    copy = bob.register(data, title="My harbour")
    assert copy.status_code == 201, copy.text
    return CopyCase(alice, bob, original.json(), copy.json(), data)


@pytest.fixture
def fresh_png() -> Callable[[], bytes]:
    return lambda: noise_png(next(_seeds))


def file(client: TestClient, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = client.post("/api/v1/complaints", json=body, headers=headers or {})
    assert response.status_code == 201, response.text
    return response.json()


def act(client: TestClient, staff: dict[str, str], complaint_id: str, action: str,
        reason: str = "Checked the evidence") -> httpx.Response:
    return client.post(
        f"/api/v1/staff/complaints/{complaint_id}/actions", headers=staff, json={"action": action, "reason": reason}
    )

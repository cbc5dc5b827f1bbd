"""Text that people type never widens a page: the longest unbroken strings the API accepts wrap, on every page.

A staff decision's reason of 5,000 characters without a space (schemathesis sent one) made a case page 51,033
pixels wide: the history list let it run off to the right, and the whole page scrolled sideways with it.
Every field here is filled to its limit with one unbroken word, and every page that shows one must fit the
window, a laptop's and a phone's, in headless Chromium.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.browser import PASSWORD, STAFF_EMAIL, STAFF_PASSWORD, browser_page, live_server_with_staff, shot
from tests.complaints.conftest import notice
from tests.conftest import ApiUser, bearer_headers
from tests.integration.live import ServerProcess
from tests.marketplace.builders import offer
from tests.marketplace.conftest import buy, noise_png

pytestmark = pytest.mark.browser
__all__ = ["browser_page", "live_server_with_staff"]  # the shared fixtures
VIEWPORTS = ({"width": 1280, "height": 860}, {"width": 390, "height": 844})  # a laptop, a phone


def word(length: int, letter: str = "W") -> str:
    return letter * length


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return response.json()


def _fill_every_field_to_its_limit(api: httpx.Client) -> dict[str, str]:
    """A catalogue whose every free-text field is one unbroken word as long as the API allows; returns paths."""
    alice, bob, carol = (ApiUser(api, f"{n}@example.org", word(100, n[0].upper())) for n in ("alice", "bob", "carol"))  # type: ignore[arg-type]
    picture = noise_png(77)
    fields = {
        "description": word(5000, "D"), "published": "true", "published_where": word(500, "P"),
        "creators": f'[{{"name": "{word(200, "N")}", "role": "{word(100, "R")}", "share": 100}}]',
    }
    original = created(alice.register(picture, title=word(500, "T"), **fields))
    copy = created(bob.register(picture, title=word(500, "C")))
    listing = created(api.post("/api/v1/listings", headers=alice.headers, json={
        "work_id": original["work_id"], "description": word(5000, "L"), "tags": [word(40, "G")], "offers": [offer()],
    }))
    sold = buy(api, carol, listing["offers"][0]["offer_id"])  # type: ignore[arg-type]
    body = notice(original["work_id"], {"work_id": copy["work_id"]}, description=word(10_000, "X"),
                  signature=word(200, "S"), complainant={"name": word(200, "A"), "email": "a@example.org",
                                                         "address": word(500, "Z")})
    filed = created(api.post("/api/v1/complaints", json=body))
    staff = bearer_headers(api, STAFF_EMAIL, STAFF_PASSWORD)
    case = f"/api/v1/staff/complaints/{filed['complaint_id']}/actions"
    assert api.post(case, headers=staff, json={"action": "mark_disputed", "reason": word(5000, "Y")}).is_success
    counter = {"statement": word(10_000, "K"), "consent_to_jurisdiction": True, "signature": word(200, "B")}
    assert api.post(f"/api/v1/complaints/{filed['complaint_id']}/counter-notice", json=counter,
                    headers=bob.headers).is_success
    (review,) = api.get("/api/v1/staff/reviews", headers=staff).json()
    assert api.post(f"/api/v1/staff/reviews/{review['review_id']}", headers=staff,
                    json={"decision": "uphold", "reason": word(5000, "U")}).is_success
    return {
        "home": "/", "work": f"/works/{original['work_id']}", "copy": f"/works/{copy['work_id']}",
        "certificate": f"/works/{original['work_id']}/certificate", "lookup": f"/verify?q={original['work_id']}",
        "registry": "/works", "registry-search": f"/works?q={word(200, 'Q')}",
        "registrant": f"/works?creator={original['creator']['account_id']}&q={word(200, 'T')}",
        "market": "/market", "listing": f"/market/listings/{listing['listing_id']}",
        "license": f"/licenses/{sold['license_id']}",
        "license-certificate": f"/licenses/{sold['license_id']}/certificate",
        "case": f"/complaints/{filed['complaint_id']}?token={filed['token']}",
        "staff-queue": "/staff/complaints", "staff-case": f"/staff/complaints/{filed['complaint_id']}",
        "staff-reviews": "/staff/reviews?status=upheld", "staff-audit": "/staff/audit",
    }


def test_no_page_scrolls_sideways_however_long_the_words(
    live_server_with_staff: ServerProcess, browser_page: object
) -> None:
    from playwright.sync_api import Page

    base = live_server_with_staff.url
    with httpx.Client(base_url=base, timeout=60) as api:
        paths = _fill_every_field_to_its_limit(api)
    page: Page = browser_page  # type: ignore[assignment]
    too_wide = {}
    for (email, password), names in (
        ((STAFF_EMAIL, STAFF_PASSWORD), paths),
        (("alice@example.org", PASSWORD), {"my-works": "/me/works", "sales": "/me/sales"}),
        (("carol@example.org", PASSWORD), {"purchases": "/me/purchases"}),
    ):
        page.context.clear_cookies()
        page.goto(f"{base}/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        for name, path in names.items():
            for viewport in VIEWPORTS:
                page.set_viewport_size(viewport)
                assert page.goto(base + path).ok, path  # type: ignore[union-attr]
                width = page.evaluate("document.documentElement.scrollWidth")
                if width > viewport["width"]:
                    too_wide[f"{name} at {viewport['width']} px"] = width
                shot(page, f"long-text-{name}-{viewport['width']}")
    assert not too_wide, sorted(too_wide.items())

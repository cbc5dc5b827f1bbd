"""The printable certificate page, printed by real headless Chromium: one A4 page however long the title and however
many the creators, as the page promises and the PDF already does."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.browser import browser_page, live_server
from tests.conftest import ApiUser, png_bytes
from tests.integration.live import ServerProcess

pytestmark = pytest.mark.browser
__all__ = ["browser_page", "live_server"]  # the shared fixtures


def test_the_printable_certificate_prints_on_one_page(live_server: ServerProcess, browser_page: object) -> None:
    from playwright.sync_api import Page

    page: Page = browser_page  # type: ignore[assignment]
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        owner = ApiUser(http, "ada@example.org", "Ada Lovelace")  # type: ignore[arg-type]
        creators = [{"name": f"Creator number {n} with a long family name", "share": 2} for n in range(50)]
        work = http.post("/api/v1/works", headers=owner.headers, files={"file": ("w.png", png_bytes(41))},
                         data={"title": "Lorem ipsum dolor sit amet " * 18, "creators": json.dumps(creators)}).json()
    page.goto(f"{live_server.url}/works/{work['work_id']}/certificate")
    printed = page.pdf(format="A4")
    assert len(re.findall(rb"/Type\s*/Page[^s]", printed)) == 1

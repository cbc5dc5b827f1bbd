"""Every page's headings form an outline without gaps: one h1 first, and no level skipped on the way down.

Screen-reader users move through a page by its headings; a jump from h1 to h3 reads as if a section were missing.
axe-core, run over 22 pages (public, creator's and staff's) with a seeded catalogue, found two: the home page's
steps and the market's listing cards were h3 under the h1. Both now sit under an h2 (visually hidden).
"""

from __future__ import annotations

from html.parser import HTMLParser
from itertools import pairwise

from fastapi.testclient import TestClient

from tests.conftest import ApiUser
from tests.marketplace.builders import offer
from tests.marketplace.conftest import noise_png


class HeadingLevels(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.levels: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            self.levels.append(int(tag[1]))


def outline_gaps(html: str) -> list[str]:
    parser = HeadingLevels()
    parser.feed(html)
    levels = parser.levels
    gaps = [] if levels[:1] == [1] else [f"starts with h{levels[0] if levels else '-'}"]
    gaps += [f"h{above} then h{below}" for above, below in pairwise(levels) if below > above + 1]
    return gaps


def test_no_page_skips_a_heading_level(client: TestClient, make_user, staff) -> None:  # type: ignore[no-untyped-def]
    seller: ApiUser = make_user("Seller")
    work = seller.register(noise_png(5150), title="Harbour at dawn").json()
    listing = client.post("/api/v1/listings", headers=seller.headers, json={
        "work_id": work["work_id"], "description": "Golden light", "tags": ["sea"], "offers": [offer()],
    }).json()
    public = [
        "/", "/market", f"/market/listings/{listing['listing_id']}", f"/works/{work['work_id']}", "/verify",
        f"/verify?q={work['work_id']}", "/stats", "/login", "/signup", "/complaints/new",
    ]
    signed_in = [
        "/works/new", "/me/works", "/market/sell", "/me/sales", "/staff/complaints", "/staff/reviews", "/staff/audit",
    ]
    gaps = {}
    for path, headers in [*((path, {}) for path in public), *((path, staff) for path in signed_in)]:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, path
        if found := outline_gaps(response.text):
            gaps[path] = found
    assert not gaps, gaps

"""Layout a design review found broken, measured in real headless Chromium (JavaScript off) at desktop and phone
widths: what a person sees lined up or broken, which the HTML alone cannot show."""

from __future__ import annotations

import httpx
import pytest

from tests.browser import browser_page, live_server, shot
from tests.conftest import ApiUser, png_bytes
from tests.integration.live import ServerProcess
from tests.marketplace.builders import offer

pytestmark = pytest.mark.browser
__all__ = ["browser_page", "live_server"]  # the shared fixtures

CO_CREATORS = '[{"name": "Ada Lovelace", "share": 70}, {"name": "Charles Babbage", "share": 30}]'
LINES_OF = "el => { const r = document.createRange(); r.selectNodeContents(el); return r.getClientRects().length; }"


def sell_co_created_work(base_url: str) -> ApiUser:
    """A work by two creators, sold once through the offline provider; returns its seller."""
    with httpx.Client(base_url=base_url, timeout=60) as api:
        seller = ApiUser(api, "ada@example.org", "Ada Lovelace")  # type: ignore[arg-type]
        work = seller.register(png_bytes(5), title="Notes on the engine", creators=CO_CREATORS).json()
        listing = api.post("/api/v1/listings", headers=seller.headers, json={
            "work_id": work["work_id"], "offers": [offer(price={"amount": 900, "currency": "EUR"})],
        }).json()
        buyer = ApiUser(api, "grace@example.org", "Grace Hopper")  # type: ignore[arg-type]
        order = api.post("/api/v1/orders", headers=buyer.headers, json={"offer_id": listing["offers"][0]["offer_id"]})
        confirmed = api.post(f"/api/v1/orders/{order.json()['order_id']}/confirm", headers=buyer.headers)
        assert confirmed.status_code == 200, confirmed.text
        return seller


def test_stats_cards_line_up_with_the_charts_and_sale_shares_stay_on_one_line(
    live_server: ServerProcess, browser_page: object
) -> None:
    """/stats split its bottom cards 3:2 under charts split 1:1; /me/sales broke "Charles Babbage 30%: EUR 2.43"
    across lines at 1280 px. On a phone the charts scrolled sideways, hiding the longest bar's figure, and the
    complaints and detection figures did not line up."""
    from playwright.sync_api import Page

    page: Page = browser_page  # type: ignore[assignment]
    seller = sell_co_created_work(live_server.url)

    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 860})
        page.goto(live_server.url + "/stats")
        charts = [page.locator(".st-charts > figure").nth(n).bounding_box() for n in range(2)]
        cards = [page.locator(".st-charts + div > section").nth(n).bounding_box() for n in range(2)]
        for chart, card in zip(charts, cards, strict=True):
            assert chart is not None and card is not None
            assert abs(chart["x"] - card["x"]) < 1 and abs(chart["width"] - card["width"]) < 1, (width, chart, card)
        drawn = "wide" if width == 1280 else "narrow"
        for figure in page.locator(".st-charts > figure").all():
            assert figure.evaluate("f => f.scrollWidth <= f.clientWidth"), width
            shown = figure.locator(f"svg.chart-{drawn}")
            assert shown.is_visible() and figure.locator("svg.chart:visible").count() == 1, (width, drawn)
            box = figure.bounding_box()
            assert box is not None
            for value in shown.locator(".chart-value").all():  # every figure, the longest bar's included, in view
                text = value.bounding_box()
                assert text is not None and text["x"] + text["width"] <= box["x"] + box["width"], (width, text, box)
                assert value.evaluate("t => parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a") >= 11
        figures = page.locator(".st-figures dd")
        right_edges = {round(box["x"] + box["width"]) for box in (dd.bounding_box() for dd in figures.all()) if box}
        assert figures.count() >= 4 and len(right_edges) == 1, (width, right_edges)
        shot(page, f"stats-{width}")

    page.set_extra_http_headers(seller.headers)
    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto(live_server.url + "/me/sales")
    shares = page.locator(".mk-split .mk-split-share")
    assert [shares.nth(n).inner_text() for n in range(shares.count())] == ["70% · EUR 5.67", "30% · EUR 2.43"]
    names = page.locator(".mk-split li > span[dir]")
    for part in [*shares.all(), *names.all()]:
        assert part.evaluate(LINES_OF) == 1, part.inner_text()
    shot(page, "sales-split-1280")


def test_the_registry_is_browsed_and_searched_without_scripts(live_server: ServerProcess, browser_page: object) -> None:
    """From the home page to the registry, a search typed into its box, and from a record to the rest of its
    creator's works; at phone width nothing scrolls sideways."""
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    with httpx.Client(base_url=live_server.url, timeout=60) as api:
        ada = ApiUser(api, "ada@example.org", "Ada Lovelace")  # type: ignore[arg-type]
        for seed, title in enumerate(["Engine notes", "Loom pattern", "Bernoulli table"]):
            ada.register(png_bytes(seed), title=title)
        ApiUser(api, "grace@example.org", "Grace Hopper").register(png_bytes(7), title="Harbour at dusk")  # type: ignore[arg-type]

    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 860})
        page.goto(live_server.url + "/")
        page.get_by_role("link", name="Browse the registry").click()
        expect(page.locator(".work-card h3")).to_have_text(
            ["Harbour at dusk", "Bernoulli table", "Loom pattern", "Engine notes"]
        )
        page.get_by_label("Title or creator's name").fill("lovelace")
        page.get_by_role("button", name="Search").click()
        expect(page.locator(".work-card h3")).to_have_count(3)
        expect(page.get_by_role("status")).to_contain_text("3 registrations whose title or creator's name contains")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), width
        shot(page, f"registry-search-{width}")

    page.locator(".work-card", has_text="Loom pattern").click()
    page.get_by_role("link", name="Ada Lovelace").click()
    expect(page.locator("h1")).to_have_text("Works registered by Ada Lovelace")
    expect(page.locator(".work-card h3")).to_have_count(3)
    shot(page, "registry-creator-390")

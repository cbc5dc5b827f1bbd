"""A whole purchase through the marketplace pages, in real headless Chromium against a real uvicorn server,
JavaScript off: a seller registers and lists a work, a buyer finds it, checks out and pays offline, the
license verifies offline with `ipx verify`, the buyer downloads the very file registered, the seller sees the
sale and refunds it, and the license page then says "revoked". Every step is screenshotted into
test-artifacts/screens/mk-*.png.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser import PASSWORD, browser_page, live_server, read_qr, shot, verify_offline
from tests.conftest import png_bytes
from tests.integration.live import ServerProcess

pytestmark = pytest.mark.browser
__all__ = ["browser_page", "live_server"]  # the shared fixtures


def test_list_buy_verify_and_refund_through_the_pages(
    live_server: ServerProcess, browser_page: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    base = live_server.url

    def sign_up(name: str, email: str) -> None:
        page.goto(base + "/signup")
        page.get_by_label("Name").fill(name)
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page).to_have_url(base + "/me/works")

    def log_out() -> None:
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("link", name="Log in")).to_be_visible()

    page.goto(base + "/market")
    expect(page.locator(".empty")).to_contain_text("Nothing is for sale yet.")
    shot(page, "mk-01-market-empty")

    # the seller registers a work, then lists it; contradictory terms are refused in the form first
    sign_up("Ada Lovelace", "ada@example.org")
    image = tmp_path / "harbour.png"
    image.write_bytes(png_bytes(11, size=(640, 420)))
    page.goto(base + "/works/new")
    page.get_by_label("File to register").set_input_files(str(image))
    page.get_by_label("Title").fill("Harbour at dawn")
    page.get_by_label("Type of work").select_option("image")
    page.get_by_role("button", name="Register and sign").click()
    expect(page.locator(".alert-success")).to_contain_text("Registered")
    with page.expect_download() as own_copy:
        page.get_by_role("link", name="Your file").click()
    assert own_copy.value.suggested_filename == "harbour.png"
    assert Path(own_copy.value.path()).read_bytes() == image.read_bytes()

    page.get_by_role("link", name="Sell", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sell a license")
    page.get_by_label("Registered work").select_option(label="Harbour at dawn")
    page.get_by_label("Description").fill("Golden light over the water, shot at 6 am.")
    page.get_by_label("Tags").fill("sea, dawn, harbour")
    page.get_by_label("License type").select_option("standard")
    page.get_by_label("Print", exact=True).check()
    page.get_by_label("Exclusive (one licensee)").check()
    page.get_by_label("Seats").fill("5")
    page.get_by_label("Price", exact=True).fill("25")
    shot(page, "mk-02-sell-form")
    page.get_by_role("button", name="List for sale").click()
    expect(page.locator(".alert-error")).to_contain_text("An exclusive license is for one licensee")
    expect(page.get_by_label("Price", exact=True)).to_have_value("25")
    expect(page.get_by_label("Tags")).to_have_value("sea, dawn, harbour")
    shot(page, "mk-03-sell-error")
    page.get_by_label("Exclusive (one licensee)").uncheck()
    page.get_by_label("Seats").fill("1")
    page.get_by_role("button", name="List for sale").click()
    expect(page.locator(".alert-success")).to_contain_text("Listed.")
    expect(page.locator(".mk-offer-price")).to_have_text("EUR 25.00")
    shot(page, "mk-04-listing-seller")
    log_out()

    # the buyer finds it on the market, reads the terms, checks out and pays offline
    sign_up("Grace Hopper", "grace@example.org")
    page.get_by_role("link", name="Market", exact=True).click()
    page.get_by_label("Search").fill("harbour")
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".mk-card")).to_have_count(1)
    expect(page.locator(".mk-card")).to_contain_text("from EUR 25.00")
    shot(page, "mk-05-market-search")
    page.locator(".mk-card").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Harbour at dawn")
    expect(page.locator(".mk-summary")).to_contain_text("Standard license: print and web use worldwide")
    listing_url = page.url
    shot(page, "mk-06-listing")
    page.get_by_role("button", name="Buy this license").click()
    expect(page.locator(".mk-total-amount")).to_have_text("EUR 25.00")
    shot(page, "mk-07-checkout")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator(".mk-status").first).to_have_text("Waiting for payment")
    shot(page, "mk-08-order-pending")
    page.get_by_role("button", name="Pay (offline test payment)").click()
    expect(page.locator(".alert-success")).to_contain_text("Licensed.")
    shot(page, "mk-09-order-licensed")

    page.get_by_role("link", name="Purchases", exact=True).click()
    expect(page.locator(".table tbody tr")).to_have_count(1)
    expect(page.locator(".mk-status")).to_have_text("Licensed")
    shot(page, "mk-10-purchases")
    page.get_by_role("link", name="License", exact=True).click()
    expect(page.locator(".mk-verdict")).to_contain_text("Active license.")
    license_url = page.url
    assert re.fullmatch(rf"{re.escape(base)}/licenses/[0-9a-f-]{{36}}", license_url)
    shot(page, "mk-11-license-active")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download license evidence").click()
    download = download_info.value
    bundle = tmp_path / download.suggested_filename
    with page.expect_download() as licensed_copy:
        page.get_by_role("link", name="Download the work").click()
    assert licensed_copy.value.suggested_filename == "harbour.png"
    assert Path(licensed_copy.value.path()).read_bytes() == image.read_bytes()  # the very file registered
    download.save_as(bundle)
    verified = verify_offline(page, bundle)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    page.get_by_role("link", name="Printable certificate").click()
    expect(page.locator(".cert-qr svg")).to_be_visible()
    assert read_qr(page.locator(".cert-qr svg")) == license_url  # a phone lands on the status page
    shot(page, "mk-12-license-certificate")
    log_out()

    # the seller sees the sale and the balance after the 10 % fee, and refunds it
    page.goto(base + "/login")
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Sales", exact=True).click()
    expect(page.locator(".mk-balance-amount").first).to_have_text("EUR 22.50")
    expect(page.locator(".table tbody tr")).to_have_count(1)
    table = page.locator(".table-card")
    assert table.evaluate("box => box.scrollWidth <= box.clientWidth")  # the Refund button in sight, not scrolled to
    shot(page, "mk-13-sales")
    page.get_by_label("Refund reason").fill("Wrong crop delivered")
    page.get_by_role("button", name="Refund").click()
    expect(page.locator(".alert-success")).to_contain_text("Refunded.")
    expect(page.locator(".mk-balance-amount").first).to_have_text("EUR 0.00")
    shot(page, "mk-14-sales-refunded")

    page.goto(license_url)
    expect(page.locator(".mk-verdict")).to_contain_text("Revoked license.")
    expect(page.locator(".mk-verdict")).to_contain_text("Wrong crop delivered")
    shot(page, "mk-15-license-revoked")

    # the same pages on a phone-sized screen: nothing forces sideways scrolling
    page.set_viewport_size({"width": 390, "height": 844})
    for name, url in (("mk-16-phone-market", base + "/market"), ("mk-17-phone-listing", listing_url),
                      ("mk-18-phone-license", license_url), ("mk-19-phone-sales", base + "/me/sales")):
        page.goto(url)
        shot(page, name)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, name

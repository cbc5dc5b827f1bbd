"""The registry pages in real headless Chromium against a real uvicorn server, JavaScript off.

One journey a new creator takes: sign up, register a generated PNG through the form, open its
certificate, download the evidence bundle and verify it offline with `ipx verify`. Every page is
screenshotted into test-artifacts/screens/ for a person to look at.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.browser import PASSWORD, browser_page, live_server, read_qr, shot, verify_offline
from tests.conftest import png_bytes
from tests.integration.live import ServerProcess

pytestmark = pytest.mark.browser
__all__ = ["browser_page", "live_server"]  # the shared fixtures

def test_sign_up_register_download_and_verify_offline(
    live_server: ServerProcess, browser_page: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    base = live_server.url
    page.goto(base + "/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Prove you had it first")
    shot(page, "01-home-empty")

    # sign up: a too-short password is refused in the form, the input kept
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Name").fill("Ada Lovelace")
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator(".field-error")).to_contain_text("at least 10 characters")
    expect(page.get_by_label("Email")).to_have_value("ada@example.org")
    shot(page, "02-signup-error")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(base + "/me/works")
    shot(page, "03-my-works-empty")

    # register a generated PNG through the form
    image = tmp_path / "sunset.png"
    image.write_bytes(png_bytes(7, size=(640, 420)))
    page.goto(base + "/works/new")
    shot(page, "04-register-form")
    page.get_by_label("File to register").set_input_files(str(image))
    page.get_by_label("Title").fill("Sunset over the Thames")
    page.get_by_label("Type of work").select_option("image")
    page.get_by_label("Description").fill("Oil study, evening light.")
    page.get_by_label("Creator 1 name").fill("Ada Lovelace")
    page.get_by_label("Creator 1 share in percent").fill("60")
    page.get_by_label("Creator 2 name").fill("Charles Babbage")
    page.get_by_label("Creator 2 share in percent").fill("40")
    page.get_by_label("Year of creation").fill("2024")
    page.get_by_role("button", name="Register and sign").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sunset over the Thames")
    expect(page.locator(".verdict-ok")).to_contain_text("Verified")
    expect(page.locator(".alert-success")).to_contain_text("Registered")
    work_url = page.url.split("?")[0]
    shot(page, "05-certificate-page")

    # the evidence bundle downloads as a file and verifies offline against the original file
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download evidence bundle").first.click()
    download = download_info.value
    assert download.suggested_filename.startswith("ipx-evidence-")
    bundle = tmp_path / download.suggested_filename
    download.save_as(bundle)
    verified = verify_offline(page, bundle, image)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "VERIFIED" in verified.stdout

    # registering the same file again is refused in the form, with a link to the first registration
    page.goto(base + "/works/new")
    page.get_by_label("File to register").set_input_files(str(image))
    page.get_by_label("Title").fill("Sunset again")
    page.get_by_role("button", name="Register and sign").click()
    expect(page.locator(".alert-error")).to_contain_text("You already registered this exact file")
    expect(page.get_by_label("Title")).to_have_value("Sunset again")
    shot(page, "06-register-duplicate")

    # the printable certificate: one A4 page with the QR code
    page.goto(work_url + "/certificate")
    expect(page.locator(".cert-qr svg")).to_be_visible()
    shot(page, "07-printable-certificate")
    assert read_qr(page.locator(".cert-qr svg")) == work_url
    page.emulate_media(media="print")
    printed = PdfReader(io.BytesIO(page.pdf(format="A4", print_background=True)))
    assert len(printed.pages) == 1
    page.emulate_media(media="screen")

    page.goto(base + "/me/works")
    expect(page.get_by_role("link", name="Sunset over the Thames")).to_be_visible()
    shot(page, "08-my-works")

    sha256 = page.locator(".work-cell .mono").first.get_attribute("title")
    page.goto(f"{base}/verify?q={sha256}")
    expect(page.locator(".result")).to_have_count(1)
    expect(page.locator(".result .verdict-ok")).to_be_visible()
    shot(page, "09-verify-found")
    page.goto(f"{base}/verify?q={'0' * 64}")
    expect(page.locator(".not-registered")).to_contain_text("Not registered")
    shot(page, "10-verify-not-registered")

    page.goto(base + "/works/00000000-0000-4000-8000-000000000000")
    expect(page.locator(".error-code")).to_have_text("404")
    shot(page, "11-not-found")

    page.goto(base + "/")
    expect(page.locator(".work-card")).to_have_count(1)
    shot(page, "12-home")

    # log out, then a wrong password is refused in the form; /works/new sends to log in and back
    page.get_by_role("button", name="Log out").click()
    page.goto(base + "/works/new")
    expect(page).to_have_url(base + "/login?next=/works/new")
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".alert-error")).to_contain_text("The email or password is not correct.")
    shot(page, "13-login-error")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(base + "/works/new")

    # the same pages on a phone-sized screen
    page.set_viewport_size({"width": 390, "height": 844})
    for name, path in (("14-phone-home", "/"), ("15-phone-record", work_url.removeprefix(base))):
        page.goto(base + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing forces sideways scrolling
        shot(page, name)

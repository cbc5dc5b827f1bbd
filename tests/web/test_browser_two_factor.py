"""Two-step verification in real headless Chromium, JavaScript off, against a real uvicorn server: set it up from
the account page by scanning its QR code as a phone would, confirm with the app's code, see the recovery codes once,
then log in again with the password and a code. Screenshots: test-artifacts/screens/two-factor-*.png.

The server keeps real time here, so the codes are the phone's real ones: the set-up takes the current step's code,
the log-in the next step's (one step of drift is accepted, and a step already used is not).
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from ipx.accounts import totp
from tests.api.test_two_factor import key_bytes
from tests.browser import PASSWORD, browser_page, live_server, read_qr, shot
from tests.integration.live import ServerProcess

pytestmark = pytest.mark.browser
__all__ = ["browser_page", "live_server"]  # the shared fixtures


def test_set_up_from_the_account_page_then_log_in_with_a_code(live_server: ServerProcess, browser_page: object) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    base = live_server.url
    page.goto(base + "/signup")
    page.get_by_label("Name").fill("Grace Hopper")
    page.get_by_label("Email").fill("grace@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.get_by_role("link", name="Grace Hopper").click()
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    page.locator("#two_factor_password").fill(PASSWORD)
    page.get_by_role("button", name="Set up two-step verification").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Set up two-step verification")
    uri = read_qr(page.locator(".two-factor-qr svg"))  # what the phone's camera reads
    assert uri.startswith("otpauth://totp/IPX:grace@example.org?")
    secret = key_bytes(parse_qs(urlsplit(uri).query)["secret"][0])
    assert key_bytes(page.locator("#secret-key").inner_text()) == secret  # the key to type says the same
    shot(page, "two-factor-01-setup")
    page.get_by_label("6-digit code").fill("000000")
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator("#confirm_code-error")).to_contain_text("not the code the app shows")  # the key not shown again
    expect(page.locator("#secret-key")).to_have_count(0)
    shot(page, "two-factor-01b-code-refused")
    setup_step = totp.step_at(time.time())
    page.locator("#confirm_code").fill(totp.code_at(secret, setup_step))
    page.get_by_role("button", name="Turn on").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Two-step verification is on")
    codes = page.locator(".recovery-codes li").all_inner_texts()
    assert len(codes) == 10
    shot(page, "two-factor-02-recovery-codes")
    page.get_by_role("link", name="I have saved them").click()
    expect(page.locator(".two-factor")).to_contain_text("10 of 10 recovery codes unused")
    shot(page, "two-factor-03-account")
    page.get_by_role("button", name="Log out").click()

    page.goto(base + "/login?next=/me/account")
    page.get_by_label("Email").fill("grace@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("One more step")
    page.get_by_label("Code").fill(totp.code_at(secret, setup_step))  # the set-up's code works only once
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".alert-error")).to_contain_text("The code is not correct")
    shot(page, "two-factor-04-code-refused")
    page.get_by_label("Code").fill(totp.code_at(secret, setup_step + 1))
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")  # logged in, and on to `next`
    expect(page.locator(".two-factor")).to_contain_text("On")

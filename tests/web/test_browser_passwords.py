"""Passwords in real headless Chromium, JavaScript off, against a real uvicorn server: a forgotten one (ask for a
link, open it from the .eml file the server wrote, choose a new password and land logged in; the spent link then
says so), then a change on the account page. Screenshots: test-artifacts/screens/reset-*.png, account-*.png.
"""

from __future__ import annotations

import email
import re
import time
from email import policy
from pathlib import Path

import pytest

from tests.browser import PASSWORD, browser_page, live_server, shot
from tests.integration.live import ServerProcess

pytestmark = pytest.mark.browser
__all__ = ["browser_page", "live_server"]  # the shared fixtures

NEW_PASSWORD = "a brand new passphrase"


def sent_mails(outbox: Path) -> list[Path]:
    """The mails written so far, once there is one: the server sends them just after its answer."""
    for _ in range(300):
        if mails := sorted(outbox.glob("*.eml")):
            return mails
        time.sleep(0.05)
    return []


def test_a_forgotten_password_is_replaced_through_the_mailed_link(
    live_server: ServerProcess, browser_page: object
) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    base = live_server.url
    page.goto(base + "/signup")
    page.get_by_label("Name").fill("Ada Lovelace")
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.get_by_role("button", name="Log out").click()

    page.goto(base + "/login")
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.get_by_label("Email")).to_have_value("ada@example.org")  # carried over from the log-in form
    shot(page, "reset-01-ask")
    page.get_by_role("button", name="Send me a link").click()
    expect(page.locator(".alert-success")).to_contain_text("a link to choose a new password is on its way")
    shot(page, "reset-02-sent")

    [mail_file] = sent_mails(live_server.log_path.parent / "outbox")
    mail = email.message_from_bytes(mail_file.read_bytes(), policy=policy.default)
    link = re.search(rf"{re.escape(base)}/reset-password/\S+", mail.get_content())  # type: ignore[union-attr]
    assert link is not None
    page.goto(link.group(0))
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose a new password")
    page.get_by_label("New password").fill(NEW_PASSWORD)
    shot(page, "reset-03-choose")
    page.get_by_role("button", name="Save and log in").click()
    expect(page.locator(".alert-success")).to_contain_text("Password changed.")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    shot(page, "reset-04-done")

    page.goto(link.group(0))
    expect(page.locator(".alert-error")).to_contain_text("no longer works")
    shot(page, "reset-05-spent")
    page.get_by_role("button", name="Log out").click()
    page.goto(base + "/login")
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(base + "/me/works")

    page.get_by_role("link", name="Ada Lovelace").click()  # the name in the navigation
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    page.get_by_label("Current password").fill("not my password")
    page.get_by_label("New password").fill("yet another passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator(".field-error")).to_have_text("The current password is not correct.")
    shot(page, "account-01-wrong-current")
    page.get_by_label("Current password").fill(NEW_PASSWORD)
    page.get_by_label("New password").fill("yet another passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator(".alert-success")).to_contain_text("Password changed.")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()  # this session stays
    shot(page, "account-02-changed")

"""A complaint from the public form to a staff decision, in headless Chromium with JavaScript off.

The journey: an earlier owner follows the alert link to the pre-filled notice form and files it; staff
open the case in the console, compare the works side by side and mark the copy disputed; the copy's
certificate page then shows the disputed state. Every page is screenshotted into test-artifacts/screens/.
"""

from __future__ import annotations

import httpx
import pytest
from _edits import crop_corner

from tests.browser import STAFF_EMAIL, STAFF_PASSWORD, browser_page, live_server_with_staff, shot
from tests.conftest import ApiUser
from tests.fingerprint.pictures import encoded, skimage_picture
from tests.integration.live import ServerProcess
from tests.marketplace.conftest import noise_png

pytestmark = pytest.mark.browser
__all__ = ["browser_page", "live_server_with_staff"]  # the shared fixtures


def test_public_notice_staff_marks_disputed_certificate_shows_it(
    live_server_with_staff: ServerProcess, browser_page: object
) -> None:
    from playwright.sync_api import Page, expect

    base = live_server_with_staff.url
    with httpx.Client(base_url=base, timeout=60) as api:
        alice, bob = ApiUser(api, "alice@example.org", "Alice"), ApiUser(api, "bob@example.org", "Bob")  # type: ignore[arg-type]
        data = noise_png(4242)
        original = alice.register(data, title="Harbour at dawn").json()
        copy = bob.register(data, title="My harbour").json()
    page: Page = browser_page  # type: ignore[assignment]

    # the alert email's one-click link opens the notice form with both works filled in
    page.goto(f"{base}/complaints/new?work_id={original['work_id']}&infringing_work_id={copy['work_id']}")
    expect(page.get_by_label("IPX work id").first).to_have_value(original["work_id"])
    page.get_by_label("Full name", exact=True).fill("Alice Original")
    page.get_by_label("Email").fill("alice@example.org")
    page.get_by_label("What is copied, and how?").fill("My photograph, registered again byte for byte by Bob.")
    page.get_by_label("Signature (type your full name)").fill("Alice Original")
    page.get_by_role("button", name="Submit notice").click()
    expect(page.locator(".cx-alert-bad")).to_contain_text("see the fields marked below")
    expect(page.locator(".cx-field-error").first).to_contain_text("Affirm your good-faith belief")
    shot(page, "cx-01-notice-form-errors")
    page.get_by_label("I have a good-faith belief", exact=False).check()
    page.get_by_label("The information in this notice is accurate", exact=False).check()
    page.get_by_role("button", name="Submit notice").click()
    expect(page.locator(".cx-alert-ok")).to_contain_text("Your notice was received as case IPX-")
    expect(page.locator(".cx-match")).to_contain_text("Identical file (SHA-256)")
    status_url = page.url.replace("&filed=1", "")
    shot(page, "cx-02-complaint-status")

    # staff log in and decide in the console
    page.goto(f"{base}/login?next=/staff/complaints")
    page.get_by_label("Email").fill(STAFF_EMAIL)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/staff/complaints")
    shot(page, "cx-03-staff-queue")
    page.locator(".cx-table a").first.click()
    expect(page.locator(".cx-side-by-side .cx-work")).to_have_count(2)
    expect(page.locator(".cx-side-by-side")).to_contain_text(copy["sha256"])
    shot(page, "cx-04-staff-case")
    page.get_by_label("Action").select_option("mark_disputed")
    page.get_by_label("Reason", exact=False).fill("Identical file, registered 1 entry later by another account.")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".cx-alert-ok")).to_contain_text("Done: mark the work as disputed.")
    expect(page.locator(".cx-head .cx-status")).to_have_text("Action taken")
    shot(page, "cx-05-staff-case-decided")

    # the copy's certificate page shows the dispute; the registration itself is unchanged
    page.goto(f"{base}/works/{copy['work_id']}")
    expect(page.locator(".status-banner")).to_contain_text("DISPUTED")
    expect(page.locator(".verdict-ok")).to_contain_text("Verified")
    shot(page, "cx-06-certificate-disputed")

    for path, name in (("/staff/reviews", "cx-07-review-queue"), ("/staff/audit", "cx-08-audit-log"),
                       ("/stats", "cx-09-stats")):
        page.goto(base + path)
        expect(page.locator("h1")).to_be_visible()
        shot(page, name)
    page.get_by_role("button", name="Log out").click()
    page.goto(status_url)
    expect(page.locator(".cx-status")).to_have_text("Action taken")
    shot(page, "cx-10-complaint-status-decided")

    # the owner of the copy answers with a counter-notice
    case_path = status_url.removeprefix(base).split("?")[0]
    page.goto(f"{base}/login?next={case_path}")
    page.get_by_label("Email").fill("bob@example.org")
    page.get_by_label("Password").fill("correct horse 42")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="File a counter-notice").click()
    page.get_by_label("Your statement").fill("I photographed the harbour myself; the file is my own original.")
    page.get_by_label("I consent to the jurisdiction", exact=False).check()
    page.get_by_label("Signature (type your full name)").fill("Bob Later")
    shot(page, "cx-11-counter-notice-form")
    page.get_by_role("button", name="File counter-notice").click()
    expect(page.locator(".cx-status")).to_have_text("Counter-notice filed")
    shot(page, "cx-12-counter-noticed")


def test_staff_see_a_flagged_crop_outlined_on_the_earlier_picture(
    live_server_with_staff: ServerProcess, browser_page: object
) -> None:
    from playwright.sync_api import Page, expect

    base = live_server_with_staff.url
    astronaut = skimage_picture("astronaut")
    with httpx.Client(base_url=base, timeout=60) as api:
        alice, bob = ApiUser(api, "alice@example.org", "Alice"), ApiUser(api, "bob@example.org", "Bob")  # type: ignore[arg-type]
        assert alice.register(encoded(astronaut, "PNG"), title="Astronaut").status_code == 201
        assert bob.register(encoded(crop_corner(astronaut)), title="My crop").status_code == 201
    page: Page = browser_page  # type: ignore[assignment]
    page.goto(f"{base}/login?next=/staff/reviews")
    page.get_by_label("Email").fill(STAFF_EMAIL)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    outlined = page.get_by_role("img", name="Thumbnail of Astronaut, with the part the two works share outlined")
    expect(outlined).to_be_visible()
    picture, rectangle = outlined.locator("img").bounding_box(), outlined.locator("rect").bounding_box()
    assert picture and rectangle  # the top-left three quarters, not all of it
    assert rectangle["width"] < 0.8 * picture["width"] and rectangle["height"] < 0.8 * picture["height"]
    expect(page.get_by_role("img", name="Thumbnail of My crop", exact=True)).to_be_visible()
    shot(page, "cx-20-review-crop-outlined")

"""Every answer carries the security headers; the pages break none of their own policy, in Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipx.web.headers import content_security_policy
from tests.browser import PASSWORD, browser_page, live_server
from tests.conftest import png_bytes
from tests.integration.live import ServerProcess

__all__ = ["browser_page", "live_server"]  # the shared fixtures


def test_pages_and_api_answers_carry_the_headers(client, make_user) -> None:
    owner = make_user("Owner")
    work = owner.register(png_bytes(61), title="Headers").json()
    for path in ("/", "/verify", f"/works/{work['work_id']}", "/api/v1/works", "/no-such-page"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert "script-src 'self' https://js.stripe.com;" in headers["content-security-policy"], path
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "same-origin", path
        assert "strict-transport-security" not in headers  # served over plain HTTP here
    # a downloaded file keeps its own, stricter policy
    download = client.get(f"/api/v1/works/{work['work_id']}/file", headers=owner.headers)
    assert download.headers["content-security-policy"] == "sandbox; default-src 'none'"


def test_https_deployments_ask_browsers_to_stay_on_https(make_settings) -> None:
    from fastapi.testclient import TestClient

    from ipx.app import create_app

    with TestClient(create_app(make_settings(public_url="https://ipx.example"))) as client:
        assert client.get("/").headers["strict-transport-security"] == "max-age=31536000"


@pytest.mark.parametrize(
    ("stripe_js_url", "script", "frame", "connect"),
    [
        ("https://js.stripe.com/v3/", "'self' https://js.stripe.com",
         "https://js.stripe.com https://hooks.stripe.com", "'self' https://js.stripe.com https://api.stripe.com"),
        ("http://127.0.0.1:8420/js.stripe.com/v3/", "'self' http://127.0.0.1:8420", "http://127.0.0.1:8420",
         "'self' http://127.0.0.1:8420"),
    ],
)
def test_the_policy_admits_stripe_js_and_what_it_calls(stripe_js_url, script, frame, connect) -> None:
    directives = dict(part.split(" ", 1) for part in content_security_policy(stripe_js_url).split("; "))
    assert directives["script-src"] == script and directives["frame-src"] == frame
    assert directives["connect-src"] == connect and directives["style-src"] == "'self'"


@pytest.mark.browser
def test_no_page_trips_its_own_policy(live_server: ServerProcess, browser_page: object, tmp_path: Path) -> None:
    """A blocked stylesheet, image or chart would show in Chromium's console, not in a status code."""
    from playwright.sync_api import Page

    page: Page = browser_page  # type: ignore[assignment]
    base = live_server.url
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.goto(base + "/signup")
    page.get_by_label("Name").fill("Ada Lovelace")
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    image = tmp_path / "harbour.png"
    image.write_bytes(png_bytes(62, size=(320, 240)))
    page.goto(base + "/works/new")
    page.get_by_label("File to register").set_input_files(str(image))
    page.get_by_label("Title").fill("Harbour")
    page.get_by_role("button", name="Register and sign").click()
    work_url = page.url.split("?")[0]
    for path in ("/", "/verify", "/market", "/stats", "/me/works", "/me/account", "/complaints/new"):
        page.goto(base + path)
    for url in (work_url, work_url + "/certificate"):
        page.goto(url)
    page.goto(base + "/verify")
    page.locator("input[type=file]").first.set_input_files(str(image))
    page.locator("form.upload-form button[type=submit]").click()
    page.wait_for_load_state()

    assert violations == []
    assert page.evaluate("document.styleSheets.length") >= 1  # the stylesheet itself loaded


def test_an_unexpected_failure_still_carries_the_headers(make_settings, monkeypatch) -> None:
    """Starlette answers an unhandled exception from outside every middleware."""
    from fastapi.testclient import TestClient

    from ipx.app import create_app
    from ipx.registry import service

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(service, "published_keys_document", broken)
    with TestClient(create_app(make_settings()), raise_server_exceptions=False) as client:
        answer = client.get("/.well-known/ipx/keys")
    assert answer.status_code == 500
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"

"""The browser session (the cookie pages set) across pages and API: it only counts on requests from IPX's own pages,
a stale one is a visitor, a new log-in ends the browser's previous one, and what it shows is not cached."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ipx.app import create_app
from ipx.deps import web_origin
from tests.conftest import ApiUser, png_bytes
from tests.marketplace.builders import offer

EVIL = {"Origin": "https://evil.example"}
OWN = {"Origin": "http://testserver"}


def log_in_cookie(client: TestClient, user: ApiUser) -> None:
    """Log in through the form, as a browser: the client keeps the session cookie."""
    response = client.post("/login", data={"email": user.email, "password": user.password}, follow_redirects=False)
    assert response.status_code == 303 and "ipx_session=" in response.headers["set-cookie"]


def test_the_api_ignores_the_session_cookie_on_requests_from_other_sites(client: TestClient, make_user) -> None:
    user = make_user()
    work = user.register(png_bytes(3), title="Mine").json()
    listing = client.post("/api/v1/listings", headers=user.headers, json={"work_id": work["work_id"],
                                                                           "offers": [offer()]}).json()
    withdraw = f"/api/v1/offers/{listing['offers'][0]['offer_id']}/withdraw"
    log_in_cookie(client, user)

    forged = client.post(withdraw, headers=EVIL)  # a form on another website, the browser adding the cookie
    assert forged.status_code == 401
    planted = client.post("/api/v1/works", headers=EVIL, files={"file": ("x.png", png_bytes(4))},
                          data={"title": "Planted by evil"})
    assert planted.status_code == 401
    assert client.get("/api/v1/auth/me").status_code == 200  # reads and IPX's own pages still use the cookie
    assert client.post(withdraw, headers=OWN).status_code == 200


def test_a_stale_cookie_is_a_visitor_on_public_api_reads(client: TestClient, make_user) -> None:
    user = make_user()
    work = user.register(png_bytes(5), title="Public").json()
    listing = client.post("/api/v1/listings", headers=user.headers, json={"work_id": work["work_id"],
                                                                           "offers": [offer()]}).json()
    client.cookies.set("ipx_session", "long-gone-token")
    assert client.get(f"/api/v1/listings/{listing['listing_id']}").status_code == 200
    assert client.get("/api/v1/auth/me").status_code == 401
    assert client.get("/api/v1/auth/me", headers={"Authorization": "Bearer long-gone-token"}).status_code == 401


def test_logging_in_as_someone_else_ends_the_browsers_previous_session(client: TestClient, make_user) -> None:
    first, second = make_user(), make_user()
    log_in_cookie(client, first)
    first_cookie = client.cookies.get("ipx_session")
    log_in_cookie(client, second)
    assert client.get("/api/v1/auth/me").json()["email"] == second.email
    stale = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {first_cookie}"})
    assert stale.status_code == 401


def test_pages_drawn_for_an_account_are_not_cached(client: TestClient, make_user) -> None:
    user = make_user()
    assert client.get("/me/account", headers=user.headers).headers["cache-control"] == "no-store"
    assert "cache-control" not in client.get("/market").headers  # a visitor's page may be cached


def test_a_form_sent_after_the_session_ended_logs_in_back_to_its_page(client: TestClient) -> None:
    sent = client.post("/me/account/password", follow_redirects=False,
                       headers={"Referer": "http://testserver/me/account"}, data={"current_password": "x"})
    assert (sent.status_code, sent.headers["location"]) == (303, "/login?next=/me/account")
    elsewhere = client.post("/me/account/password", follow_redirects=False,
                            headers={"Referer": "https://evil.example/me/account"}, data={"current_password": "x"})
    assert elsewhere.headers["location"] == "/login"


def test_unknown_page_addresses_get_the_error_page_and_the_api_a_problem(client: TestClient) -> None:
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "There is nothing at /no-such-page" in page.text
    wrong_method = client.get("/logout")
    assert wrong_method.status_code == 405 and wrong_method.headers["content-type"].startswith("text/html")
    assert wrong_method.headers["allow"] == "POST"
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("public_url", "secure"), [("https://ipx.example", True), ("http://127.0.0.1:8000", False)])
def test_session_cookies_are_secure_when_ipx_is_served_over_https(make_settings, public_url, secure) -> None:
    with TestClient(create_app(make_settings(public_url=public_url)), base_url=public_url) as https_client:
        signed_up = https_client.post("/signup", follow_redirects=False, headers={"Origin": web_origin(public_url)},
                                      data={"display_name": "Ada", "email": "ada@example.org",
                                            "password": "correct horse 42"})
        assert signed_up.status_code == 303
        assert ("; secure" in signed_up.headers["set-cookie"].lower()) is secure


@pytest.mark.parametrize(("written", "sent"), [
    ("https://IPX.example:443/", "https://ipx.example"), ("http://ipx.example:80", "http://ipx.example"),
    ("https://ipx.example:8443", "https://ipx.example:8443"), ("http://[::1]:8000", "http://[::1]:8000"),
])
def test_origins_compare_as_browsers_send_them(written: str, sent: str) -> None:
    assert web_origin(written) == web_origin(sent) == sent
    assert web_origin("null") != web_origin(written)

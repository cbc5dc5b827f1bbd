"""Passwords through the pages and the API (both databases). A forgotten one: the link arrives by email (the .eml
files the default sender writes), works once and for a limited time, ends every session of the account, and the
forms tell nobody which addresses have accounts. A changed one: only with the current one, keeping the session that
changed it. Either way the address hears of it.
"""

from __future__ import annotations

import email
import json
import re
import threading
import time
from datetime import timedelta
from email import policy
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from ipx import deps
from ipx.accounts.models import PasswordReset
from ipx.app import create_app
from ipx.db import transaction, utcnow
from ipx.notifications.models import OutboxMessage
from ipx.notifications.service import Relay

NEW_PASSWORD = "a brand new passphrase"
LINK = re.compile(r"http://testserver/reset-password/([A-Za-z0-9_-]+)")


def mails_to(settings, address: str) -> list[email.message.EmailMessage]:
    folder = Path(settings.data_dir) / "outbox"
    messages = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(folder.glob("*.eml"))]
    return [m for m in messages if m["To"] == address]  # type: ignore[misc]


def reset_links(settings, address: str) -> list[str]:
    return [LINK.search(m.get_content()).group(0)  # type: ignore[union-attr]
            for m in mails_to(settings, address) if m["Subject"] == "Choose a new password for IPX"]


def without(page: str, address: str) -> str:
    """The page with the address it repeats (as typed, and inside a link) taken out."""
    return page.replace(quote(address, safe=""), "").replace(address, "")


def log_in_status(client: TestClient, address: str, password: str) -> int:
    return client.post("/api/v1/auth/token", data={"username": address, "password": password}).status_code


def ask_for_link(client: TestClient, address: str) -> str:
    sent = client.post("/forgot-password", data={"email": address})
    assert sent.status_code == 200, sent.text
    return sent.text


def test_a_mailed_link_sets_a_new_password_once_and_logs_out_everywhere(client, make_user, settings) -> None:
    user = make_user()
    old_token = user.headers
    login_page = client.get("/login")
    assert 'href="/forgot-password"' in login_page.text

    answer = ask_for_link(client, user.email.upper())  # however the address is typed
    assert "a link to choose a new password is on its way" in answer
    [mail] = mails_to(settings, user.email)
    assert mail["Subject"] == "Choose a new password for IPX"
    [link] = reset_links(settings, user.email)
    path = link.removeprefix("http://testserver")

    form = client.get(path)
    assert form.status_code == 200 and user.email in form.text
    assert form.headers["referrer-policy"] == "strict-origin" and form.headers["cache-control"] == "no-store"
    too_short = client.post(path, data={"password": "short"})
    assert too_short.status_code == 422 and "at least 10 characters" in too_short.text

    done = client.post(path, data={"password": NEW_PASSWORD}, follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (303, "/me/works?password=changed")
    assert "ipx_session=" in done.headers["set-cookie"]
    assert "Password changed." in client.get("/me/works?password=changed").text  # the new session's cookie
    assert client.get("/api/v1/auth/me", headers=old_token).status_code == 401  # the old session ended
    assert log_in_status(client, user.email, NEW_PASSWORD) == 200
    assert log_in_status(client, user.email, user.password) == 401

    with transaction(client.app.state.session_factory) as session:  # the outbox forgot the link once it was sent
        [sent] = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "password_reset"))
        assert sent.sent_at is not None and sent.secret is None and path.rsplit("/", 1)[1] not in sent.body

    spent = client.get(path)
    assert spent.status_code == 410 and "no longer works" in spent.text and 'href="/forgot-password"' in spent.text
    assert client.post(path, data={"password": "another new passphrase"}).status_code == 410


def test_the_answer_is_the_same_for_addresses_without_an_account(client, make_user, settings) -> None:
    user = make_user()
    unknown = ask_for_link(client, "nobody@example.org")
    known = ask_for_link(client, user.email)
    assert without(unknown, "nobody@example.org") == without(known, user.email)
    assert mails_to(settings, "nobody@example.org") == []
    not_an_address = client.post("/forgot-password", data={"email": "not an address"})
    assert not_an_address.status_code == 422 and "is not an email address" in not_an_address.text

    api_unknown = client.post("/api/v1/auth/password-reset", json={"email": "nobody@example.org"})
    api_known = client.post("/api/v1/auth/password-reset", json={"email": user.email})
    assert (api_unknown.status_code, api_unknown.json()) == (api_known.status_code, api_known.json())
    assert api_known.status_code == 202


def test_links_expire_and_a_new_password_ends_the_other_links(client, make_user, settings) -> None:
    user = make_user()
    ask_for_link(client, user.email)
    ask_for_link(client, user.email)
    first, second = (link.removeprefix("http://testserver") for link in reset_links(settings, user.email))
    assert first != second
    with transaction(client.app.state.session_factory) as session:
        session.execute(update(PasswordReset).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get(first).status_code == 410
    assert client.post(first, data={"password": NEW_PASSWORD}).status_code == 410

    ask_for_link(client, user.email)
    third = reset_links(settings, user.email)[-1].removeprefix("http://testserver")
    ask_for_link(client, user.email)
    fourth = reset_links(settings, user.email)[-1].removeprefix("http://testserver")
    assert client.post(third, data={"password": NEW_PASSWORD}, follow_redirects=False).status_code == 303
    assert client.get(fourth).status_code == 410  # a password set through one link spends the others
    assert client.get("/reset-password/made-up-token").status_code == 410


def test_an_address_gets_a_few_links_a_day_at_most(client, make_user, settings) -> None:
    user = make_user()
    for _ in range(settings.password_resets_per_day + 3):
        ask_for_link(client, user.email)
    assert len(mails_to(settings, user.email)) == settings.password_resets_per_day


def test_the_api_resets_with_the_mailed_token_and_clears_the_log_in_throttle(client, make_user, settings) -> None:
    user = make_user()
    for _ in range(settings.login_attempts):
        log_in_status(client, user.email, "wrong guess 123")
    assert log_in_status(client, user.email, user.password) == 429
    assert client.post("/api/v1/auth/password-reset", json={"email": user.email}).status_code == 202
    token = reset_links(settings, user.email)[0].rsplit("/", 1)[1]

    weak = client.post("/api/v1/auth/password-reset/confirm", json={"token": token, "password": "short"})
    assert weak.status_code == 422 and weak.headers["content-type"].startswith("application/problem+json")
    reset = client.post("/api/v1/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert reset.status_code == 200 and reset.json()["email"] == user.email
    assert log_in_status(client, user.email, NEW_PASSWORD) == 200
    again = client.post("/api/v1/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert again.status_code == 410 and "no longer works" in again.json()["detail"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_reset_forms_refuse_posts_from_other_sites(client, make_user) -> None:
    user = make_user()
    forged = client.post("/forgot-password", data={"email": user.email}, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403



def test_accounts_stored_under_a_special_use_domain_can_reset(client, settings) -> None:
    """`ipx users create` stored addresses merely lower-cased, a special-use domain included: such an account logs
    in (tests/api/test_registry_api.py), so it can choose a new password too."""
    from ipx.accounts.service import create_user

    with transaction(client.app.state.session_factory) as session:
        create_user(session, email="placeholder@example.org", password="long enough 1", display_name="Op").email = (
            "admin@ipx.local"
        )
    assert "on its way" in ask_for_link(client, "Admin@ipx.local")
    [link] = reset_links(settings, "admin@ipx.local")
    assert client.post(link.removeprefix("http://testserver"), data={"password": NEW_PASSWORD},
                       follow_redirects=False).status_code == 303
    assert log_in_status(client, "admin@ipx.local", NEW_PASSWORD) == 200


def test_a_logged_in_account_changes_its_password_on_the_account_page(client, make_user, settings) -> None:
    from tests.conftest import bearer_headers

    user = make_user()
    other_session = bearer_headers(client, user.email, user.password)
    page = client.get("/me/account", headers=user.headers)
    assert page.status_code == 200 and user.email in page.text and "Change password" in page.text
    assert 'href="/me/account"' in page.text  # the name in the navigation leads here

    wrong = client.post("/me/account/password", headers=user.headers,
                        data={"current_password": "not it at all", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 422 and "The current password is not correct." in wrong.text
    short = client.post("/me/account/password", headers=user.headers,
                        data={"current_password": user.password, "new_password": "short"})
    assert short.status_code == 422 and "at least 10 characters" in short.text
    assert log_in_status(client, user.email, user.password) == 200  # neither changed anything

    changed = client.post("/me/account/password", headers=user.headers, follow_redirects=False,
                          data={"current_password": user.password, "new_password": NEW_PASSWORD})
    assert (changed.status_code, changed.headers["location"]) == (303, "/me/account?password=changed")
    assert "Password changed." in client.get("/me/account?password=changed", headers=user.headers).text
    assert client.get("/api/v1/auth/me", headers=other_session).status_code == 401
    assert log_in_status(client, user.email, NEW_PASSWORD) == 200
    assert log_in_status(client, user.email, user.password) == 401
    [notice] = mails_to(settings, user.email)
    assert notice["Subject"] == "Your IPX password was changed"
    assert "http://testserver/forgot-password" in notice.get_content()  # type: ignore[union-attr]


def test_the_api_changes_a_password_given_the_current_one(client, make_user, settings) -> None:
    from tests.conftest import bearer_headers

    user = make_user()
    other_session = bearer_headers(client, user.email, user.password)
    wrong = client.post("/api/v1/auth/password", headers=user.headers,
                        json={"current_password": "not it at all", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 422 and wrong.json()["detail"] == "The current password is not correct."
    assert client.post("/api/v1/auth/password", json={"current_password": user.password,
                                                      "new_password": NEW_PASSWORD}).status_code == 401
    changed = client.post("/api/v1/auth/password", headers=user.headers,
                          json={"current_password": user.password, "new_password": NEW_PASSWORD})
    assert changed.status_code == 200 and changed.json()["email"] == user.email
    assert client.get("/api/v1/auth/me", headers=user.headers).status_code == 200  # the caller's token stays
    assert client.get("/api/v1/auth/me", headers=other_session).status_code == 401
    for _ in range(settings.login_attempts):  # guesses at the current password count like log-in guesses
        client.post("/api/v1/auth/password", headers=user.headers,
                    json={"current_password": "guess guess 1", "new_password": "whatever 12345"})
    throttled = client.post("/api/v1/auth/password", headers=user.headers,
                            json={"current_password": NEW_PASSWORD, "new_password": "whatever 12345"})
    assert throttled.status_code == 429 and "Retry-After" in throttled.headers


def test_a_reset_tells_the_address_too(client, make_user, settings) -> None:
    user = make_user()
    ask_for_link(client, user.email)
    [link] = reset_links(settings, user.email)
    client.post(link.removeprefix("http://testserver"), data={"password": NEW_PASSWORD})
    assert [m["Subject"] for m in mails_to(settings, user.email)] == [
        "Choose a new password for IPX", "Your IPX password was changed",
    ]


def test_passwords_that_are_not_text_are_refused_in_words(client, make_user, settings) -> None:
    user = make_user()
    lone_surrogate = "new passw\ud800rd and more"  # JSON can spell it (as an escape); UTF-8 cannot carry it

    def send(path: str, body: dict[str, str], headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return client.post(path, content=json.dumps(body), headers={"Content-Type": "application/json",
                                                                    **(headers or {})})

    changed = send("/api/v1/auth/password", {"current_password": user.password, "new_password": lone_surrogate},
                   user.headers)
    assert changed.status_code == 422 and changed.headers["content-type"] == "application/problem+json"
    ask_for_link(client, user.email)
    token = reset_links(settings, user.email)[0].rsplit("/", 1)[1]
    reset = send("/api/v1/auth/password-reset/confirm", {"token": token, "password": lone_surrogate})
    assert reset.status_code == 422 and reset.headers["content-type"] == "application/problem+json"


def test_special_use_addresses_without_an_account_get_the_same_answer(client) -> None:
    from ipx.accounts.service import create_user

    with transaction(client.app.state.session_factory) as session:
        create_user(session, email="placeholder@example.org", password="long enough 1", display_name="Op").email = (
            "admin@ipx.local"
        )
    known, unknown = ask_for_link(client, "admin@ipx.local"), ask_for_link(client, "nobody@ipx.local")
    assert without(known, "admin@ipx.local") == without(unknown, "nobody@ipx.local")
    for address in ("admin@ipx.local", "nobody@ipx.local"):
        assert client.post("/api/v1/auth/password-reset", json={"email": address}).status_code == 202


class HeldSender:
    """A mail server that answers only when the test lets it: shows whether a request waits for its mail."""

    def __init__(self) -> None:
        self.release, self.sent = threading.Event(), []  # type: ignore[var-annotated]

    def send(self, message: email.message.EmailMessage) -> None:
        self.release.wait(30)
        self.sent.append(message["To"])


def test_a_reset_request_answers_before_its_mail_is_sent(settings, monkeypatch) -> None:
    """Otherwise a slow mail server tells who has an account: only their requests would wait for one."""
    held = HeldSender()
    monkeypatch.setattr(deps, "relay_for", lambda settings: Relay(held, settings.public_url))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        account = {"email": "held@example.org", "password": "correct horse 42", "display_name": "Held"}
        assert httpx.post(f"{base}/api/v1/auth/register", json=account).status_code == 201
        asked = httpx.post(f"{base}/api/v1/auth/password-reset", json={"email": account["email"]}, timeout=10)
        assert asked.status_code == 202 and held.sent == []  # answered while the mail server still held the mail
        held.release.set()
        for _ in range(500):
            if held.sent:
                break
            time.sleep(0.01)
        assert held.sent == [account["email"]]
    finally:
        held.release.set()
        server.should_exit = True
        thread.join(10)

"""Two-step verification through the API and the pages (both databases): set up with the app's first code, then
every log-in takes a code after the password; a code works once, recovery codes once each; guesses are throttled
apart from passwords; a password reset does not switch it off; turning it off takes the password and a code.

The authenticator's clock is moved forward 30 seconds for each new code (`Authenticator`), instead of waiting.
"""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner

from ipx.accounts import totp, two_factor
from ipx.accounts.models import LoginChallenge, Role, TwoFactor
from ipx.accounts.service import create_user
from ipx.app import create_app
from ipx.cli import app as cli_app
from ipx.db import transaction, utcnow
from tests.api.test_passwords import mails_to, reset_links
from tests.conftest import bearer_headers

START = 1_800_000_000.0
CHALLENGE = re.compile(r'name="challenge" value="([^"]+)"')
SECRET_KEY = re.compile(r'id="secret-key">([A-Z2-7 ]+)<')


def key_bytes(base32_text: str) -> bytes:
    """An authenticator app's reading of a key typed or scanned: base32, spaces and padding optional."""
    text = base32_text.replace(" ", "")
    return base64.b32decode(text + "=" * (-len(text) % 8))


class Authenticator:
    """The phone: knows the secret and shows the code of the clock's current step; `next_code` waits 30 s."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = START
        monkeypatch.setattr(two_factor, "_clock", lambda: self.now)
        self.secret = b""

    def read_key(self, typed: str) -> None:
        self.secret = key_bytes(typed)

    def code(self) -> str:
        return totp.code_at(self.secret, totp.step_at(self.now))

    def next_code(self) -> str:
        self.now += totp.STEP_SECONDS
        return self.code()


@pytest.fixture
def phone(monkeypatch: pytest.MonkeyPatch) -> Authenticator:
    return Authenticator(monkeypatch)


def token_answer(client: TestClient, email: str, password: str, otp: str | None = None):  # type: ignore[no-untyped-def]
    data = {"username": email, "password": password, **({"otp": otp} if otp is not None else {})}
    return client.post("/api/v1/auth/token", data=data)


def turn_on(client: TestClient, user, phone: Authenticator) -> list[str]:  # type: ignore[no-untyped-def]
    begun = client.post("/api/v1/auth/two-factor", headers=user.headers, json={"password": user.password})
    assert begun.status_code == 201, begun.text
    phone.read_key(begun.json()["secret"])
    confirmed = client.post("/api/v1/auth/two-factor/confirm", headers=user.headers, json={"code": phone.code()})
    assert confirmed.status_code == 200, confirmed.text
    return confirmed.json()["recovery_codes"]


def test_set_up_through_the_api_then_every_token_takes_a_code_once(client, make_user, settings, phone) -> None:
    user = make_user()
    other_session = token_answer(client, user.email, user.password).json()["access_token"]
    wrong_password = client.post("/api/v1/auth/two-factor", headers=user.headers, json={"password": "not it at all"})
    assert wrong_password.status_code == 422 and "password is not correct" in wrong_password.json()["detail"]

    begun = client.post("/api/v1/auth/two-factor", headers=user.headers, json={"password": user.password})
    assert begun.status_code == 201
    assert begun.json()["otpauth_uri"].startswith(f"otpauth://totp/IPX:{user.email}?secret=")
    phone.read_key(begun.json()["secret"])
    status = client.get("/api/v1/auth/two-factor", headers=user.headers).json()
    assert status == {"enabled": False, "enabled_at": None, "setting_up": True, "recovery_codes_left": 0}
    assert token_answer(client, user.email, user.password).status_code == 200  # nothing asked until confirmed

    wrong = client.post("/api/v1/auth/two-factor/confirm", headers=user.headers, json={"code": "000000"})
    assert wrong.status_code == 422 and "not the code the app shows" in wrong.json()["detail"]
    confirmed = client.post("/api/v1/auth/two-factor/confirm", headers=user.headers, json={"code": phone.code()})
    assert confirmed.status_code == 200
    assert len(set(confirmed.json()["recovery_codes"])) == 10
    assert client.get("/api/v1/auth/me", headers=user.headers).json()["two_factor"] is True  # this session stays
    other = {"Authorization": f"Bearer {other_session}"}
    assert client.get("/api/v1/auth/me", headers=other).status_code == 401  # the others never passed a code
    [enabled_mail] = mails_to(settings, user.email)
    assert enabled_mail["Subject"] == "Two-step verification is on for your IPX account"

    no_code = token_answer(client, user.email, user.password)
    assert no_code.status_code == 401 and "“otp”" in no_code.json()["detail"]
    assert no_code.json()["title"] == "Two-step verification required"
    assert token_answer(client, user.email, user.password, "123456").status_code == 401
    assert token_answer(client, user.email, "wrong password", phone.next_code()).status_code == 401
    code = phone.code()
    assert token_answer(client, user.email, user.password, code).status_code == 200
    assert token_answer(client, user.email, user.password, code).status_code == 401  # a code works once
    assert token_answer(client, user.email, user.password, phone.next_code()).status_code == 200
    again = client.post("/api/v1/auth/two-factor", headers=user.headers, json={"password": user.password})
    assert again.status_code == 409


def test_recovery_codes_work_once_each_and_new_ones_replace_them(client, make_user, settings, phone) -> None:
    user = make_user()
    codes = turn_on(client, user, phone)
    assert token_answer(client, user.email, user.password, codes[0].upper()).status_code == 200
    assert token_answer(client, user.email, user.password, codes[0]).status_code == 401
    subject = "A recovery code was used for your IPX account"
    used = [m for m in mails_to(settings, user.email) if m["Subject"] == subject]
    assert len(used) == 1 and "9 unused recovery codes are left." in used[0].get_content()
    assert client.get("/api/v1/auth/two-factor", headers=user.headers).json()["recovery_codes_left"] == 9

    replace = "/api/v1/auth/two-factor/recovery-codes"
    password_only = client.post(replace, headers=user.headers, json={"password": user.password, "code": ""})
    assert password_only.status_code == 422  # a recovery code turns it off: making them takes both steps
    fresh = client.post(replace, headers=user.headers, json={"password": user.password, "code": phone.next_code()})
    assert fresh.status_code == 200 and not set(fresh.json()["recovery_codes"]) & set(codes)
    assert fresh.headers["cache-control"] == "no-store"
    assert "New recovery codes for your IPX account" in [m["Subject"] for m in mails_to(settings, user.email)]
    assert token_answer(client, user.email, user.password, codes[1]).status_code == 401  # the old set is gone
    assert token_answer(client, user.email, user.password, fresh.json()["recovery_codes"][5]).status_code == 200
    new_codes = fresh.json()["recovery_codes"]
    for code in new_codes[:5] + new_codes[6:9]:  # all but one spent
        assert token_answer(client, user.email, user.password, code).status_code == 200
    told = [m.get_content() for m in mails_to(settings, user.email) if m["Subject"] == subject]
    assert any("\n1 unused recovery code is left.\n" in text for text in told)


def test_wrong_codes_are_throttled_and_a_right_password_does_not_clear_their_count(client, make_user, settings,
                                                                                  phone) -> None:
    user = make_user()
    turn_on(client, user, phone)
    for guess in range(settings.login_attempts):
        assert token_answer(client, user.email, user.password, f"{guess:06d}").status_code == 401
    locked = token_answer(client, user.email, user.password, phone.next_code())
    assert locked.status_code == 429 and "retry-after" in locked.headers


def test_turning_it_off_takes_the_password_and_a_code(client, make_user, settings, phone) -> None:
    user = make_user()
    codes = turn_on(client, user, phone)
    token = token_answer(client, user.email, user.password, phone.next_code()).json()["access_token"]

    def turn_off(password: str, code: str) -> int:
        body = {"password": password, "code": code}
        return client.post("/api/v1/auth/two-factor/disable", headers={"Authorization": f"Bearer {token}"},
                           json=body).status_code

    assert turn_off("not the password", phone.next_code()) == 422
    assert turn_off(user.password, "999999") == 422
    assert turn_off(user.password, codes[3]) == 200
    assert token_answer(client, user.email, user.password).status_code == 200
    assert turn_off(user.password, codes[4]) == 409
    subjects = [m["Subject"] for m in mails_to(settings, user.email)]
    assert "Two-step verification is off for your IPX account" in subjects


def log_in_page(client: TestClient, email: str, password: str, next_path: str = "/me/works"):  # type: ignore[no-untyped-def]
    return client.post("/login", data={"email": email, "password": password, "next": next_path},
                       follow_redirects=False)


def test_the_log_in_page_asks_for_the_code_after_the_password(client, make_user, phone) -> None:
    user = make_user()
    turn_on(client, user, phone)
    step = log_in_page(client, user.email, user.password, "/me/account")
    assert step.status_code == 200 and "ipx_session" not in step.headers.get("set-cookie", "")
    assert "One more step" in step.text and step.headers["cache-control"] == "no-store"
    challenge = CHALLENGE.search(step.text).group(1)  # type: ignore[union-attr]

    wrong = client.post("/login/code", data={"challenge": challenge, "code": "000000", "next": "/me/account"})
    assert wrong.status_code == 422 and "4 more tries" in wrong.text
    done = client.post("/login/code", data={"challenge": challenge, "code": phone.next_code(), "next": "/me/account"},
                       follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (303, "/me/account")
    assert "ipx_session=" in done.headers["set-cookie"]
    page = client.get("/me/account")
    assert "10 of 10 recovery codes unused" in page.text
    spent = client.post("/login/code", data={"challenge": challenge, "code": phone.next_code()})
    assert spent.status_code == 410 and "Log in again" in spent.text


def test_a_log_in_is_over_after_five_wrong_codes_or_five_minutes(client, make_user, phone) -> None:
    user = make_user()
    turn_on(client, user, phone)
    challenge = CHALLENGE.search(log_in_page(client, user.email, user.password).text).group(1)  # type: ignore[union-attr]
    for _ in range(two_factor.CHALLENGE_FAILURES - 1):
        assert client.post("/login/code", data={"challenge": challenge, "code": "000000"}).status_code == 422
    last = client.post("/login/code", data={"challenge": challenge, "code": "000000"})
    assert last.status_code == 410 and "5 wrong codes" in last.text
    right_but_late = client.post("/login/code", data={"challenge": challenge, "code": phone.next_code()})
    assert right_but_late.status_code == 410

    challenge = CHALLENGE.search(log_in_page(client, user.email, user.password).text).group(1)  # type: ignore[union-attr]
    with transaction(client.app.state.session_factory) as session:
        session.execute(update(LoginChallenge).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = client.post("/login/code", data={"challenge": challenge, "code": phone.next_code()})
    assert expired.status_code == 410 and "within 5 minutes" in expired.text
    assert client.post("/login/code", data={"challenge": "made-up", "code": "123456"}).status_code == 410


def test_a_password_reset_keeps_two_step_verification_on(client, make_user, settings, phone) -> None:
    user = make_user()
    turn_on(client, user, phone)
    client.post("/forgot-password", data={"email": user.email})
    path = reset_links(settings, user.email)[0].removeprefix("http://testserver")
    reset = client.post(path, data={"password": "a brand new passphrase"}, follow_redirects=False)
    assert reset.status_code == 200 and "Your password is changed." in reset.text
    assert "ipx_session" not in reset.headers.get("set-cookie", "")  # not logged in before the code
    challenge = CHALLENGE.search(reset.text).group(1)  # type: ignore[union-attr]
    done = client.post("/login/code", data={"challenge": challenge, "code": phone.next_code(),
                                            "next": "/me/works?password=changed"}, follow_redirects=False)
    assert done.headers["location"] == "/me/works?password=changed" and "ipx_session=" in done.headers["set-cookie"]


def test_the_account_page_sets_it_up_shows_the_codes_once_and_turns_it_off(client, make_user, phone) -> None:
    user = make_user()
    assert log_in_page(client, user.email, user.password).status_code == 303
    account = client.get("/me/account")
    assert "Set up two-step verification" in account.text
    wrong = client.post("/me/account/two-factor", data={"password": "not the password"})
    assert wrong.status_code == 422 and "password is not correct" in wrong.text
    setup = client.post("/me/account/two-factor", data={"password": user.password})
    assert setup.status_code == 200 and setup.headers["cache-control"] == "no-store" and "<svg" in setup.text
    phone.read_key(SECRET_KEY.search(setup.text).group(1))  # type: ignore[union-attr]
    waiting = client.get("/me/account")
    assert "Finish the set-up you began" in waiting.text and not SECRET_KEY.search(waiting.text)  # shown once
    assert client.get("/me/account/two-factor", follow_redirects=False).headers["location"] == "/me/account#two-factor"

    bad = client.post("/me/account/two-factor/confirm", data={"code": "000000"})
    assert bad.status_code == 422 and "not the code the app shows" in bad.text and "<svg" not in bad.text
    codes_page = client.post("/me/account/two-factor/confirm", data={"code": phone.code()})
    assert codes_page.status_code == 200 and codes_page.headers["cache-control"] == "no-store"
    codes = re.findall(r"<li>([a-z2-7]{4}(?:-[a-z2-7]{4}){3})</li>", codes_page.text)
    assert len(codes) == 10
    assert "10 of 10 recovery codes unused" in client.get("/me/account").text  # still logged in here

    no_code = client.post("/me/account/two-factor/recovery-codes", data={"password": user.password, "code": "1"})
    assert no_code.status_code == 422 and 'id="codes_code-error"' in no_code.text
    wrong_code = client.post("/me/account/two-factor/disable", data={"password": user.password, "code": "000000"})
    assert wrong_code.status_code == 422 and "The code is not correct" in wrong_code.text
    off = client.post("/me/account/two-factor/disable", data={"password": user.password, "code": phone.next_code()},
                      follow_redirects=False)
    assert off.headers["location"] == "/me/account?two_factor=off"
    assert "Two-step verification is off." in client.get("/me/account?two_factor=off").text
    assert log_in_page(client, user.email, user.password).status_code == 303


def test_a_stolen_session_cannot_read_or_finish_a_set_up(client, make_user, phone) -> None:
    """The key is shown only to whoever gave the password, and a set-up left unfinished lapses."""
    owner = make_user()
    stolen = owner.headers
    mine = {"Authorization": f"Bearer {token_answer(client, owner.email, owner.password).json()['access_token']}"}
    begun = client.post("/api/v1/auth/two-factor", headers=mine, json={"password": owner.password})
    assert begun.status_code == 201 and begun.headers["cache-control"] == "no-store"
    assert "secret" not in client.get("/api/v1/auth/two-factor", headers=stolen).json()
    client.cookies.set("ipx_session", stolen["Authorization"].removeprefix("Bearer "))
    assert not SECRET_KEY.search(client.get("/me/account/two-factor").text)
    with transaction(client.app.state.session_factory) as session:
        session.execute(update(TwoFactor).values(created_at=utcnow() - timedelta(seconds=two_factor.SETUP_SECONDS)))
    phone.read_key(begun.json()["secret"])
    lapsed = client.post("/api/v1/auth/two-factor/confirm", headers=mine, json={"code": phone.code()})
    assert lapsed.status_code == 409 and "start it again" in lapsed.json()["detail"]
    assert client.get("/api/v1/auth/two-factor", headers=mine).json()["setting_up"] is False


def test_mail_and_log_ins_in_progress_follow_every_change(client, make_user, settings, phone) -> None:
    user = make_user()
    codes = turn_on(client, user, phone)
    subject = "A recovery code was used for your IPX account"
    challenge = CHALLENGE.search(log_in_page(client, user.email, user.password).text).group(1)  # type: ignore[union-attr]
    done = client.post("/login/code", data={"challenge": challenge, "code": codes[0]}, follow_redirects=False)
    assert done.status_code == 303
    assert len([m for m in mails_to(settings, user.email) if m["Subject"] == subject]) == 1  # sent by the page too

    started = CHALLENGE.search(log_in_page(client, user.email, user.password).text).group(1)  # type: ignore[union-attr]
    client.post("/forgot-password", data={"email": user.email})
    path = reset_links(settings, user.email)[0].removeprefix("http://testserver")
    client.post(path, data={"password": "a brand new passphrase"}, follow_redirects=False)
    client.cookies.clear()
    late = client.post("/login/code", data={"challenge": started, "code": phone.next_code()})
    assert late.status_code == 410  # a log-in begun with the old password ended with it

    headers = {"Authorization": "Bearer " + token_answer(
        client, user.email, "a brand new passphrase", phone.next_code()).json()["access_token"]}
    off = client.post("/api/v1/auth/two-factor/disable", headers=headers,
                      json={"password": "a brand new passphrase", "code": codes[1]})
    assert off.status_code == 200
    assert len([m for m in mails_to(settings, user.email) if m["Subject"] == subject]) == 1  # the off mail says it
    assert token_answer(client, user.email, "a brand new passphrase").headers["cache-control"] == "no-store"


def test_failing_to_log_in_as_anything_else_leaves_an_accounts_codes_alone(client, make_user, settings,
                                                                          phone) -> None:
    user = make_user()
    turn_on(client, user, phone)
    for suffix in (" second step", f" Second step of account {user.account_id}"):
        for _ in range(settings.login_attempts):
            assert token_answer(client, f"{user.email}{suffix}", "anything at all").status_code == 401
            assert token_answer(client, f"Second step of account {user.account_id}", "x").status_code in (401, 429)
    assert token_answer(client, user.email, user.password, phone.next_code()).status_code == 200


def test_staff_turn_it_off_from_the_command_line_for_a_lost_phone(client, make_user, settings, phone,
                                                                  monkeypatch) -> None:
    user = make_user()
    turn_on(client, user, phone)
    monkeypatch.setenv("IPX_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("IPX_DATA_DIR", str(settings.data_dir))
    done = CliRunner().invoke(cli_app, ["users", "two-factor-off", user.email.upper()])
    assert done.exit_code == 0, done.output
    assert f"two-step verification is off for {user.email}" in done.output
    assert token_answer(client, user.email, user.password).status_code == 200
    again = CliRunner().invoke(cli_app, ["users", "two-factor-off", user.email])
    assert again.exit_code == 1 and "not on" in again.output
    begun = client.post("/api/v1/auth/two-factor", headers=user.headers, json={"password": user.password})
    assert begun.status_code == 201
    pending = CliRunner().invoke(cli_app, ["users", "two-factor-off", user.email])  # a set-up never finished
    assert pending.exit_code == 1 and "logging in takes the password alone" in pending.output
    subjects = [m["Subject"] for m in mails_to(settings, user.email)]
    assert subjects.count("Two-step verification is off for your IPX account") == 1


def test_where_required_staff_act_as_staff_only_with_it_on(make_settings, phone) -> None:
    with TestClient(create_app(make_settings(staff_two_factor_required=True))) as client:
        email, password = "sam@ipx.example", "staff password 1"
        with transaction(client.app.state.session_factory) as session:
            create_user(session, email=email, password=password, display_name="Sam Staff", role=Role.staff)
        staff = bearer_headers(client, email, password)
        refused = client.get("/api/v1/staff/complaints", headers=staff)
        assert refused.status_code == 403 and "must use two-step verification" in refused.json()["detail"]
        client.cookies.set("ipx_session", staff["Authorization"].removeprefix("Bearer "))
        page = client.get("/staff/complaints")
        assert page.status_code == 403 and "/me/account" in page.text
        client.cookies.clear()

        begun = client.post("/api/v1/auth/two-factor", headers=staff, json={"password": password})
        phone.read_key(begun.json()["secret"])
        confirmed = client.post("/api/v1/auth/two-factor/confirm", headers=staff, json={"code": phone.code()})
        assert confirmed.status_code == 200
        assert client.get("/api/v1/staff/complaints", headers=staff).status_code == 200  # this session goes on

"""One authenticator code sent twice at the same moment (a double-clicked form, or someone who watched it being
typed), on PostgreSQL: the account's row lock makes the second wait for the first, then see the code spent."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from ipx.accounts import service, two_factor
from ipx.errors import Unauthorized
from tests.api.test_two_factor import Authenticator, token_answer, turn_on
from tests.races import interleave


@pytest.fixture(autouse=True)
def postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers at BEGIN, so two transactions cannot interleave there")


def test_one_code_opens_one_session_when_sent_twice_at_once(client, make_user, monkeypatch) -> None:
    phone = Authenticator(monkeypatch)
    user = make_user()
    turn_on(client, user, phone)
    code = phone.next_code()

    def log_in(session: Session) -> None:
        account = service.authenticate(session, email=user.email, password=user.password)
        two_factor.check_token_request(session, account, code, None)

    with pytest.raises(Unauthorized, match="code is not correct"):
        interleave(client.app.state.session_factory, log_in, log_in)
    assert token_answer(client, user.email, user.password, code).status_code == 401
    assert token_answer(client, user.email, user.password, phone.next_code()).status_code == 200

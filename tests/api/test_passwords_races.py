"""Password resets at the same moment as a log-in, another reset or another reset request, on PostgreSQL: each of
them locks the account's row first, so they take turns (SQLite's transactions take turns at BEGIN anyway)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ipx.accounts import service
from ipx.accounts.models import PasswordReset
from ipx.db import transaction
from ipx.errors import Unauthorized
from ipx.notifications.models import OutboxMessage
from tests.races import interleave

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(autouse=True)
def postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers at BEGIN, so two transactions cannot interleave there")


def reset_token(client, email: str) -> str:
    """A reset link's token, read from the outbox before the relay sends (and erases) it."""
    with transaction(client.app.state.session_factory) as session:
        service.request_password_reset(session, email=email, ttl_seconds=3600, per_day=10)
        return str(session.scalars(select(OutboxMessage.secret).order_by(OutboxMessage.id.desc())).first())


def test_a_log_in_with_the_old_password_does_not_outlive_a_reset(client, make_user) -> None:
    user = make_user()
    token = reset_token(client, user.email)
    issued: dict[str, str] = {}

    def log_in(session: Session) -> None:  # the old password checked, the token written, not yet committed
        account = service.authenticate(session, email=user.email, password=user.password)
        issued["bearer"] = service.issue_token(session, account, 3600)[0]

    def reset(session: Session) -> None:
        service.reset_password(session, token=token, new_password=NEW_PASSWORD)

    interleave(client.app.state.session_factory, log_in, reset)
    with transaction(client.app.state.session_factory) as session, pytest.raises(Unauthorized):
        service.principal_for_token(session, issued["bearer"])


def test_two_links_of_one_account_used_at_once_take_turns(client, make_user) -> None:
    user = make_user()
    first, second = reset_token(client, user.email), reset_token(client, user.email)

    def reset_with(token: str, password: str):  # type: ignore[no-untyped-def]
        return lambda session: service.reset_password(session, token=token, new_password=password)

    with pytest.raises(service.ResetLinkInvalid):  # the first spent the second: refused in words, no deadlock
        interleave(client.app.state.session_factory, reset_with(first, NEW_PASSWORD),
                   reset_with(second, "another passphrase"))
    with transaction(client.app.state.session_factory) as session:
        assert service.authenticate(session, email=user.email, password=NEW_PASSWORD).email == user.email


def test_parallel_reset_requests_count_against_one_daily_limit(client, make_user) -> None:
    user = make_user()

    def ask(session: Session) -> None:
        service.request_password_reset(session, email=user.email, ttl_seconds=3600, per_day=1)

    interleave(client.app.state.session_factory, ask, ask)
    with transaction(client.app.state.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(PasswordReset)) == 1

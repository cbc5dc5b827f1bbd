"""What a second bug hunt found in the complaints flow, each kept fixed: text longer than its column (a 500 on
PostgreSQL only), a legal-action report after its deadline, and the races PostgreSQL lets two requests run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ipx.accounts.service import principal_for_token
from ipx.complaints.models import Complaint
from ipx.complaints.review import decide_review
from ipx.complaints.schemas import NoticeIn, ReviewDecision
from ipx.complaints.service import ComplaintsContext, file_notice
from ipx.db import transaction
from ipx.errors import Conflict
from ipx.notifications import service as outbox
from ipx.notifications.models import OutboxMessage
from ipx.registry.models import PriorMatch
from tests.complaints.conftest import CopyCase, act, file, notice
from tests.conftest import ApiUser
from tests.marketplace.conftest import noise_png
from tests.races import interleave

COUNTER = {"statement": "I took this photograph myself in 2019; the complainant copied mine.",
           "consent_to_jurisdiction": True, "signature": "Bob Later"}
FRIDAY_NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers at BEGIN, so two transactions cannot interleave there")


def test_a_copy_of_a_work_with_a_long_title_registers_and_alerts(client) -> None:
    alice, bob = ApiUser(client, "alice@example.org", "Alice"), ApiUser(client, "bob@example.org", "Bob")
    picture = noise_png(4242)
    assert alice.register(picture, title="T" * 500).status_code == 201
    assert bob.register(picture, title="Copy").status_code == 201
    with transaction(client.app.state.session_factory) as session:
        subjects = list(session.scalars(select(OutboxMessage.subject).where(OutboxMessage.to_email == alice.email)))
    assert subjects and all(len(subject) <= outbox.MAX_SUBJECT for subject in subjects)
    assert subjects[-1].endswith("…")


def test_a_notice_url_longer_than_ipx_keeps_is_refused_in_words(client, copy_case: CopyCase) -> None:
    url = "https://elsewhere.example/" + "a" * 2000
    refused = client.post("/api/v1/complaints", json=notice(copy_case.original["work_id"], {"url": url}))
    assert refused.status_code == 422 and "infringing" in refused.text and "2000" in refused.text


def test_legal_action_reported_after_the_restoration_date_is_refused(client, copy_case: CopyCase, staff) -> None:
    client.app.state.clock = lambda: FRIDAY_NOON
    filed = file(client, notice(copy_case.original["work_id"], {"work_id": copy_case.copy["work_id"]}))
    assert act(client, staff, filed["complaint_id"], "mark_disputed").status_code == 200
    countered = client.post(f"/api/v1/complaints/{filed['complaint_id']}/counter-notice",
                            headers=copy_case.bob.headers, json=COUNTER)
    due = datetime.fromisoformat(countered.json()["restore_due_at"].replace("Z", "+00:00"))
    report = {"token": filed["token"], "note": "Case 1:26-cv-9, filed today"}
    client.app.state.clock = lambda: due + timedelta(days=1)  # `ipx complaints tick` has not run yet
    late = client.post(f"/api/v1/complaints/{filed['complaint_id']}/legal-action", json=report)
    assert late.status_code == 409 and "ended on" in late.json()["detail"]
    client.app.state.clock = lambda: due - timedelta(hours=1)
    in_time = client.post(f"/api/v1/complaints/{filed['complaint_id']}/legal-action", json=report)
    assert in_time.status_code == 200 and in_time.json()["status"] == "legal_action"


class CountingSender:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, message) -> None:  # type: ignore[no-untyped-def]
        self.sent.append(str(message["Message-ID"]))


def test_two_relays_at_once_send_a_message_once(client, database_url) -> None:
    postgres_only(database_url)
    factory = client.app.state.session_factory
    with transaction(factory) as session:
        outbox.enqueue(session, kind="complaint.receipt", to_email="a@example.org", subject="s", body="b")
    sender = CountingSender()
    relay = outbox.Relay(sender, "http://testserver")  # type: ignore[arg-type]
    interleave(factory, lambda s: outbox.deliver_pending(s, relay), lambda s: outbox.deliver_pending(s, relay))
    assert len(sender.sent) == 1


def test_two_review_decisions_at_once_keep_the_first(client, copy_case: CopyCase, staff, database_url) -> None:
    postgres_only(database_url)
    factory = client.app.state.session_factory
    with transaction(factory) as session:
        flag_id = session.scalar(select(PriorMatch.id))
        staffer = principal_for_token(session, staff["Authorization"].split()[1])
    with pytest.raises(Conflict, match="decisions are final"):
        interleave(factory,
                   lambda s: decide_review(s, flag_id, ReviewDecision.clear, staff=staffer, reason="no copying"),
                   lambda s: decide_review(s, flag_id, ReviewDecision.uphold, staff=staffer, reason="copied"))
    with transaction(factory) as session:
        assert session.get(PriorMatch, flag_id).review_status == "cleared"  # type: ignore[union-attr]


def test_the_same_notice_sent_twice_at_once_opens_one_case(client, copy_case: CopyCase, database_url) -> None:
    postgres_only(database_url)
    body = NoticeIn.model_validate(notice(copy_case.original["work_id"], {"work_id": copy_case.copy["work_id"]}))

    def send(session):  # type: ignore[no-untyped-def]
        file_notice(session, body, caller=None, ctx=ComplaintsContext())

    with pytest.raises(Conflict, match="already open"):
        interleave(client.app.state.session_factory, send, send)
    with transaction(client.app.state.session_factory) as session:
        assert len(session.scalars(select(Complaint)).all()) == 1

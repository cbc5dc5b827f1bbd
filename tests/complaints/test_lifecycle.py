"""Every case transition through the API, the restoration clock, and what the parties are told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message

import pytest
from pydantic import ValidationError
from sqlalchemy import update
from typer.testing import CliRunner

from ipx.cli import app as cli_app
from ipx.complaints import service
from ipx.complaints.clock import add_business_days
from ipx.complaints.service import process_due_restorations
from ipx.config import Settings
from ipx.db import transaction
from ipx.registry.models import Work
from tests.complaints.conftest import CopyCase, act, file, notice, register_a_copy
from tests.conftest import get_counting_queries
from tests.marketplace.conftest import noise_png

COUNTER = {"statement": "I took this photograph myself in 2019; the complainant copied mine.",
           "consent_to_jurisdiction": True, "signature": "Bob Later"}
FRIDAY_NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def filed_case(client, copy_case: CopyCase) -> dict:
    return file(client, notice(copy_case.original["work_id"], {"work_id": copy_case.copy["work_id"]}))


def case_against_a_new_copy(client, copy_case: CopyCase, make_user, number: int) -> dict:
    """Alice registers another work, a new account registers the same bytes, and she files a notice against it."""
    original, copied = register_a_copy(copy_case, make_user(f"Copier {number}"), noise_png(7000 + number), f" {number}")
    return file(client, notice(original["work_id"], {"work_id": copied["work_id"]}))


def work_status(client, work_id: str) -> str:
    return client.get(f"/api/v1/works/{work_id}").json()["status"]


def outbox_mail(settings: Settings) -> list[Message]:
    folder = settings.data_dir / "outbox"
    paths = sorted(folder.glob("*.eml")) if folder.exists() else []
    return [message_from_bytes(path.read_bytes(), policy=policy.default) for path in paths]


def test_mark_disputed_then_restore(client, copy_case: CopyCase, staff) -> None:
    filed = filed_case(client, copy_case)
    disputed = act(client, staff, filed["complaint_id"], "mark_disputed", "Byte-identical and registered later")
    assert disputed.status_code == 200, disputed.text
    assert disputed.json()["status"] == "action_taken"
    assert disputed.json()["takedowns"] == ["mark_disputed"]
    assert work_status(client, copy_case.copy["work_id"]) == "disputed"
    assert work_status(client, copy_case.original["work_id"]) == "registered"
    assert act(client, staff, filed["complaint_id"], "mark_disputed").status_code == 409

    restored = act(client, staff, filed["complaint_id"], "restore", "Licence shown by the owner")
    assert restored.json()["status"] == "restored"
    assert restored.json()["takedowns"] == []
    assert work_status(client, copy_case.copy["work_id"]) == "registered"
    # the registration and its evidence are untouched by both decisions
    evidence = client.get(f"/api/v1/works/{copy_case.copy['work_id']}/evidence").json()
    assert evidence["statement"]["sha256"] == copy_case.copy["sha256"]
    assert client.get(f"/api/v1/verify/{copy_case.copy['work_id']}").json()["valid"]
    history = [h["action"] for h in restored.json()["history"]]
    assert history == ["complaint.received", "complaint.mark_disputed", "complaint.restore"]
    assert act(client, staff, filed["complaint_id"], "dismiss").status_code == 409  # closed


def test_request_info_then_dismiss(client, copy_case: CopyCase, staff) -> None:
    filed = filed_case(client, copy_case)
    asked = act(client, staff, filed["complaint_id"], "request_info", "Which parts are copied?")
    assert asked.json()["status"] == "info_requested"
    assert act(client, staff, filed["complaint_id"], "restore").status_code == 409  # nothing taken down
    dismissed = act(client, staff, filed["complaint_id"], "dismiss", "No answer from the complainant")
    assert dismissed.json()["status"] == "dismissed"
    assert dismissed.json()["closed_at"] is not None
    # a closed case no longer blocks a new notice about the same pair
    assert client.post("/api/v1/complaints", json=notice(
        copy_case.original["work_id"], {"work_id": copy_case.copy["work_id"]})).status_code == 201


def test_request_info_is_only_for_undecided_cases(client, copy_case: CopyCase, staff) -> None:
    filed = filed_case(client, copy_case)
    act(client, staff, filed["complaint_id"], "mark_disputed")
    assert act(client, staff, filed["complaint_id"], "request_info").status_code == 409


def test_clear_flag_clears_the_detection_flag_and_lifts_takedowns(client, copy_case: CopyCase, staff) -> None:
    filed = filed_case(client, copy_case)
    act(client, staff, filed["complaint_id"], "mark_disputed")
    cleared = act(client, staff, filed["complaint_id"], "clear_flag", "Same stock photo licensed to both")
    assert cleared.json()["status"] == "cleared"
    assert work_status(client, copy_case.copy["work_id"]) == "registered"
    reviews = client.get("/api/v1/staff/reviews", params={"status": "cleared"}, headers=staff).json()
    assert [r["work"]["work_id"] for r in reviews] == [copy_case.copy["work_id"]]


def test_listing_actions_need_a_listing_and_url_targets_allow_none(client, copy_case: CopyCase, staff) -> None:
    filed = filed_case(client, copy_case)
    response = act(client, staff, filed["complaint_id"], "hide_listing")
    assert response.status_code == 422
    assert "names no listing" in response.json()["detail"]
    external = file(client, notice(copy_case.original["work_id"], {"url": "https://elsewhere.example/x"}))
    for action in ("mark_disputed", "suspend_sales"):
        response = act(client, staff, external["complaint_id"], action)
        assert response.status_code == 422
        assert "outside IPX" in response.json()["detail"]


def test_invalid_action_or_missing_reason(client, copy_case: CopyCase, staff) -> None:
    filed = filed_case(client, copy_case)
    url = f"/api/v1/staff/complaints/{filed['complaint_id']}/actions"
    assert client.post(url, headers=staff, json={"action": "delete_work", "reason": "x" * 5}).status_code == 422
    missing = client.post(url, headers=staff, json={"action": "dismiss"})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["loc"] == ["body", "reason"]
    assert act(client, staff, "00000000-0000-0000-0000-000000000000", "dismiss").status_code == 404


def test_counter_notice_only_by_the_owner_and_only_after_a_takedown(client, copy_case: CopyCase, staff, make_user):
    filed = filed_case(client, copy_case)
    url = f"/api/v1/complaints/{filed['complaint_id']}/counter-notice"
    assert client.post(url, json=COUNTER).status_code == 401
    assert client.post(url, json=COUNTER, headers=copy_case.bob.headers).status_code == 409  # nothing taken down
    act(client, staff, filed["complaint_id"], "mark_disputed")
    assert client.post(url, json=COUNTER, headers=make_user("Eve").headers).status_code == 403
    assert client.post(url, json=COUNTER, headers=copy_case.alice.headers).status_code == 403
    no_consent = client.post(url, json={**COUNTER, "consent_to_jurisdiction": False}, headers=copy_case.bob.headers)
    assert no_consent.status_code == 422
    assert no_consent.json()["errors"][0]["loc"] == ["body", "consent_to_jurisdiction"]
    filed_counter = client.post(url, json=COUNTER, headers=copy_case.bob.headers)
    assert filed_counter.status_code == 200, filed_counter.text
    assert filed_counter.json()["status"] == "counter_noticed"
    assert filed_counter.json()["counter_notice"]["signature"] == "Bob Later"
    assert client.post(url, json=COUNTER, headers=copy_case.bob.headers).status_code == 409
    # while the clock runs, staff cannot stack more takedowns
    assert act(client, staff, filed["complaint_id"], "suspend_sales").status_code == 409


def _counter_noticed_at(client, copy_case: CopyCase, staff, moment: datetime) -> dict:
    client.app.state.clock = lambda: moment
    filed = filed_case(client, copy_case)
    act(client, staff, filed["complaint_id"], "mark_disputed")
    response = client.post(
        f"/api/v1/complaints/{filed['complaint_id']}/counter-notice", json=COUNTER, headers=copy_case.bob.headers
    )
    assert response.status_code == 200, response.text
    return {**filed, **response.json()}


def test_restoration_clock_restores_after_ten_business_days(client, copy_case: CopyCase, staff) -> None:
    case = _counter_noticed_at(client, copy_case, staff, FRIDAY_NOON)
    due = datetime.fromisoformat(case["restore_due_at"])
    assert due == FRIDAY_NOON + timedelta(days=14)  # two weekends skipped
    factory = client.app.state.session_factory
    with transaction(factory) as session:
        assert process_due_restorations(session, due - timedelta(seconds=1)) == []
    assert work_status(client, copy_case.copy["work_id"]) == "disputed"
    with transaction(factory) as session:
        restored = process_due_restorations(session, due)
        assert [c.case_number for c in restored] == [case["case_number"]]
    assert work_status(client, copy_case.copy["work_id"]) == "registered"
    after = client.get(f"/api/v1/complaints/{case['complaint_id']}", params={"token": case["token"]}).json()
    assert after["status"] == "restored"
    assert after["history"][-1]["action"] == "complaint.restored_after_counter_notice"
    with transaction(factory) as session:
        assert process_due_restorations(session, due + timedelta(days=30)) == []  # runs once


def test_legal_action_stops_the_clock(client, copy_case: CopyCase, staff) -> None:
    case = _counter_noticed_at(client, copy_case, staff, FRIDAY_NOON)
    url = f"/api/v1/complaints/{case['complaint_id']}/legal-action"
    wrong = client.post(url, json={"token": "x" * 32, "note": "Case 1:26-cv-01234, N.D. Cal."})
    assert wrong.status_code == 401
    reported = client.post(url, json={"token": case["token"], "note": "Case 1:26-cv-01234, N.D. Cal."})
    assert reported.status_code == 200, reported.text
    assert reported.json()["status"] == "legal_action"
    assert reported.json()["restore_due_at"] is None
    assert reported.json()["legal_action"]["note"] == "Case 1:26-cv-01234, N.D. Cal."
    with transaction(client.app.state.session_factory) as session:
        assert process_due_restorations(session, FRIDAY_NOON + timedelta(days=60)) == []
    assert work_status(client, copy_case.copy["work_id"]) == "disputed"
    assert client.post(url, json={"token": case["token"], "note": "again, please"}).status_code == 409


def test_restoration_period_is_a_setting_within_10_to_14(make_settings) -> None:
    assert make_settings(complaint_restore_business_days=14).complaint_restore_business_days == 14
    for out_of_range in (9, 15):
        with pytest.raises(ValidationError):
            make_settings(complaint_restore_business_days=out_of_range)
    assert add_business_days(FRIDAY_NOON, 12) == FRIDAY_NOON + timedelta(days=18)  # Fri + 2 weeks + Mon, Tue


def test_cli_tick_restores_due_cases_and_sends_mail(client, copy_case: CopyCase, staff, settings, monkeypatch) -> None:
    long_ago = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
    case = _counter_noticed_at(client, copy_case, staff, long_ago)
    monkeypatch.setenv("IPX_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("IPX_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("IPX_PUBLIC_URL", settings.public_url)
    result = CliRunner().invoke(cli_app, ["complaints", "tick"])
    assert result.exit_code == 0, result.output
    assert f"restored content of case {case['case_number']}" in result.output
    assert work_status(client, copy_case.copy["work_id"]) == "registered"
    subjects = [mail["Subject"] for mail in outbox_mail(settings)]
    assert f"[{case['case_number']}] Content restored after counter-notice" in subjects


def test_parties_are_notified_of_each_step(client, copy_case: CopyCase, staff, settings) -> None:
    filed = filed_case(client, copy_case)
    act(client, staff, filed["complaint_id"], "mark_disputed", "Identical bytes, registered later")
    mails = outbox_mail(settings)
    to_complainant = [m for m in mails if m["To"] == "alice.claims@example.org"]
    to_owner = [m for m in mails if m["To"] == copy_case.bob.email]
    assert [m["Subject"].split("] ")[1] for m in to_complainant] == [
        "We received your infringement notice", "Work marked disputed"
    ]
    assert len(to_owner) == 2
    receipt = to_complainant[0].get_content()
    assert f"http://testserver/complaints/{filed['complaint_id']}?token={filed['token']}" in receipt
    takedown = to_owner[1].get_content()
    assert "Identical bytes, registered later" in takedown
    assert f"http://testserver/complaints/{filed['complaint_id']}/counter-notice" in takedown


def test_repeat_infringer_count(client, copy_case: CopyCase, staff, fresh_png) -> None:
    filed = filed_case(client, copy_case)
    act(client, staff, filed["complaint_id"], "mark_disputed")
    # a second copy by Bob of another of Alice's works, also upheld
    data = fresh_png()
    second_original = copy_case.alice.register(data, title="Lighthouse").json()
    second_copy = copy_case.bob.register(data, title="Lighthouse (mine)").json()
    second = file(client, notice(second_original["work_id"], {"work_id": second_copy["work_id"]}))
    act(client, staff, second["complaint_id"], "mark_disputed")
    case = client.get(f"/api/v1/staff/complaints/{second['complaint_id']}", headers=staff).json()
    assert case["repeat_infringer"]["upheld_complaints"] == 2
    act(client, staff, second["complaint_id"], "restore", "Shown to be licensed")
    queue = client.get("/api/v1/staff/complaints", headers=staff).json()
    assert {item["target_owner_upheld_count"] for item in queue["items"]} == {1}


def test_queue_asks_the_same_queries_for_one_case_or_many(client, copy_case: CopyCase, staff, make_user) -> None:
    """Every row shows its target's repeat-infringer count, which was counted row by row (a query per case)."""
    upheld = filed_case(client, copy_case)
    act(client, staff, upheld["complaint_id"], "mark_disputed")
    session = {"ipx_session": staff["Authorization"].removeprefix("Bearer ")}
    paths = ["/api/v1/staff/complaints?status=open", "/staff/complaints"]

    def queue_queries() -> dict[str, int]:
        client.cookies.update(session)
        counted = {path: get_counting_queries(client, path, staff) for path in paths}
        assert all(response.status_code == 200 for response, _ in counted.values())
        return {path: queries for path, (_, queries) in counted.items()}

    one_case = queue_queries()
    for number in range(3):
        case_against_a_new_copy(client, copy_case, make_user, number)
    rows = client.get(paths[0], headers=staff).json()["items"]
    assert sorted(row["target_owner_upheld_count"] for row in rows) == [0, 0, 0, 1]
    assert queue_queries() == one_case


def test_queue_filters(client, copy_case: CopyCase, staff) -> None:
    client.app.state.clock = lambda: datetime(2026, 3, 1, tzinfo=UTC)
    first = filed_case(client, copy_case)
    client.app.state.clock = lambda: datetime(2026, 3, 20, tzinfo=UTC)
    url_case = file(client, notice(copy_case.original["work_id"], {"url": "https://elsewhere.example/x"}))
    act(client, staff, first["complaint_id"], "dismiss", "Not a copy")

    def numbers(**params: object) -> list[str]:
        response = client.get("/api/v1/staff/complaints", params=params, headers=staff)
        assert response.status_code == 200, response.text
        return [item["case_number"] for item in response.json()["items"]]

    assert numbers() == [first["case_number"], url_case["case_number"]]
    assert numbers(status="open") == [url_case["case_number"]]
    assert numbers(status="dismissed") == [first["case_number"]]
    assert numbers(type="url") == [url_case["case_number"]]
    assert numbers(min_age_days=10) == [first["case_number"]]
    assert numbers(max_age_days=10) == [url_case["case_number"]]
    assert client.get("/api/v1/staff/complaints", params={"status": "lost"}, headers=staff).status_code == 422
    assert client.get("/api/v1/staff/complaints", params={"type": "tv"}, headers=staff).status_code == 422


def test_queue_pages_keep_the_filters(client, copy_case: CopyCase, staff, make_user, monkeypatch) -> None:
    """Closed cases pile up for ever: the queue comes a page at a time, in the API and on the page."""
    monkeypatch.setattr(service, "QUEUE_PAGE_SIZE", 2)
    cases = [case_against_a_new_copy(client, copy_case, make_user, number)["case_number"] for number in range(3)]
    file(client, notice(copy_case.original["work_id"], {"url": "https://elsewhere.example/x"}))

    def queue(**params: object) -> dict:
        response = client.get("/api/v1/staff/complaints", params={"type": "work", **params}, headers=staff)
        assert response.status_code == 200, response.text
        return response.json()

    first, second = queue(), queue(page=2)
    assert ([item["case_number"] for item in first["items"]], first["total"], first["page_size"]) == (cases[:2], 3, 2)
    assert ([item["case_number"] for item in second["items"]], second["total"], second["page"]) == (cases[2:], 3, 2)
    assert queue(page=3)["items"] == []
    assert client.get("/api/v1/staff/complaints", params={"page": 0}, headers=staff).status_code == 422

    client.cookies.set("ipx_session", staff["Authorization"].removeprefix("Bearer "))
    page = client.get("/staff/complaints", params={"status": "", "type": "work"}).text
    assert "3 cases, oldest first." in page and all(number in page for number in cases[:2]) and cases[2] not in page
    assert 'href="/staff/complaints?status=&amp;type=work&amp;page=2">Newer cases →</a>' in page
    later = client.get("/staff/complaints", params={"status": "", "type": "work", "page": "2"}).text
    assert cases[2] in later and cases[0] not in later and "3 cases, oldest first; page 2." in later
    assert 'href="/staff/complaints?status=&amp;type=work&amp;page=1">← Older cases</a>' in later
    beyond = client.get("/staff/complaints", params={"status": "", "type": "work", "page": "3"}).text
    assert "There is no page 3: the 3 cases matching these filters fill fewer pages." in beyond


def test_a_work_stays_disputed_while_another_case_holds_it(client, copy_case: CopyCase, staff, make_user,
                                                           fresh_png) -> None:
    first = filed_case(client, copy_case)
    other_claim = make_user("Carol").register(fresh_png(), title="Carol's sky").json()  # Bob's work has her sky
    second = file(client, notice(other_claim["work_id"], {"work_id": copy_case.copy["work_id"]},
                                 complainant={"name": "Carol", "email": "carol@example.org"}))
    act(client, staff, first["complaint_id"], "mark_disputed")
    act(client, staff, second["complaint_id"], "mark_disputed")
    act(client, staff, first["complaint_id"], "restore", "First complainant withdrew")
    assert work_status(client, copy_case.copy["work_id"]) == "disputed"
    act(client, staff, second["complaint_id"], "dismiss", "The sky is not Carol's")
    assert work_status(client, copy_case.copy["work_id"]) == "registered"


def test_mail_goes_out_for_titles_with_line_breaks_and_international_addresses(client, make_user, settings) -> None:
    """A title typed with a line break once made its alert's Subject header unbuildable: the request that queued it
    answered 500 after committing, and every later message waited behind it forever. Titles are one line now, but
    works registered before that rule keep theirs."""
    alice, bob = make_user("Alice"), make_user("Bob")
    picture = noise_png(880_001)
    original = alice.register(picture, title="Harbour at dawn")
    assert original.status_code == 201, original.text
    with transaction(client.app.state.session_factory) as session:
        session.execute(update(Work).where(Work.id == original.json()["work_id"]).values(title="Harbour\nat dawn"))
    copy = bob.register(picture, title="Mine")
    assert copy.status_code == 201, copy.text  # its alert to Alice names her title
    filed = file(client, notice(original.json()["work_id"], {"work_id": copy.json()["work_id"]},
                                complainant={"name": "José", "email": "josé@bücher.example"}))
    mails = outbox_mail(settings)
    alert = [m for m in mails if m["To"] == alice.email]
    assert len(alert) == 1 and "Harbour at dawn" in alert[0]["Subject"]
    receipt = [m for m in mails if m["To"] == "josé@xn--bcher-kva.example"]
    assert len(receipt) == 1 and filed["token"] in receipt[0].get_content()


def test_internationalised_domains_follow_todays_idna_rules() -> None:
    """IDNA 2003 (Python's own codec) maps faß.de to fass.de, someone else's domain: a case token sent there leaks."""
    from ipx.notifications.models import OutboxMessage
    from ipx.notifications.service import as_email

    message = OutboxMessage(id=1, kind="k", to_email="anna@faß.de", subject="Case\r\nreceived", body="b",
                            created_at=FRIDAY_NOON)
    email = as_email(message, "https://ipx.example")
    assert (email["To"], email["Subject"]) == ("anna@xn--fa-hia.de", "Case received")

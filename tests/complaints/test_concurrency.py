"""Changes to cases at the same moment on PostgreSQL: consecutive case numbers, staff actions one after the other."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from ipx.accounts.service import principal_for_token
from ipx.complaints.schemas import NoticeIn, StaffActionIn
from ipx.complaints.service import ComplaintsContext, apply_staff_action, file_notice
from ipx.marketplace.service import sales_suspended
from tests.complaints.conftest import CopyCase, notice
from tests.races import interleave


@pytest.fixture(autouse=True)
def postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers at BEGIN, so two transactions cannot interleave there")


def test_concurrent_notices_get_consecutive_case_numbers(client, copy_case: CopyCase) -> None:
    ctx = ComplaintsContext()
    first = NoticeIn.model_validate(notice(copy_case.original["work_id"], {"url": "https://a.example/1"}))
    second = NoticeIn.model_validate(notice(copy_case.original["work_id"], {"url": "https://a.example/2"}))
    numbers: dict[str, str] = {}

    def file(name: str, body: NoticeIn) -> Callable[[Session], None]:
        def run(session: Session) -> None:
            numbers[name] = file_notice(session, body, caller=None, ctx=ctx).complaint.case_number
        return run

    interleave(client.app.state.session_factory, file("first", first), file("second", second))
    assert int(numbers["second"][-6:]) == int(numbers["first"][-6:]) + 1


def test_two_staff_actions_at_once_both_count_and_restore_lifts_both(client, copy_case: CopyCase, staff) -> None:
    """Each staff action rewrote the case's takedown list from its own read: with two at once, the second lost the
    first's, and restoring the case left sales suspended with no case holding them."""
    filed = client.post("/api/v1/complaints", json=notice(copy_case.original["work_id"],
                                                             {"work_id": copy_case.copy["work_id"]}))
    assert filed.status_code == 201, filed.text
    case_id = filed.json()["complaint_id"]
    factory, ctx = client.app.state.session_factory, ComplaintsContext()
    with factory() as session:
        officer = principal_for_token(session, staff["Authorization"].split()[1])

    def act(action: str) -> Callable[[Session], None]:
        def run(session: Session) -> None:
            apply_staff_action(session, case_id, StaffActionIn(action=action, reason="Same bytes"), staff=officer,
                               ctx=ctx)
        return run

    interleave(factory, act("suspend_sales"), act("mark_disputed"))
    restored = client.post(f"/api/v1/staff/complaints/{case_id}/actions", headers=staff,
                           json={"action": "restore", "reason": "Licensed after all"})
    assert restored.status_code == 200, restored.text
    work_id = copy_case.copy["work_id"]
    assert client.get(f"/api/v1/works/{work_id}").json()["status"] == "registered"
    with factory() as session:
        assert not sales_suspended(session, work_id)


def test_restoring_one_case_while_another_disputes_the_work_keeps_the_dispute(
    client, copy_case: CopyCase, staff, fresh_png
) -> None:
    """Two cases against one work: case B disputes it while case A is restored. A looked for other takedowns before
    B committed, saw none, and set the work back to registered over B's dispute."""
    target = {"work_id": copy_case.copy["work_id"]}
    second_claim = copy_case.alice.register(fresh_png(), title="Another of mine").json()["work_id"]
    case_a, case_b = (
        client.post("/api/v1/complaints", json=notice(claimed, target)).json()["complaint_id"]
        for claimed in (copy_case.original["work_id"], second_claim)
    )
    disputed = client.post(f"/api/v1/staff/complaints/{case_a}/actions", headers=staff,
                           json={"action": "mark_disputed", "reason": "Same bytes"})
    assert disputed.status_code == 200, disputed.text
    factory, ctx = client.app.state.session_factory, ComplaintsContext()
    with factory() as session:
        officer = principal_for_token(session, staff["Authorization"].split()[1])

    def act(case_id: str, action: str) -> Callable[[Session], None]:
        def run(session: Session) -> None:
            apply_staff_action(session, case_id, StaffActionIn(action=action, reason="Decided"), staff=officer,
                               ctx=ctx)
        return run

    interleave(factory, act(case_b, "mark_disputed"), act(case_a, "restore"))
    assert client.get(f"/api/v1/works/{copy_case.copy['work_id']}").json()["status"] == "disputed"

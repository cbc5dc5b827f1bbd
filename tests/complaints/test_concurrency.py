"""Changes to cases at the same moment on PostgreSQL: consecutive case numbers, staff actions one after the other."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from ipx.accounts.service import principal_for_token
from ipx.complaints.schemas import NoticeIn, StaffActionIn
from ipx.complaints.service import ComplaintsContext, apply_staff_action, file_notice
from ipx.marketplace.service import sales_suspended
from tests.complaints.conftest import CopyCase, notice


def test_concurrent_notices_get_consecutive_case_numbers(client, copy_case: CopyCase, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers at BEGIN, so two notices cannot race for a number there")
    factory, ctx = client.app.state.session_factory, ComplaintsContext()
    first = NoticeIn.model_validate(notice(copy_case.original["work_id"], {"url": "https://a.example/1"}))
    second = NoticeIn.model_validate(notice(copy_case.original["work_id"], {"url": "https://a.example/2"}))
    holder, racer = factory(), factory()
    numbers: dict[str, str] = {}
    try:
        numbers["first"] = file_notice(holder, first, caller=None, ctx=ctx).complaint.case_number  # not committed
        backend = racer.scalar(text("SELECT pg_backend_pid()"))

        def race() -> None:
            numbers["second"] = file_notice(racer, second, caller=None, ctx=ctx).complaint.case_number
            racer.commit()

        thread = threading.Thread(target=race)
        thread.start()
        with factory() as observer:  # wait until the racer is blocked on the first notice's number
            while thread.is_alive() and not observer.scalar(text(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"), {"pid": backend}
            ):
                observer.rollback()
        holder.commit()
        thread.join()
    finally:
        holder.close()
        racer.close()
    assert int(numbers["second"][-6:]) == int(numbers["first"][-6:]) + 1


def test_two_staff_actions_at_once_both_count_and_restore_lifts_both(
    client, copy_case: CopyCase, staff, database_url: str
) -> None:
    """Each staff action rewrote the case's takedown list from its own read: with two at once, the second lost the
    first's, and restoring the case left sales suspended with no case holding them."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers at BEGIN, so two staff actions cannot interleave there")
    filed = client.post("/api/v1/complaints", json=notice(copy_case.original["work_id"],
                                                             {"work_id": copy_case.copy["work_id"]}))
    assert filed.status_code == 201, filed.text
    case_id = filed.json()["complaint_id"]
    factory, ctx = client.app.state.session_factory, ComplaintsContext()
    with factory() as session:
        officer = principal_for_token(session, staff["Authorization"].split()[1])
    holder, racer = factory(), factory()
    try:
        apply_staff_action(holder, case_id, StaffActionIn(action="suspend_sales", reason="Same bytes"),
                           staff=officer, ctx=ctx)  # not committed yet
        backend = racer.scalar(text("SELECT pg_backend_pid()"))

        def race() -> None:
            apply_staff_action(racer, case_id, StaffActionIn(action="mark_disputed", reason="Same bytes"),
                               staff=officer, ctx=ctx)
            racer.commit()

        thread = threading.Thread(target=race)
        thread.start()
        with factory() as observer:  # wait until the racer is blocked on the case
            while thread.is_alive() and not observer.scalar(text(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"), {"pid": backend}
            ):
                observer.rollback()
        holder.commit()
        thread.join()
    finally:
        holder.close()
        racer.close()
    restored = client.post(f"/api/v1/staff/complaints/{case_id}/actions", headers=staff,
                           json={"action": "restore", "reason": "Licensed after all"})
    assert restored.status_code == 200, restored.text
    work_id = copy_case.copy["work_id"]
    assert client.get(f"/api/v1/works/{work_id}").json()["status"] == "registered"
    with factory() as session:
        assert not sales_suspended(session, work_id)

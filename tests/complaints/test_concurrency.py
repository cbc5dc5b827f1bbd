"""Two notices filed at the same moment on PostgreSQL get consecutive case numbers, not an error."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from ipx.complaints.schemas import NoticeIn
from ipx.complaints.service import ComplaintsContext, file_notice
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

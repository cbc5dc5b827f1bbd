"""The restoration period comes from settings (here 14 business days, the legal maximum)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ipx.config import Settings
from tests.complaints.conftest import CopyCase
from tests.complaints.test_lifecycle import FRIDAY_NOON, _counter_noticed_at


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings(complaint_restore_business_days=14)


def test_fourteen_business_days_from_a_friday(client, copy_case: CopyCase, staff) -> None:
    case = _counter_noticed_at(client, copy_case, staff, FRIDAY_NOON)
    # Fri 27 Nov + 14 business days: Dec 4 (5), Dec 11 (10), Mon 14 .. Thu 17 Dec (14)
    assert datetime.fromisoformat(case["restore_due_at"]) == FRIDAY_NOON + timedelta(days=20)

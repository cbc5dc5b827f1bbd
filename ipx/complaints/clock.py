"""Business-day arithmetic for the counter-notice restoration clock (no holidays: weekends only)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

Clock = Callable[[], datetime]


def add_business_days(start: datetime, days: int) -> datetime:
    """The moment `days` business days after `start`, at the same time of day (Saturday, Sunday skipped)."""
    moment, counted = start, 0
    while counted < days:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            counted += 1
    return moment

"""Calendar quarters named like "2026Q3", as UTC half-open intervals [start, end)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ipx.errors import InvalidInput

QUARTER_PATTERN = re.compile(r"^([0-9]{4})[Qq]([1-4])$")  # ASCII digits: \d also takes "٢٠٢٦"
FIRST_YEAR, LAST_YEAR = 1970, 9998


@dataclass(frozen=True, order=True)
class Quarter:
    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Quarter:
        found = QUARTER_PATTERN.match(text.strip())
        if found is None or not FIRST_YEAR <= int(found.group(1)) <= LAST_YEAR:
            shown = text if len(text) <= 40 else text[:40] + "…"
            raise InvalidInput(
                f"“{shown}” is not a quarter: write the year ({FIRST_YEAR} to {LAST_YEAR}) and quarter number like "
                "2026Q3 (Q1 to Q4).",
                errors=[{"loc": ["query", "quarter"], "msg": "expected YYYYQn with n from 1 to 4"}],
            )
        return cls(int(found.group(1)), int(found.group(2)))

    @classmethod
    def containing(cls, moment: datetime) -> Quarter:
        return cls(moment.year, (moment.month - 1) // 3 + 1)

    @property
    def start(self) -> datetime:
        return datetime(self.year, 3 * self.number - 2, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.next().start

    @property
    def has_previous(self) -> bool:
        return (self.year, self.number) > (FIRST_YEAR, 1)

    @property
    def has_next(self) -> bool:
        return (self.year, self.number) < (LAST_YEAR, 4)

    def next(self) -> Quarter:
        return Quarter(self.year + 1, 1) if self.number == 4 else Quarter(self.year, self.number + 1)

    def previous(self) -> Quarter:
        return Quarter(self.year - 1, 4) if self.number == 1 else Quarter(self.year, self.number - 1)

    def __str__(self) -> str:
        return f"{self.year}Q{self.number}"

"""Calendar quarters named like "2026Q3", as UTC half-open intervals [start, end)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ipx.errors import InvalidInput

QUARTER_PATTERN = re.compile(r"^(\d{4})[Qq]([1-4])$")


@dataclass(frozen=True, order=True)
class Quarter:
    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Quarter:
        found = QUARTER_PATTERN.match(text.strip())
        if found is None or not 1970 <= int(found.group(1)) <= 9998:
            raise InvalidInput(
                f"“{text}” is not a quarter: write the year and quarter number like 2026Q3 (Q1 to Q4).",
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

    def next(self) -> Quarter:
        return Quarter(self.year + 1, 1) if self.number == 4 else Quarter(self.year, self.number + 1)

    def previous(self) -> Quarter:
        return Quarter(self.year - 1, 4) if self.number == 1 else Quarter(self.year, self.number - 1)

    def __str__(self) -> str:
        return f"{self.year}Q{self.number}"

"""Request and response shapes for notices, counter-notices, staff actions and reviews (DESIGN.md section 2)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, HttpUrl, UrlConstraints, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Infringing(Strict):
    """Exactly one of: an IPX work, an IPX listing, or a page elsewhere on the web."""

    work_id: str | None = Field(None, max_length=36)
    listing_id: str | None = Field(None, max_length=64)
    url: Annotated[HttpUrl, UrlConstraints(max_length=2000)] | None = None  # complaints.target_url holds 2,000

    @model_validator(mode="after")
    def _exactly_one(self) -> Infringing:
        given = [name for name in ("work_id", "listing_id", "url") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("Name exactly one infringing item: work_id, listing_id or url.")
        return self


class Complainant(Strict):
    name: str = Field(min_length=2, max_length=200)
    email: EmailStr
    address: str | None = Field(None, max_length=500)
    phone: str | None = Field(None, max_length=64)


class NoticeIn(Strict):
    """The elements of a DMCA 512(c)(3) notice; the sworn statements must be affirmed, not merely present."""

    work_id: str | None = Field(None, max_length=36, description="your registered work; omit when uploading it")
    infringing: Infringing
    complainant: Complainant
    good_faith: Literal[True] = Field(description="good-faith belief that the use is not authorized")
    accuracy: Literal[True] = Field(description="the notice is accurate, under penalty of perjury")
    signature: str = Field(min_length=2, max_length=200, description="your full name, typed")
    description: str = Field(min_length=10, max_length=10_000)


class NoticeCreated(BaseModel):
    complaint_id: str
    case_number: str
    status: str
    status_url: str
    token: str


class CounterNoticeIn(Strict):
    statement: str = Field(min_length=20, max_length=10_000)
    consent_to_jurisdiction: Literal[True]
    signature: str = Field(min_length=2, max_length=200)


class LegalActionIn(Strict):
    token: str = Field(min_length=10, max_length=200)
    note: str = Field(min_length=5, max_length=5_000)


class StaffAction(enum.StrEnum):
    dismiss = "dismiss"
    request_info = "request_info"
    hide_listing = "hide_listing"
    suspend_sales = "suspend_sales"
    mark_disputed = "mark_disputed"
    restore = "restore"
    clear_flag = "clear_flag"


class StaffActionIn(Strict):
    action: StaffAction
    reason: str = Field(min_length=3, max_length=5_000)


class ReviewDecision(enum.StrEnum):
    clear = "clear"
    uphold = "uphold"


class ReviewDecisionIn(Strict):
    decision: ReviewDecision
    reason: str = Field(min_length=3, max_length=5_000)


class ComplaintRead(BaseModel):
    complaint_id: str
    case_number: str
    status: str
    received_at: datetime
    decided_at: datetime | None
    closed_at: datetime | None
    work_id: str
    infringing: dict[str, Any]
    complainant: dict[str, Any] | None = None  # parties other than the complainant see the name only
    description: str
    takedowns: list[str]
    counter_notice: dict[str, Any] | None
    restore_due_at: datetime | None
    legal_action: dict[str, Any] | None
    evidence: dict[str, Any]
    history: list[dict[str, Any]]
    repeat_infringer: dict[str, Any] | None = None


class ComplaintSummary(BaseModel):
    complaint_id: str
    case_number: str
    status: str
    target_kind: str
    received_at: datetime
    age_days: int
    work_id: str
    target: str
    complainant_name: str
    target_owner_upheld_count: int | None


class ComplaintQueue(BaseModel):
    items: list[ComplaintSummary]
    total: int  # every matching case, on this page or another
    page: int
    page_size: int


class ReviewRead(BaseModel):
    review_id: int
    review_status: str
    method: str
    distance: float
    similarity: float
    found_at: datetime
    work: dict[str, Any]
    prior_work: dict[str, Any]
    decision_reason: str | None = None


class AuditRead(BaseModel):
    id: int
    occurred_at: datetime
    actor_id: str | None
    action: str
    subject_type: str
    subject_id: str
    details: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditRead]
    total: int
    page: int
    page_size: int

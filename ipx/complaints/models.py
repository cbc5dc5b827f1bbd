from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ipx.db import Base, UTCDateTime, utcnow

OPEN_STATUSES = ("received", "info_requested", "action_taken", "counter_noticed", "legal_action")
CLOSED_STATUSES = ("dismissed", "restored", "cleared")


class Complaint(Base):
    """One infringement notice and the life of its case; takedowns hide content, never registrations."""

    __tablename__ = "complaints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_number: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    # the complainant's registered work (given, or found by matching an uploaded copy)
    claimed_work_id: Mapped[str] = mapped_column(ForeignKey("works.id"), index=True)
    claimed_match_method: Mapped[str | None] = mapped_column(String(32))
    # what is said to infringe: exactly one of work, listing or external url
    target_kind: Mapped[str] = mapped_column(String(16), index=True)  # work / listing / url
    target_work_id: Mapped[str | None] = mapped_column(ForeignKey("works.id"), index=True)
    target_listing_id: Mapped[str | None] = mapped_column(String(64), index=True)
    target_url: Mapped[str | None] = mapped_column(String(2000))
    target_copy_sha256: Mapped[str | None] = mapped_column(String(64))
    target_owner_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    complainant_account_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    complainant_name: Mapped[str] = mapped_column(String(200))
    complainant_email: Mapped[str] = mapped_column(String(320))
    complainant_address: Mapped[str | None] = mapped_column(String(500))
    complainant_phone: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the complainant's status-page token
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    takedowns: Mapped[list[str]] = mapped_column(JSON, default=list)  # actions in force, e.g. "mark_disputed"
    upheld: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    counter_statement: Mapped[str | None] = mapped_column(Text)
    counter_signature: Mapped[str | None] = mapped_column(String(200))
    counter_filed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    restore_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    legal_action_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    legal_action_note: Mapped[str | None] = mapped_column(Text)

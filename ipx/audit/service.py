"""Writes audit events inside the caller's transaction, so an event exists exactly when its change does."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ipx.audit.models import AuditEvent


def record(
    session: Session,
    *,
    action: str,
    subject_type: str,
    subject_id: str,
    actor_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        action=action, subject_type=subject_type, subject_id=subject_id, actor_id=actor_id, details=details or {}
    )
    session.add(event)
    return event


def for_subject(session: Session, subject_type: str, subject_id: str) -> list[AuditEvent]:
    query = (
        select(AuditEvent)
        .where(AuditEvent.subject_type == subject_type, AuditEvent.subject_id == subject_id)
        .order_by(AuditEvent.id)
    )
    return list(session.scalars(query))


def of_action_before(session: Session, action: str, end: datetime) -> list[AuditEvent]:
    """Every event of one action before `end`, oldest first: figures recomputed from history need its whole past,
    not just a window, when an event carries a running total (a provider's refunded-so-far amount)."""
    query = select(AuditEvent).where(AuditEvent.action == action, AuditEvent.occurred_at < end).order_by(AuditEvent.id)
    return list(session.scalars(query))

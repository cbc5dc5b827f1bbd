"""Writes audit events inside the caller's transaction, so an event exists exactly when its change does."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Subquery, func, select
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


def latest_for_subjects(session: Session, subject_type: str, subject_ids: Collection[str]) -> dict[str, AuditEvent]:
    """The newest event of each of these subjects that has one, in one query (a list page shows it on every row)."""
    query = (
        select(AuditEvent)
        .where(AuditEvent.subject_type == subject_type, AuditEvent.subject_id.in_(list(subject_ids)))
        .order_by(AuditEvent.id)
    )
    return {event.subject_id: event for event in session.scalars(query)}  # later events replace earlier ones


def running_totals_before(action: str, key: str, before: datetime) -> Subquery:
    """Per subject, the largest `details[key]` among one action's events before `before`, computed in the database:
    for events that carry a running total (a provider's refunded-so-far amount), the total at that moment."""
    return (
        select(AuditEvent.subject_id.label("subject_id"), func.max(AuditEvent.details[key].as_integer()).label("total"))
        .where(AuditEvent.action == action, AuditEvent.occurred_at < before)
        .group_by(AuditEvent.subject_id)
        .subquery()
    )

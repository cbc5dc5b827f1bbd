"""Staff search over the append-only audit log (read only: nothing here can change or remove an event)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ipx.audit.models import AuditEvent


@dataclass(frozen=True)
class AuditQuery:
    action: str | None = None  # prefix: "complaint" finds every complaint.* event
    subject: str | None = None  # a subject id (work, complaint, account, ...)
    subject_type: str | None = None
    actor_id: str | None = None
    page: int = 1
    page_size: int = 50


def search(session: Session, query: AuditQuery) -> tuple[list[AuditEvent], int]:
    """Newest first."""
    statement = select(AuditEvent)
    if query.action:
        statement = statement.where(AuditEvent.action.startswith(query.action, autoescape=True))
    if query.subject:
        statement = statement.where(AuditEvent.subject_id == query.subject)
    if query.subject_type:
        statement = statement.where(AuditEvent.subject_type == query.subject_type)
    if query.actor_id:
        statement = statement.where(AuditEvent.actor_id == query.actor_id)
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.scalars(
        statement.order_by(AuditEvent.id.desc()).offset((query.page - 1) * query.page_size).limit(query.page_size)
    )
    return list(rows), total

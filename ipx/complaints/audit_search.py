"""Staff search over the append-only audit log (read only: nothing here can change or remove an event)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ipx.audit.models import AuditEvent
from ipx.db import page_of


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
    return page_of(session, statement, AuditEvent.id.desc(), page=query.page, page_size=query.page_size)

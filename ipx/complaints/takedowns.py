"""The effects a takedown has on content, and how each is undone.

Marking a work disputed changes only its displayed status; its signed statement and log entry stay as they
were. Hiding listings and suspending sales belong to the marketplace, which this module asks through its service.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ipx.audit import service as audit_service
from ipx.complaints.models import OPEN_STATUSES, Complaint
from ipx.errors import InvalidInput, NotFound
from ipx.marketplace import service as marketplace_service
from ipx.registry import service as registry_service


def work_of_listing(session: Session, listing_id: str) -> str | None:
    """The registered work a marketplace listing sells, or None when no such listing exists."""
    try:
        return marketplace_service.get_listing(session, listing_id).work_id
    except NotFound:
        return None


def _hold_content(session: Session, complaint: Complaint) -> None:
    """Lock the targeted work (listing cases target one too) before reading or changing its takedowns.

    Every case on the same content then takes its turn: a case restoring a work while another case disputed it
    saw no other takedown (not yet committed) and set the work back to registered over it. Cases lock their own
    row first and the work second, in that order everywhere.
    """
    if complaint.target_work_id is not None:
        registry_service.get_work(session, complaint.target_work_id, for_update=True)


def apply(session: Session, complaint: Complaint, action: str, *, actor_id: str, reason: str) -> None:
    _hold_content(session, complaint)
    if action == "mark_disputed":
        work = registry_service.get_work(session, _hosted_work(complaint, action))
        work.status = "disputed"
        audit_service.record(
            session, action="work.disputed", subject_type="work", subject_id=work.id, actor_id=actor_id,
            details={"reason": reason, "case_number": complaint.case_number},
        )
    elif action == "hide_listing":
        marketplace_service.hide_listing(session, _listing(complaint), actor_id=actor_id, reason=reason)
    elif action == "suspend_sales":
        marketplace_service.suspend_sales(session, _hosted_work(complaint, action), actor_id=actor_id, reason=reason)


def lift_all(session: Session, complaint: Complaint, *, actor_id: str | None, reason: str) -> None:
    """Undo every takedown in force under this case, newest first, unless another open case still holds it."""
    _hold_content(session, complaint)
    for action in reversed(complaint.takedowns):
        if _held_by_another_case(session, complaint, action):
            continue
        if action == "mark_disputed":
            work = registry_service.get_work(session, _hosted_work(complaint, action))
            work.status = "registered"
            audit_service.record(
                session, action="work.dispute_lifted", subject_type="work", subject_id=work.id, actor_id=actor_id,
                details={"reason": reason, "case_number": complaint.case_number},
            )
        elif action == "hide_listing":
            marketplace_service.restore_listing(session, _listing(complaint), actor_id=actor_id, reason=reason)
        elif action == "suspend_sales":
            marketplace_service.resume_sales(session, _hosted_work(complaint, action), actor_id=actor_id, reason=reason)
    complaint.takedowns = []


def _held_by_another_case(session: Session, complaint: Complaint, action: str) -> bool:
    """Two notices may take down the same content; lifting one case must not undo the other's takedown."""
    if action == "hide_listing":
        same_content = Complaint.target_listing_id == complaint.target_listing_id
    else:
        same_content = Complaint.target_work_id == complaint.target_work_id
    others = session.scalars(
        select(Complaint).where(same_content, Complaint.id != complaint.id, Complaint.status.in_(OPEN_STATUSES))
    )
    return any(action in other.takedowns for other in others)


def _hosted_work(complaint: Complaint, action: str) -> str:
    if complaint.target_work_id is None:
        raise InvalidInput(
            f"Case {complaint.case_number} targets a page outside IPX; “{action}” applies only to content IPX hosts."
        )
    return complaint.target_work_id


def _listing(complaint: Complaint) -> str:
    if complaint.target_listing_id is None:
        raise InvalidInput(
            f"Case {complaint.case_number} names no listing; use suspend_sales to stop sales of the work instead."
        )
    return complaint.target_listing_id

"""Registrations flagged by detection: alerts to earlier owners, and the staff review queue.

A flag (registry PriorMatch) says a new registration matches an earlier work of another account. Staff
clear it (no copying) or uphold it; either way the registration itself stays in the log untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from ipx.accounts.service import Principal
from ipx.audit import service as audit_service
from ipx.complaints import messages
from ipx.complaints.schemas import ReviewDecision
from ipx.complaints.service import work_card
from ipx.db import page_of
from ipx.errors import Conflict, Forbidden, NotFound
from ipx.notifications import service as outbox
from ipx.registry import service as registry_service
from ipx.registry.models import PriorMatch

REVIEW_STATUSES = ("open", "cleared", "upheld")
DECIDED_STATUS = {ReviewDecision.clear: "cleared", ReviewDecision.uphold: "upheld"}


def alert_prior_owners(session: Session, work_id: str) -> int:
    """Tell each earlier owner that a work similar to theirs was registered, with a pre-filled notice link."""
    new_work = registry_service.get_work(session, work_id)
    flags = session.scalars(select(PriorMatch).where(PriorMatch.work_id == work_id).order_by(PriorMatch.id))
    alerted = 0
    for flag in flags:
        prior = registry_service.get_work(session, flag.prior_work_id)
        owner = registry_service.owner_of(session, prior)
        subject, body = messages.similar_work_alert(prior.id, prior.title, new_work.id, flag.method)
        outbox.enqueue(
            session, kind="detection.similar_registered", to_email=owner.email, subject=subject, body=body,
            subject_type="prior_match", subject_id=str(flag.id),
        )
        alerted += 1
    return alerted


REVIEW_PAGE_SIZE = 20


def list_reviews(session: Session, status: str | None, *, page: int, page_size: int) -> tuple[list[PriorMatch], int]:
    """One page of flags, oldest first, and how many there are in all: every registration that matches an earlier
    one is flagged, so the cleared and upheld lists only grow."""
    query = select(PriorMatch)
    if status:
        query = query.where(PriorMatch.review_status == status)
    return page_of(session, query, PriorMatch.found_at, PriorMatch.id, page=page, page_size=page_size)


def get_review(session: Session, review_id: int) -> PriorMatch:
    flag = session.get(PriorMatch, review_id)
    if flag is None:
        raise NotFound(f"No review item has the id {review_id}.")
    return flag


def review_view(session: Session, flag: PriorMatch) -> dict[str, object]:
    return review_views(session, [flag])[0]


def review_views(session: Session, flags: Sequence[PriorMatch]) -> list[dict[str, object]]:
    """Flags as staff and owners see them: both works with their owners, and the reason staff gave. Read for all
    flags at once: the queue asked six queries a flag, and it lists every flag of a status."""
    works = registry_service.works_by_id(session, {flag.work_id for flag in flags} | {f.prior_work_id for f in flags})
    decisions = audit_service.latest_for_subjects(session, "prior_match", {str(flag.id) for flag in flags})
    reasons = {subject: decision.details.get("reason") for subject, decision in decisions.items()}
    return [
        {
            "review_id": flag.id, "review_status": flag.review_status, "method": flag.method,
            "distance": flag.distance, "similarity": flag.similarity, "found_at": flag.found_at,
            "work": {**work_card(session, works[flag.work_id]), "region": flag.region_in_work},
            "prior_work": {**work_card(session, works[flag.prior_work_id]), "region": flag.region_in_prior_work},
            "decision_reason": reasons.get(str(flag.id)),
        }
        for flag in flags
    ]


def decide_review(
    session: Session, review_id: int, decision: ReviewDecision, *, staff: Principal, reason: str
) -> PriorMatch:
    flag = get_review(session, review_id)
    session.refresh(flag, with_for_update=True)  # two staff deciding at once: the second finds it decided
    if flag.review_status != "open":
        raise Conflict(f"This flag was already {flag.review_status}; decisions are final and kept in the audit log.")
    flag.review_status = DECIDED_STATUS[decision]
    audit_service.record(
        session, action=f"review.{flag.review_status}", subject_type="prior_match", subject_id=str(flag.id),
        actor_id=staff.id, details={"reason": reason, "work_id": flag.work_id, "prior_work_id": flag.prior_work_id},
    )
    work = registry_service.get_work(session, flag.work_id)
    subject, body = messages.review_decided(work.id, flag.review_status, reason)
    outbox.enqueue(
        session, kind="review.decided", to_email=registry_service.owner_of(session, work).email, subject=subject,
        body=body, subject_type="prior_match", subject_id=str(flag.id),
    )
    return flag


def reviews_of_work(session: Session, work_id: str, *, caller: Principal) -> list[dict[str, object]]:
    """What the owner of a flagged registration sees: each flag on it and where its review stands."""
    work = registry_service.get_work(session, work_id)
    if work.owner_id != caller.id and not caller.is_staff:
        raise Forbidden("Only the owner of this work may see its review state.")
    flags = session.scalars(select(PriorMatch).where(PriorMatch.work_id == work_id).order_by(PriorMatch.id))
    return review_views(session, list(flags))

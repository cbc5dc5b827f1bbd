"""Infringement cases: notices, counter-notices, staff actions and the restoration clock (no HTTP, no commit).

A takedown only hides or flags content; registrations and log entries are never deleted or edited, so
the history of who registered what, and when, survives every decision.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ipx.accounts.models import User
from ipx.accounts.service import Principal
from ipx.audit import service as audit_service
from ipx.audit.models import AuditEvent
from ipx.complaints import messages, takedowns
from ipx.complaints.clock import Clock, add_business_days
from ipx.complaints.matching import (
    ExactMatcher,
    WorkMatch,
    WorkMatcher,
    identify,
    match_between,
    prior_matches_between,
)
from ipx.complaints.models import CLOSED_STATUSES, OPEN_STATUSES, Complaint
from ipx.complaints.schemas import CounterNoticeIn, LegalActionIn, NoticeIn, StaffAction, StaffActionIn
from ipx.db import page_of, utcnow
from ipx.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from ipx.notifications import service as outbox
from ipx.registry import service as registry_service
from ipx.registry.models import Work
from ipx.registry.service import Upload, rfc3339

OPEN, CLOSED = OPEN_STATUSES, CLOSED_STATUSES
STATUSES = OPEN + CLOSED
TARGET_KINDS = ("work", "listing", "url")
TAKEDOWN_ACTIONS = (StaffAction.hide_listing, StaffAction.suspend_sales, StaffAction.mark_disputed)
CASE_NUMBER_ATTEMPTS = 5
MAX_CASE_AGE_DAYS = 36_525  # a century: older than any case, and far inside what date arithmetic holds
CLOSING_STATUS = {StaffAction.dismiss: "dismissed", StaffAction.restore: "restored", StaffAction.clear_flag: "cleared"}


@dataclass(frozen=True)
class ComplaintsContext:
    """Deployment choices a case depends on; `now` is injectable so the restoration clock can be tested."""

    restore_business_days: int = 10
    now: Clock = utcnow
    matchers: list[WorkMatcher] = field(default_factory=lambda: [ExactMatcher()])


@dataclass(frozen=True)
class Filed:
    complaint: Complaint
    token: str  # shown once; only its hash is stored


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _field_error(loc: list[str], msg: str) -> InvalidInput:
    where = ".".join(loc)
    return InvalidInput(f"The notice has an error in {where}: {msg}", errors=[{"loc": ["body", *loc], "msg": msg}])


# --- filing ------------------------------------------------------------------------------------------------


def file_notice(
    session: Session, notice: NoticeIn, *, caller: Principal | None, claimed_copy: Upload | None = None,
    target_copy: Upload | None = None, ctx: ComplaintsContext,
) -> Filed:
    """Record a notice, attach the evidence IPX holds, and tell both parties."""
    claimed, identified_by = _claimed_work(session, notice, claimed_copy, ctx)
    kind, target_work, listing_id = _target(session, notice)
    if target_work is not None and target_work.id == claimed.id:
        raise _field_error(["infringing", "work_id"], "A work cannot infringe itself: name the copy, not your work.")
    target_url = str(notice.infringing.url) if notice.infringing.url else None
    # the claimed work's row first: the same notice sent twice at once is then checked in turn, not both at once
    session.refresh(claimed, with_for_update=True)
    _refuse_duplicate(session, claimed.id, kind, target_work, listing_id, target_url)
    now = ctx.now()
    token = secrets.token_urlsafe(24)
    complaint = Complaint(
        id=str(uuid.uuid4()), case_number="", status="received",
        claimed_work_id=claimed.id, claimed_match_method=identified_by, target_kind=kind,
        target_work_id=target_work.id if target_work else None, target_listing_id=listing_id, target_url=target_url,
        target_copy_sha256=target_copy.sha256 if target_copy else None,
        target_owner_id=target_work.owner_id if target_work else None,
        complainant_account_id=caller.id if caller else None, complainant_name=notice.complainant.name,
        complainant_email=str(notice.complainant.email), complainant_address=notice.complainant.address,
        complainant_phone=notice.complainant.phone, description=notice.description, signature=notice.signature,
        token_hash=_token_hash(token), takedowns=[], received_at=now,
        evidence=_evidence(
            session, claimed, identified_by, target_work, listing_id, target_url, target_copy, ctx.matchers
        ),
    )
    _insert_numbered(session, complaint, now)
    audit_service.record(
        session, action="complaint.received", subject_type="complaint", subject_id=complaint.id,
        actor_id=caller.id if caller else None,
        details={"case_number": complaint.case_number, "work_id": claimed.id, "target_kind": kind,
                 "target": target_label(complaint)},
    )
    _tell(session, complaint, "complaint.receipt", complaint.complainant_email, messages.receipt(complaint, token))
    owner_email = _owner_email(session, complaint)
    if owner_email:
        _tell(session, complaint, "complaint.notice", owner_email, messages.notice_to_owner(complaint))
    return Filed(complaint, token)


def _claimed_work(
    session: Session, notice: NoticeIn, copy: Upload | None, ctx: ComplaintsContext
) -> tuple[Work, str]:
    if notice.work_id:
        work = session.get(Work, notice.work_id)
        if work is None:
            raise _field_error(["work_id"], f"No registered work has the id {notice.work_id}.")
        return work, "work_id"
    if copy is None:
        raise _field_error(["work_id"], "Give the id of your registered work, or upload a copy so IPX can find it.")
    matches = identify(session, copy, ctx.matchers)
    if not matches:
        raise _field_error(
            ["work_file"], "The uploaded file matches no registered work. Register your work first, or give its id."
        )
    return matches[0].work, f"upload:{matches[0].method}"


def _target(session: Session, notice: NoticeIn) -> tuple[str, Work | None, str | None]:
    infringing = notice.infringing
    if infringing.work_id:
        work = session.get(Work, infringing.work_id)
        if work is None:
            raise _field_error(["infringing", "work_id"], f"No registered work has the id {infringing.work_id}.")
        return "work", work, None
    if infringing.listing_id:
        work_id = takedowns.work_of_listing(session, infringing.listing_id)
        if work_id is None:
            raise _field_error(["infringing", "listing_id"], f"No listing has the id {infringing.listing_id}.")
        return "listing", registry_service.get_work(session, work_id), infringing.listing_id
    return "url", None, None


def _refuse_duplicate(
    session: Session, claimed_id: str, kind: str, target_work: Work | None, listing_id: str | None, url: str | None
) -> None:
    query = select(Complaint).where(
        Complaint.claimed_work_id == claimed_id, Complaint.target_kind == kind, Complaint.status.in_(OPEN)
    )
    if kind == "listing":
        query = query.where(Complaint.target_listing_id == listing_id)
    elif kind == "work":
        query = query.where(Complaint.target_work_id == target_work.id)  # type: ignore[union-attr]
    else:
        query = query.where(Complaint.target_url == url)
    existing = session.scalars(query).first()
    if existing is not None:
        raise Conflict(
            f"A notice about this work and this target is already open as case {existing.case_number}; "
            "follow it on its status page instead of filing again.",
            case_number=existing.case_number,
        )


def _insert_numbered(session: Session, complaint: Complaint, now: datetime) -> None:
    """Give the case the next number of its year; a concurrent notice that took it first means: take the next."""
    prefix = f"IPX-{now.year}-"
    for _ in range(CASE_NUMBER_ATTEMPTS):
        count = session.scalar(select(func.count()).where(Complaint.case_number.like(f"{prefix}%"))) or 0
        complaint.case_number = f"{prefix}{count + 1:06d}"
        try:
            with session.begin_nested():
                session.add(complaint)
                session.flush()
            return
        except IntegrityError:
            continue
    raise Conflict("Too many notices are being filed at this moment; please send yours again.")


def work_card(session: Session, work: Work) -> dict[str, Any]:
    """What staff compare side by side: identity, content hash, and where it sits in the log."""
    return {
        "work_id": work.id, "title": work.title, "work_type": work.work_type, "media_type": work.media_type,
        "sha256": work.sha256, "size": work.size, "status": work.status,
        "owner": {"account_id": work.owner_id, "display_name": registry_service.owner_of(session, work).display_name},
        "registered_at": rfc3339(work.registered_at), "log_index": work.log_index,
        "certificate_url": f"/works/{work.id}", "evidence_url": f"/api/v1/works/{work.id}/evidence",
    }


def _evidence(
    session: Session, claimed: Work, identified_by: str, target_work: Work | None, listing_id: str | None,
    url: str | None, copy: Upload | None, matchers: list[WorkMatcher],
) -> dict[str, Any]:
    evidence: dict[str, Any] = {"claimed": work_card(session, claimed), "identified_by": identified_by}
    match: WorkMatch | None = None
    if target_work is not None:
        evidence["infringing"] = {**work_card(session, target_work), "listing_id": listing_id}
        match = match_between(session, claimed, target_work)
        evidence["earlier"] = "claimed" if claimed.log_index < target_work.log_index else "infringing"
    else:
        evidence["infringing"] = {"url": url, "copy": {"sha256": copy.sha256, "size": copy.size} if copy else None}
        if copy is not None:  # does the copy from the web match the complainant's registration?
            match = next((m for m in identify(session, copy, matchers) if m.work.id == claimed.id), None)
    evidence["match"] = {"method": match.method, "distance": match.distance, "source": match.source} if match else None
    for side, work in (("claimed", claimed), ("infringing", target_work)):
        if match is not None and work is not None and work.id in match.regions:
            evidence[side]["region"] = match.regions[work.id]
    return evidence


def target_label(complaint: Complaint) -> str:
    return complaint.target_work_id if complaint.target_kind == "work" else (
        complaint.target_listing_id if complaint.target_kind == "listing" else complaint.target_url
    ) or ""


# --- reading -----------------------------------------------------------------------------------------------


def get_complaint(session: Session, complaint_id: str, *, for_update: bool = False) -> Complaint:
    """A case; `for_update` locks its row until the transaction ends, for every change of its state: two staff
    actions at once each rewrote the takedown list from their own read, and one takedown was never lifted."""
    complaint = (
        session.get(Complaint, complaint_id, with_for_update=for_update, populate_existing=for_update)
        if _is_uuid(complaint_id) else None
    )
    if complaint is None:
        raise NotFound(f"No complaint has the id {complaint_id}.")
    return complaint


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def party_role(complaint: Complaint, *, caller: Principal | None, token: str | None) -> str:
    """Who may see a case: the complainant (by token or account), the targeted owner, or staff."""
    if token and hmac.compare_digest(_token_hash(token), complaint.token_hash):
        return "complainant"
    if caller is None:
        raise Unauthorized("Open this case with the link from your confirmation email, or log in.")
    if caller.is_staff:
        return "staff"
    if caller.id == complaint.target_owner_id:
        return "owner"
    if caller.id == complaint.complainant_account_id:
        return "complainant"
    raise Forbidden("Only the parties to this case and IPX staff may see it.")


def view(session: Session, complaint: Complaint, role: str) -> dict[str, Any]:
    """The case as one party may see it: the complainant's contact details are for staff and the complainant.

    The accused owner sees the name only; IPX forwards what the parties send each other (counter-notice, legal
    action), so a notice never hands the complainant's email, address or phone to the party it accuses.
    """
    complainant: dict[str, Any] = {"name": complaint.complainant_name}
    if role in ("staff", "complainant"):
        complainant |= {"email": complaint.complainant_email, "address": complaint.complainant_address,
                        "phone": complaint.complainant_phone}
    counter = None
    if complaint.counter_filed_at is not None:
        counter = {"statement": complaint.counter_statement, "signature": complaint.counter_signature,
                   "filed_at": complaint.counter_filed_at}
    body: dict[str, Any] = {
        "complaint_id": complaint.id, "case_number": complaint.case_number, "status": complaint.status,
        "received_at": complaint.received_at, "decided_at": complaint.decided_at, "closed_at": complaint.closed_at,
        "work_id": complaint.claimed_work_id,
        "infringing": {"kind": complaint.target_kind, "work_id": complaint.target_work_id,
                       "listing_id": complaint.target_listing_id, "url": complaint.target_url},
        "complainant": complainant, "description": complaint.description, "takedowns": list(complaint.takedowns),
        "counter_notice": counter, "restore_due_at": complaint.restore_due_at,
        "legal_action": {"reported_at": complaint.legal_action_at, "note": complaint.legal_action_note}
        if complaint.legal_action_at else None,
        "evidence": complaint.evidence,
        "history": [_history_entry(e, role) for e in audit_service.for_subject(session, "complaint", complaint.id)],
    }
    if role == "staff" and complaint.target_owner_id:
        owner_id = complaint.target_owner_id
        body["repeat_infringer"] = {"account_id": owner_id, "upheld_complaints": upheld_count(session, owner_id)}
    return body


def _history_entry(event: AuditEvent, role: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"at": event.occurred_at, "action": event.action, "reason": event.details.get("reason")}
    if role == "staff":
        entry["actor_id"] = event.actor_id
    return entry


def upheld_count(session: Session, account_id: str) -> int:
    """Repeat-infringer measure: complaints against the account's content that staff acted on and did not reverse."""
    return upheld_counts(session, [account_id])[account_id]


def upheld_counts(session: Session, account_ids: Collection[str]) -> dict[str, int]:
    """upheld_count of each account, in one query (the staff queue shows it on every row)."""
    counted = session.execute(
        select(Complaint.target_owner_id, func.count())
        .where(Complaint.target_owner_id.in_(list(account_ids)), Complaint.upheld.is_(True))
        .group_by(Complaint.target_owner_id)
    )
    return {account_id: 0 for account_id in account_ids} | {owner: count for owner, count in counted}


QUEUE_PAGE_SIZE = 50


@dataclass(frozen=True)
class QueueFilter:
    status: str | None = None
    target_kind: str | None = None
    min_age_days: int | None = None
    max_age_days: int | None = None


def queue(
    session: Session, filters: QueueFilter, now: datetime, *, page: int, page_size: int
) -> tuple[list[Complaint], int]:
    """One page of the cases matching `filters`, oldest first (the case waiting longest is handled first), and how
    many match in all: closed cases accumulate for ever, and the queue listed every one of them at once."""
    query = select(Complaint)
    if filters.status == "open":
        query = query.where(Complaint.status.in_(OPEN))
    elif filters.status:
        query = query.where(Complaint.status == filters.status)
    if filters.target_kind:
        query = query.where(Complaint.target_kind == filters.target_kind)
    if filters.min_age_days is not None:
        query = query.where(Complaint.received_at <= now - timedelta(days=filters.min_age_days))
    if filters.max_age_days is not None:
        query = query.where(Complaint.received_at >= now - timedelta(days=filters.max_age_days))
    return page_of(session, query, Complaint.received_at, Complaint.case_number, page=page, page_size=page_size)


# --- the owner's and the complainant's moves ---------------------------------------------------------------


def file_counter_notice(
    session: Session, complaint_id: str, counter: CounterNoticeIn, *, caller: Principal, ctx: ComplaintsContext
) -> Complaint:
    """The owner disputes a takedown; the content comes back after the clock unless the complainant sues."""
    complaint = get_complaint(session, complaint_id, for_update=True)
    if caller.id != complaint.target_owner_id:
        raise Forbidden("Only the owner of the content this notice targets may file a counter-notice.")
    if complaint.counter_filed_at is not None:
        raise Conflict(f"A counter-notice was already filed for case {complaint.case_number}.")
    if complaint.status != "action_taken":
        raise Conflict(
            f"Case {complaint.case_number} is {complaint.status.replace('_', ' ')}: a counter-notice answers a "
            "takedown, and nothing of yours is taken down under it."
        )
    now = ctx.now()
    complaint.counter_statement, complaint.counter_signature = counter.statement, counter.signature
    complaint.counter_filed_at, complaint.status = now, "counter_noticed"
    complaint.restore_due_at = add_business_days(now, ctx.restore_business_days)
    audit_service.record(
        session, action="complaint.counter_notice", subject_type="complaint", subject_id=complaint.id,
        actor_id=caller.id, details={"restore_due_at": rfc3339(complaint.restore_due_at)},
    )
    subject_body = messages.action_taken(complaint, "counter_notice", counter.statement, to_owner=False)
    _tell(session, complaint, "complaint.counter_notice", complaint.complainant_email, subject_body)
    return complaint


def report_legal_action(
    session: Session, complaint_id: str, report: LegalActionIn, *, ctx: ComplaintsContext
) -> Complaint:
    """The complainant has gone to court: the restoration clock stops and the content stays down."""
    complaint = get_complaint(session, complaint_id, for_update=True)
    if party_role(complaint, caller=None, token=report.token) != "complainant":
        raise Forbidden("Only the complainant may report legal action.")
    if complaint.status != "counter_noticed":
        raise Conflict(f"Case {complaint.case_number} has no counter-notice waiting for its restoration date.")
    if complaint.restore_due_at is not None and ctx.now() >= complaint.restore_due_at:
        # the report had to come first (DMCA 512(g)(2)(C)); the restoration is due, whether or not it ran yet
        raise Conflict(f"The period for reporting legal action on case {complaint.case_number} ended on "
                       f"{complaint.restore_due_at:%Y-%m-%d %H:%M} UTC; the content is being restored.")
    complaint.status, complaint.legal_action_at, complaint.legal_action_note = "legal_action", ctx.now(), report.note
    complaint.restore_due_at = None
    audit_service.record(
        session, action="complaint.legal_action", subject_type="complaint", subject_id=complaint.id,
        details={"reason": report.note},
    )
    _tell_owner(session, complaint, "legal_action", report.note)
    return complaint


def process_due_restorations(session: Session, now: datetime) -> list[Complaint]:
    """Restore content whose counter-notice period ended without a report of legal action (`ipx complaints tick`)."""
    due = session.scalars(
        select(Complaint)
        .where(Complaint.status == "counter_noticed", Complaint.restore_due_at <= now)
        .with_for_update(skip_locked=True)  # a case a party is changing right now is restored on the next tick
    )
    restored = []
    for complaint in due:
        reason = "The counter-notice period ended and the complainant reported no legal action."
        takedowns.lift_all(session, complaint, actor_id=None, reason=reason)
        complaint.status, complaint.closed_at, complaint.upheld = "restored", now, False
        complaint.decided_at = complaint.decided_at or now
        audit_service.record(
            session, action="complaint.restored_after_counter_notice", subject_type="complaint",
            subject_id=complaint.id, details={"reason": reason},
        )
        _tell_both(session, complaint, "restored_after_counter_notice", reason)
        restored.append(complaint)
    return restored


# --- staff -------------------------------------------------------------------------------------------------


def apply_staff_action(
    session: Session, complaint_id: str, action_in: StaffActionIn, *, staff: Principal, ctx: ComplaintsContext
) -> Complaint:
    complaint = get_complaint(session, complaint_id, for_update=True)
    action, reason = action_in.action, action_in.reason
    if complaint.status in CLOSED:
        raise Conflict(f"Case {complaint.case_number} is closed ({complaint.status}); reopen it with a new notice.")
    now = ctx.now()
    if action == StaffAction.request_info:
        if complaint.status not in ("received", "info_requested"):
            raise Conflict(f"Case {complaint.case_number} is past the information stage ({complaint.status}).")
        complaint.status = "info_requested"
    elif action in TAKEDOWN_ACTIONS:
        if complaint.status == "counter_noticed":
            raise Conflict(
                f"Case {complaint.case_number} has a pending counter-notice: restore the content or let the clock run."
            )
        if action.value in complaint.takedowns:
            raise Conflict(f"“{action.value}” is already in force for case {complaint.case_number}.")
        takedowns.apply(session, complaint, action.value, actor_id=staff.id, reason=reason)
        complaint.takedowns = [*complaint.takedowns, action.value]
        complaint.upheld, complaint.decided_at = True, complaint.decided_at or now
        if complaint.status != "legal_action":
            complaint.status = "action_taken"
    else:
        if action == StaffAction.restore and not complaint.takedowns:
            raise Conflict(f"Nothing is taken down under case {complaint.case_number}, so there is nothing to restore.")
        takedowns.lift_all(session, complaint, actor_id=staff.id, reason=reason)
        if action == StaffAction.clear_flag:
            _clear_detection_flags(session, complaint, staff, reason)
        complaint.status, complaint.upheld = CLOSING_STATUS[action], False
        complaint.closed_at, complaint.decided_at = now, complaint.decided_at or now
    audit_service.record(
        session, action=f"complaint.{action.value}", subject_type="complaint", subject_id=complaint.id,
        actor_id=staff.id, details={"reason": reason, "status": complaint.status},
    )
    if action == StaffAction.request_info:
        _tell(session, complaint, "complaint.request_info", complaint.complainant_email,
              messages.action_taken(complaint, action.value, reason, to_owner=False))
    else:
        _tell_both(session, complaint, action.value, reason)
    return complaint


def _clear_detection_flags(session: Session, complaint: Complaint, staff: Principal, reason: str) -> None:
    if complaint.target_work_id is None:
        return
    for flag in prior_matches_between(session, complaint.claimed_work_id, complaint.target_work_id):
        if flag.review_status == "open":
            flag.review_status = "cleared"
            audit_service.record(
                session, action="review.cleared", subject_type="prior_match", subject_id=str(flag.id),
                actor_id=staff.id, details={"reason": reason, "case_number": complaint.case_number},
            )


# --- telling people ----------------------------------------------------------------------------------------


def _owner_email(session: Session, complaint: Complaint) -> str | None:
    if complaint.target_owner_id is None:
        return None
    owner = session.get(User, complaint.target_owner_id)
    return owner.email if owner else None


def _tell(session: Session, complaint: Complaint, kind: str, to_email: str, subject_body: tuple[str, str]) -> None:
    subject, body = subject_body
    outbox.enqueue(
        session, kind=kind, to_email=to_email, subject=subject, body=body, subject_type="complaint",
        subject_id=complaint.id,
    )


def _tell_owner(session: Session, complaint: Complaint, action: str, reason: str) -> None:
    owner_email = _owner_email(session, complaint)
    if owner_email:
        _tell(session, complaint, f"complaint.{action}", owner_email,
              messages.action_taken(complaint, action, reason, to_owner=True))


def _tell_both(session: Session, complaint: Complaint, action: str, reason: str) -> None:
    _tell(session, complaint, f"complaint.{action}", complaint.complainant_email,
          messages.action_taken(complaint, action, reason, to_owner=False))
    _tell_owner(session, complaint, action, reason)

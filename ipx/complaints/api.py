"""Complaint, staff console, review queue and audit routes (DESIGN.md section 2); each is one service call."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ipx.complaints import audit_search, review, service
from ipx.complaints.deps import CaseAgeDays, CaseContext, parse_notice, spooled_copies
from ipx.complaints.models import Complaint
from ipx.complaints.schemas import (
    AuditPage,
    AuditRead,
    ComplaintQueue,
    ComplaintRead,
    ComplaintSummary,
    CounterNoticeIn,
    LegalActionIn,
    NoticeCreated,
    NoticeIn,
    ReviewDecisionIn,
    ReviewRead,
    StaffActionIn,
)
from ipx.config import Settings
from ipx.deps import Anyone, AppSettings, Caller, DbSession, Page, SendsMail, Staff, StoredInteger
from ipx.errors import InvalidInput
from ipx.openapi import schema_ref
from ipx.routing import IPXRoute

router = APIRouter(tags=["complaints"], route_class=IPXRoute)
TOKEN_HEADER = "X-Complaint-Token"
QUEUE_STATUSES = ["open", *service.STATUSES]
REQUEST_BODY_MODELS = [NoticeIn]  # bodies read by hand below, documented through openapi_extra
ATTACHMENT = {"type": "string", "contentMediaType": "application/octet-stream"}
NOTICE_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": schema_ref(NoticeIn)},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["notice"],
                "properties": {
                    "notice": {"type": "string", "contentMediaType": "application/json",
                               "description": "the notice, as the application/json body would be"},
                    "work_file": {**ATTACHMENT, "description": "a copy of your work, when the notice has no work_id"},
                    "infringing_file": {**ATTACHMENT, "description": "a copy of the material at the infringing url"},
                },
            }
        },
    },
}


def status_url(settings: Settings, complaint: Complaint, token: str) -> str:
    return f"{settings.public_url.rstrip('/')}/complaints/{complaint.id}?token={token}"


@router.post("/complaints", status_code=201, response_model=NoticeCreated, openapi_extra={"requestBody": NOTICE_BODY})
async def file_complaint(
    request: Request, session: DbSession, settings: AppSettings, caller: Anyone, ctx: CaseContext
) -> NoticeCreated:
    """File an infringement notice (anyone, account or not).

    Send JSON, or multipart/form-data with the JSON in a `notice` field plus optional files: `work_file`
    (a copy of your work, when you omit `work_id`: IPX finds its registration) and `infringing_file` (a
    copy of the infringing material at an external url).
    """
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        notice = parse_notice(_json_field(form.get("notice")))
        async with spooled_copies(form, settings) as copies:
            # blocking database work runs off the event loop, which the lock holder's commit needs
            filed = await run_in_threadpool(
                service.file_notice, session, notice, caller=caller, claimed_copy=copies.get("work_file"),
                target_copy=copies.get("infringing_file"), ctx=ctx,
            )
    else:
        notice = parse_notice(await _json_body(request))
        filed = await run_in_threadpool(service.file_notice, session, notice, caller=caller, ctx=ctx)
    complaint = filed.complaint
    return NoticeCreated(
        complaint_id=complaint.id, case_number=complaint.case_number, status=complaint.status,
        status_url=status_url(settings, complaint, filed.token), token=filed.token,
    )


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, or nested deeper than Python parses
        raise InvalidInput("The notice must be a JSON object (or multipart with a JSON 'notice' field).") from exc


def _json_field(value: Any) -> Any:
    if not isinstance(value, str):
        raise InvalidInput("Put the notice as JSON in the 'notice' form field.", errors=[
            {"loc": ["body", "notice"], "msg": "Field required"}
        ])
    try:
        return json.loads(value)
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise InvalidInput(f"The 'notice' form field is not valid JSON ({reason}).", errors=[
            {"loc": ["body", "notice"], "msg": "Invalid JSON"}
        ]) from exc


@router.get("/complaints/{complaint_id}", response_model=ComplaintRead)
def get_complaint(
    complaint_id: str, session: DbSession, caller: Anyone, token: Annotated[str | None, Query()] = None,
    header_token: Annotated[str | None, Header(alias=TOKEN_HEADER)] = None,
) -> dict[str, Any]:
    """A case as its parties see it: the complainant (by token), the targeted owner, and staff."""
    complaint = service.get_complaint(session, complaint_id)
    role = service.party_role(complaint, caller=caller, token=token or header_token)
    return service.view(session, complaint, role)


@router.post("/complaints/{complaint_id}/counter-notice", response_model=ComplaintRead)
def file_counter_notice(
    complaint_id: str, body: CounterNoticeIn, session: DbSession, caller: Caller, ctx: CaseContext
) -> dict[str, Any]:
    """The owner of the targeted content disputes the takedown; restoration follows unless the complainant sues."""
    complaint = service.file_counter_notice(session, complaint_id, body, caller=caller, ctx=ctx)
    return service.view(session, complaint, "owner")


@router.post("/complaints/{complaint_id}/legal-action", response_model=ComplaintRead)
def report_legal_action(complaint_id: str, body: LegalActionIn, session: DbSession, ctx: CaseContext) -> dict[str, Any]:
    """The complainant (by token) reports a court action, which stops the restoration clock."""
    complaint = service.report_legal_action(session, complaint_id, body, ctx=ctx)
    return service.view(session, complaint, "complainant")


@router.get("/staff/complaints", response_model=ComplaintQueue)
def complaint_queue(
    session: DbSession, staff: Staff, ctx: CaseContext,
    status: Annotated[
        str | None,
        Query(description="a status, or 'open' for every open case", json_schema_extra={"enum": QUEUE_STATUSES}),
    ] = None,
    kind: Annotated[
        str | None,
        Query(alias="type", description="work, listing or url", json_schema_extra={"enum": list(service.TARGET_KINDS)}),
    ] = None,
    min_age_days: CaseAgeDays = None,
    max_age_days: CaseAgeDays = None,
    page: Page = 1,
) -> ComplaintQueue:
    """The staff queue, oldest case first, QUEUE_PAGE_SIZE cases a page; `total` counts every matching case."""
    filters = queue_filter(status, kind, min_age_days, max_age_days)
    now = ctx.now()
    cases, total = service.queue(session, filters, now, page=page, page_size=service.QUEUE_PAGE_SIZE)
    return ComplaintQueue(
        items=summaries(session, cases, now), total=total, page=page, page_size=service.QUEUE_PAGE_SIZE
    )


def queue_filter(
    status: str | None, kind: str | None, min_age_days: int | None, max_age_days: int | None
) -> service.QueueFilter:
    if status and status not in QUEUE_STATUSES:
        raise InvalidInput(
            f"Unknown status “{status}”: use open or one of {', '.join(service.STATUSES)}.",
            errors=[{"loc": ["query", "status"], "msg": "unknown status"}],
        )
    if kind and kind not in service.TARGET_KINDS:
        raise InvalidInput(
            f"Unknown type “{kind}”: use work, listing or url.",
            errors=[{"loc": ["query", "type"], "msg": "unknown type"}],
        )
    return service.QueueFilter(status or None, kind or None, min_age_days, max_age_days)


def summaries(session: Session, complaints: Sequence[Complaint], now: datetime) -> list[ComplaintSummary]:
    """Queue rows, with each targeted account's repeat-infringer count read for all rows at once."""
    upheld = service.upheld_counts(session, {c.target_owner_id for c in complaints if c.target_owner_id})
    return [
        ComplaintSummary(
            complaint_id=complaint.id, case_number=complaint.case_number, status=complaint.status,
            target_kind=complaint.target_kind, received_at=complaint.received_at,
            age_days=(now - complaint.received_at).days, work_id=complaint.claimed_work_id,
            target=complaint.evidence.get("infringing", {}).get("title") or service.target_label(complaint),
            complainant_name=complaint.complainant_name,
            target_owner_upheld_count=upheld[complaint.target_owner_id] if complaint.target_owner_id else None,
        )
        for complaint in complaints
    ]


@router.get("/staff/complaints/{complaint_id}", response_model=ComplaintRead)
def staff_case(complaint_id: str, session: DbSession, staff: Staff) -> dict[str, Any]:
    """The full case for staff, with evidence and the targeted account's repeat-infringer count."""
    return service.view(session, service.get_complaint(session, complaint_id), "staff")


@router.post("/staff/complaints/{complaint_id}/actions", response_model=ComplaintRead)
def staff_action(
    complaint_id: str, body: StaffActionIn, session: DbSession, staff: Staff, ctx: CaseContext
) -> dict[str, Any]:
    """Decide or move a case; every action needs a reason, is audited and is sent to the parties."""
    complaint = service.apply_staff_action(session, complaint_id, body, staff=staff, ctx=ctx)
    return service.view(session, complaint, "staff")


PAGE_HEADERS = {
    "X-Total-Count": {"description": "flags of this status in all", "schema": {"type": "integer"}},
    "Link": {"description": 'RFC 8288 links to the pages before and after: rel="prev", rel="next"',
             "schema": {"type": "string"}},
}


@router.get("/staff/reviews", response_model=list[ReviewRead], responses={200: {"headers": PAGE_HEADERS}})
def review_queue(
    request: Request, response: Response, session: DbSession, staff: Staff,
    status: Annotated[str | None, Query(pattern="^(open|cleared|upheld)$")] = "open",
    page: Page = 1,
) -> list[dict[str, Any]]:
    """Registrations flagged by detection, oldest first, REVIEW_PAGE_SIZE a page (the list stays a list: the total
    and the neighbouring pages are in the X-Total-Count and Link headers)."""
    flags, total = review.list_reviews(session, status, page=page, page_size=review.REVIEW_PAGE_SIZE)
    response.headers["X-Total-Count"] = str(total)
    neighbours = {"prev": page - 1 if page > 1 else None,
                  "next": page + 1 if page * review.REVIEW_PAGE_SIZE < total else None}
    links = [f'<{request.url.include_query_params(page=number)}>; rel="{rel}"'
             for rel, number in neighbours.items() if number is not None]
    if links:
        response.headers["Link"] = ", ".join(links)
    return review.review_views(session, flags)


@router.post("/staff/reviews/{review_id}", response_model=ReviewRead, dependencies=[SendsMail])
def decide_review(review_id: StoredInteger, body: ReviewDecisionIn, session: DbSession, staff: Staff) -> dict[str, Any]:
    """Clear or uphold a detection flag, with a reason (audited; the owner is told)."""
    flag = review.decide_review(session, review_id, body.decision, staff=staff, reason=body.reason)
    return review.review_view(session, flag)


@router.get("/works/{work_id}/review", response_model=list[ReviewRead])
def work_review(work_id: str, session: DbSession, caller: Caller) -> list[dict[str, Any]]:
    """The owner's view of detection flags on their registration and how each review stands."""
    return review.reviews_of_work(session, work_id, caller=caller)


@router.get("/staff/audit", response_model=AuditPage)
def audit_log(
    session: DbSession, staff: Staff,
    action: Annotated[str | None, Query(max_length=64, description="prefix, e.g. complaint")] = None,
    subject: Annotated[str | None, Query(max_length=64, description="subject id")] = None,
    subject_type: Annotated[str | None, Query(max_length=32)] = None,
    actor: Annotated[str | None, Query(max_length=36, description="actor account id")] = None,
    page: Page = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditPage:
    """Search the append-only audit log, newest first."""
    query = audit_search.AuditQuery(action, subject, subject_type, actor, page, page_size)
    events, total = audit_search.search(session, query)
    items = [AuditRead.model_validate(event, from_attributes=True) for event in events]
    return AuditPage(items=items, total=total, page=page, page_size=page_size)

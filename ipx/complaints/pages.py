"""Server-rendered complaint pages: the public notice form, case status, counter-notice, and the staff console.

Plain forms with POST-redirect-GET; they call the same services as the API, so both behave alike.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ipx.accounts.service import Principal
from ipx.complaints import api, audit_search, review, service
from ipx.complaints.deps import CaseAgeDays, CaseContext, field_errors, parse_notice, spooled_copies
from ipx.complaints.models import Complaint
from ipx.complaints.schemas import CounterNoticeIn, LegalActionIn, ReviewDecision, StaffAction, StaffActionIn
from ipx.deps import AppSettings, DbSession, PageOfResults, SendsMail, StoredInteger, staff_only
from ipx.errors import Forbidden, InvalidInput, IPXError, Unauthorized
from ipx.registry.models import PriorMatch
from ipx.web.pages import (
    SECRET_PAGE_HEADERS,
    Visitor,
    page_router,
    private_headers,
)
from ipx.web.templating import templates

# Handlers render their own problem pages; PageRoute renders what escapes them (a form sent from another website,
# refused like every other page form; a malformed id) as a page too. A stale session cookie reads as logged out.
router = page_router()
NOTICE_FIELDS = (
    "work_id", "infringing_work_id", "infringing_listing_id", "infringing_url", "name", "email", "address", "phone",
    "description", "signature",
)


def render(
    request: Request, name: str, caller: Principal | None, status_code: int = 200,
    headers: dict[str, str] | None = None, **context: Any,
) -> Response:
    return templates.TemplateResponse(request, name, {"caller": caller, **context}, status_code=status_code,
                                      headers=private_headers(caller, headers))


def problem_page(request: Request, caller: Principal | None, error: IPXError) -> Response:
    if isinstance(error, Unauthorized) and caller is None:
        return RedirectResponse(f"/login?{urlencode({'next': request.url.path})}", status_code=303)
    return render(request, "complaints/problem.html", caller, status_code=error.status_code, error=error)


def _require_staff(caller: Principal | None) -> Principal:
    if caller is None:
        raise Unauthorized("Log in with a staff account to use the console.")
    return staff_only(caller, "The console is for IPX staff only.")


# --- public: notice form and case status -------------------------------------------------------------------


@router.get("/complaints/new", response_class=HTMLResponse)
def notice_form(
    request: Request, caller: Visitor, work_id: str = "", infringing_work_id: str = "", listing_id: str = "",
) -> Response:
    """The notice form; alert emails link here with both works pre-filled."""
    values = {"work_id": work_id, "infringing_work_id": infringing_work_id, "infringing_listing_id": listing_id}
    if caller is not None:
        values |= {"name": caller.display_name, "email": caller.email}
    return render(request, "complaints/new.html", caller, values=values, errors={})


@router.post("/complaints/new", response_class=HTMLResponse, dependencies=[SendsMail])
async def submit_notice(
    request: Request, session: DbSession, settings: AppSettings, caller: Visitor, ctx: CaseContext
) -> Response:
    form = await request.form()
    values = {name: str(form.get(name) or "").strip() for name in NOTICE_FIELDS}
    try:
        async with spooled_copies(form, settings) as copies:
            notice = parse_notice(_notice_from_form(values, form))
            filed = await run_in_threadpool(  # off the event loop: see ipx/registry/api.py register_upload
                service.file_notice, session, notice, caller=caller, claimed_copy=copies.get("work_file"),
                target_copy=copies.get("infringing_file"), ctx=ctx,
            )
    except IPXError as error:
        session.rollback()
        errors = {".".join(map(str, e["loc"][1:])): e["msg"] for e in error.extra.get("errors", [])}
        return render(request, "complaints/new.html", caller, status_code=error.status_code, values=values,
                      errors=errors, error=error)
    query = urlencode({"token": filed.token, "filed": 1})
    return RedirectResponse(f"/complaints/{filed.complaint.id}?{query}", status_code=303)


def _notice_from_form(values: dict[str, str], form: FormData) -> dict[str, Any]:
    infringing = {
        key: values[f"infringing_{key}"] for key in ("work_id", "listing_id", "url") if values[f"infringing_{key}"]
    }
    complainant = {key: values[key] for key in ("name", "email", "address", "phone") if values[key]}
    notice: dict[str, Any] = {
        "infringing": infringing, "complainant": complainant, "description": values["description"],
        "signature": values["signature"],
        "good_faith": form.get("good_faith") == "on" or None, "accuracy": form.get("accuracy") == "on" or None,
    }
    if values["work_id"]:
        notice["work_id"] = values["work_id"]
    return {key: value for key, value in notice.items() if value is not None}


@router.get("/complaints/{complaint_id}", response_class=HTMLResponse)
def case_status(
    request: Request, complaint_id: str, session: DbSession, caller: Visitor,
    token: Annotated[str | None, Query()] = None, filed: bool = False,
) -> Response:
    try:
        complaint = service.get_complaint(session, complaint_id)
        role = service.party_role(complaint, caller=caller, token=token)
    except IPXError as error:
        return problem_page(request, caller, error)
    return render(
        request, "complaints/status.html", caller, case=service.view(session, complaint, role), role=role,
        token=token if role == "complainant" else None, filed=filed,
        headers=SECRET_PAGE_HEADERS if token else None,  # the complainant's link is their key to the case
    )


@router.post("/complaints/{complaint_id}/legal-action", response_class=HTMLResponse, dependencies=[SendsMail])
def legal_action_form(
    request: Request, complaint_id: str, session: DbSession, caller: Visitor, ctx: CaseContext,
    token: Annotated[str, Form()], note: Annotated[str, Form()],
) -> Response:
    try:
        report = LegalActionIn(token=token, note=note)
        service.report_legal_action(session, complaint_id, report, ctx=ctx)
    except (IPXError, ValueError) as error:
        return problem_page(request, caller, _as_problem(error))
    return RedirectResponse(f"/complaints/{complaint_id}?{urlencode({'token': token})}", status_code=303)


def _as_problem(error: Exception) -> IPXError:
    """A rejected form (pydantic) reads like any other invalid input: which field, and what is wrong."""
    if isinstance(error, IPXError):
        return error
    if isinstance(error, ValidationError):
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
    else:
        detail = str(error)
    return InvalidInput(f"The form is incomplete or invalid — {detail}.")


def _case_to_answer(session: Session, complaint_id: str, caller: Principal | None) -> Complaint:
    """The case whose counter-notice form the caller may see: theirs to answer, or staff's to look at."""
    if caller is None:
        raise Unauthorized("Log in as the owner of the content to file a counter-notice.")
    complaint = service.get_complaint(session, complaint_id)
    if service.party_role(complaint, caller=caller, token=None) not in ("owner", "staff"):
        raise Forbidden("Only the owner of the content this notice targets may file a counter-notice.")
    return complaint


@router.get("/complaints/{complaint_id}/counter-notice", response_class=HTMLResponse)
def counter_notice_form(request: Request, complaint_id: str, session: DbSession, caller: Visitor) -> Response:
    try:
        complaint = _case_to_answer(session, complaint_id, caller)
    except IPXError as error:
        return problem_page(request, caller, error)
    return render(request, "complaints/counter_notice.html", caller, case=service.view(session, complaint, "owner"),
                  values={}, errors={})


@router.post("/complaints/{complaint_id}/counter-notice", response_class=HTMLResponse, dependencies=[SendsMail])
async def submit_counter_notice(
    request: Request, complaint_id: str, session: DbSession, caller: Visitor, ctx: CaseContext
) -> Response:
    form = await request.form()
    values = {key: str(form.get(key) or "").strip() for key in ("statement", "signature")}
    try:
        complaint = _case_to_answer(session, complaint_id, caller)  # before the form: its errors show the case
        counter = CounterNoticeIn.model_validate({**values, "consent_to_jurisdiction": form.get("consent") == "on"})
        await run_in_threadpool(service.file_counter_notice, session, complaint_id, counter, caller=caller, ctx=ctx)
    except ValidationError as error:
        errors = {".".join(e["loc"][1:]): e["msg"] for e in field_errors(error)}
        return render(request, "complaints/counter_notice.html", caller, status_code=422,
                      case=service.view(session, complaint, "owner"), values=values, errors=errors)
    except IPXError as error:
        session.rollback()
        return problem_page(request, caller, error)
    return RedirectResponse(f"/complaints/{complaint_id}", status_code=303)


# --- staff console -----------------------------------------------------------------------------------------


@router.get("/staff/complaints", response_class=HTMLResponse)
def staff_queue(
    request: Request, session: DbSession, caller: Visitor, ctx: CaseContext,
    status: str = "open", kind: Annotated[str, Query(alias="type")] = "", min_age_days: CaseAgeDays = None,
    page: PageOfResults = 1,
) -> Response:
    try:
        _require_staff(caller)
        filters = api.queue_filter(status, kind, min_age_days, None)
    except IPXError as error:
        return problem_page(request, caller, error)
    now = ctx.now()
    cases, total = service.queue(session, filters, now, page=page, page_size=service.QUEUE_PAGE_SIZE)
    kept = {"status": status} | {name: value for name, value in (("type", kind), ("min_age_days", min_age_days))
                                 if value not in ("", None)}  # an empty status means any: it must stay in links
    return render(request, "staff/queue.html", caller, items=api.summaries(session, cases, now), status=status,
                  kind=kind, min_age_days=min_age_days, statuses=service.STATUSES, kinds=service.TARGET_KINDS,
                  page=page, total=total, has_next=page * service.QUEUE_PAGE_SIZE < total, filters=kept)


ACTION_LABELS = {
    StaffAction.dismiss: "Dismiss the complaint", StaffAction.request_info: "Ask the complainant for more information",
    StaffAction.hide_listing: "Hide the listing or work", StaffAction.suspend_sales: "Suspend its sales",
    StaffAction.mark_disputed: "Mark the work as disputed", StaffAction.restore: "Restore the content",
    StaffAction.clear_flag: "Clear the prior-match flag",
}


def _staff_case_page(
    request: Request, session: Session, caller: Principal, complaint_id: str, *, notice: str | None = None,
    error: IPXError | None = None, chosen: str = "", reason: str = "",
) -> Response:
    case = service.view(session, service.get_complaint(session, complaint_id), "staff")
    return render(request, "staff/case.html", caller, status_code=error.status_code if error else 200, case=case,
                  actions=ACTION_LABELS, notice=notice, error=error, chosen=chosen, reason=reason)


@router.get("/staff/complaints/{complaint_id}", response_class=HTMLResponse)
def staff_case(request: Request, complaint_id: str, session: DbSession, caller: Visitor, done: str = "") -> Response:
    """A case for staff, with the form to act on it; `done` names the action just applied (said, not repeated)."""
    try:
        staff = _require_staff(caller)
        notice = f"Done: {ACTION_LABELS[StaffAction(done)].lower()}." if done in StaffAction.__members__ else None
        return _staff_case_page(request, session, staff, complaint_id, notice=notice)
    except IPXError as error:
        return problem_page(request, caller, error)


@router.post("/staff/complaints/{complaint_id}/actions", response_class=HTMLResponse)
def staff_case_action(
    request: Request, complaint_id: str, session: DbSession, caller: Visitor, ctx: CaseContext,
    action: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
) -> Response:
    """Apply an action; a refused one is said on the case page, with the action and reason kept for another try."""
    try:
        staff = _require_staff(caller)
    except IPXError as error:
        return problem_page(request, caller, error)
    try:
        action_in = StaffActionIn.model_validate({"action": action, "reason": reason})
        service.apply_staff_action(session, complaint_id, action_in, staff=staff, ctx=ctx)
    except (IPXError, ValueError) as error:
        session.rollback()
        try:
            return _staff_case_page(request, session, staff, complaint_id, error=_as_problem(error), chosen=action,
                                    reason=reason)
        except IPXError as missing:  # no such case
            return problem_page(request, caller, missing)
    return RedirectResponse(f"/staff/complaints/{complaint_id}?{urlencode({'done': action})}", status_code=303)


@router.get("/staff/reviews", response_class=HTMLResponse)
def staff_reviews(
    request: Request, session: DbSession, caller: Visitor, status: str = "open", page: PageOfResults = 1
) -> Response:
    try:
        _require_staff(caller)
    except IPXError as error:
        return problem_page(request, caller, error)
    status = status if status in review.REVIEW_STATUSES else "open"
    flags, total = review.list_reviews(session, status, page=page, page_size=review.REVIEW_PAGE_SIZE)
    return render(request, "staff/reviews.html", caller, items=review.review_views(session, flags),
                  status=status, statuses=review.REVIEW_STATUSES, page=page, total=total,
                  has_next=page * review.REVIEW_PAGE_SIZE < total,
                  notice=_decision_notice(session, request.query_params.get("decided", "")))


def _decision_notice(session: Session, decided: str) -> str | None:
    """What the decision just made on a flag was, from the flag itself (the address names only which flag)."""
    if not decided.isdecimal() or len(decided) > 18:
        return None
    flag = session.get(PriorMatch, int(decided))
    return f"Flag {flag.id} is now {flag.review_status}." if flag is not None else None


@router.post("/staff/reviews/{review_id}", response_class=HTMLResponse, dependencies=[SendsMail])
def staff_review_decision(
    request: Request, review_id: StoredInteger, session: DbSession, caller: Visitor,
    decision: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
) -> Response:
    try:
        staff = _require_staff(caller)
        if decision not in ReviewDecision.__members__ or len(reason.strip()) < 3:
            raise ValueError("choose clear or uphold, and give a reason of at least 3 characters")
        review.decide_review(session, review_id, ReviewDecision(decision), staff=staff, reason=reason.strip())
    except (IPXError, ValueError) as error:
        return problem_page(request, caller, _as_problem(error))
    return RedirectResponse(f"/staff/reviews?{urlencode({'decided': review_id})}", status_code=303)


@router.get("/staff/audit", response_class=HTMLResponse)
def staff_audit(
    request: Request, session: DbSession, caller: Visitor, action: str = "", subject: str = "",
    page: PageOfResults = 1,
) -> Response:
    try:
        _require_staff(caller)
    except IPXError as error:
        return problem_page(request, caller, error)
    query = audit_search.AuditQuery(action=action.strip() or None, subject=subject.strip() or None, page=page)
    events, total = audit_search.search(session, query)
    return render(request, "staff/audit.html", caller, events=events, total=total, action=action, subject=subject,
                  page=page, pages=max(1, -(-total // query.page_size)))

"""The registry's server-rendered pages: sign up, register a work, its public certificate, verify.

Handlers are thin: they call the same services as the JSON API and hand a plain context dict to a
template. Pages work without JavaScript (plain forms, POST-redirect-GET) and answer errors as HTML:
an error page for unknown ids, a redirect to the login page when an account is needed.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from ipx.accounts import service as accounts_service
from ipx.accounts import two_factor
from ipx.accounts.models import STAFF_ROLES, User
from ipx.accounts.schemas import AccountCreate
from ipx.accounts.service import Principal
from ipx.deps import (
    SESSION_COOKIE,
    AppSettings,
    DbSession,
    LoginLimits,
    PageOfResults,
    Registry,
    SendsMail,
    oauth2_scheme,
    optional_caller,
    own_origins,
    require_file,
    sent_from_another_site,
    web_origin,
)
from ipx.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    IPXError,
    NotFound,
    TooManyAttempts,
    Unauthorized,
    described_request_error,
)
from ipx.registry import api as registry_api
from ipx.registry import log, media, previews
from ipx.registry import service as registry_service
from ipx.registry.downloads import file_download
from ipx.registry.models import Work
from ipx.registry.schemas import RegistrationForm
from ipx.routing import IPXRoute, methods_served_at
from ipx.web import certificates
from ipx.web.templating import method_name, templates

CREATOR_ROWS = 3
RECENT_WORKS = 6
MY_WORKS_PAGE_SIZE = 25
REGISTRY_PAGE_SIZE = 24  # whole rows of the grid's 3, 2 or 1 columns
VERIFY_MAX_RESULTS = 20
THUMBNAIL_MAX_AGE_SECONDS = 3600
SHA256_PATTERN = re.compile(r"^[0-9a-fA-F]{64}$")
UUID_PATTERN = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def page_caller(
    request: Request, bearer: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal | None:
    """The logged-in account, or None; a stale session cookie means logged out, not a broken page.

    Kept on request.state so an error page can show the right navigation without another query.
    """
    try:
        caller = optional_caller(request, bearer)
    except Unauthorized:
        caller = None
    request.state.page_caller = caller
    return caller


def track_session(request: Request, session: DbSession) -> None:
    """Remember the request's transaction so an error page rolls it back instead of letting it commit."""
    request.state.page_session = session


def require_page_caller(caller: Annotated[Principal | None, Depends(page_caller)]) -> Principal:
    if caller is None:
        raise Unauthorized("Log in to continue.")
    return caller


Visitor = Annotated[Principal | None, Depends(page_caller)]
Member = Annotated[Principal, Depends(require_page_caller)]


def reject_cross_site_posts(request: Request) -> None:
    """A form another website's page sent is refused in words (deps.sent_from_another_site says why it is checked),
    even when it needs no account."""
    if sent_from_another_site(request):
        raise Forbidden("This form was sent from another website, so IPX refused it. Open the page on IPX and retry.")


# A page holding a secret in its address (a password link, a complainant's case link): never stored by caches, and
# its address never sent on in a Referer ("strict-origin" still lets its forms send the Origin the check needs).
SECRET_PAGE_HEADERS = {"Referrer-Policy": "strict-origin", "Cache-Control": "no-store"}


def private_headers(caller: Principal | None, headers: dict[str, str] | None = None) -> dict[str, str]:
    """A page drawn for a logged-in account is theirs: not kept by shared caches, nor shown again from the
    browser's history after logging out."""
    return {**({"Cache-Control": "no-store"} if caller is not None else {}), **(headers or {})}


def render(
    request: Request, template: str, context: dict[str, Any], caller: Principal | None, status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, template, {**context, "caller": caller}, status_code=status_code,
        headers=private_headers(caller, headers),
    )


def error_page(
    request: Request, status_code: int, title: str, detail: str, headers: dict[str, str] | None = None,
    links: list[tuple[str, str]] | None = None,
) -> HTMLResponse:
    """The one error page; `links` ((text, url), the first the main one) lead back to where the visitor came from
    instead of the home page and the registry search."""
    context = {"status": status_code, "title": title, "detail": detail, "links": links}
    return render(request, "error.html", context, getattr(request.state, "page_caller", None), status_code, headers)


def safe_next(target: str | None, default: str = "/me/works") -> str:
    """Only same-site paths, so the login form cannot bounce people to another website.

    Browsers drop tabs and newlines from URLs and read "\\" as "/", so those could turn "/" into "//host".
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if any(char == "\\" or char.isspace() or not char.isprintable() for char in target):
        return default
    return target


def login_redirect(request: Request) -> RedirectResponse:
    """To the log-in form, then back. A form sent after the session ended to an address that only takes POSTs goes
    back to the page that had the form (its Referer, when that is IPX's): returning to the address would be a 405."""
    if request.method in ("GET", "HEAD") or "GET" in methods_served_at(request):
        here: str | None = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        referer = urlsplit(request.headers.get("referer", ""))
        same_site = web_origin(f"{referer.scheme}://{referer.netloc}") in own_origins(request)
        here = (referer.path or "/") + (f"?{referer.query}" if referer.query else "") if same_site else None
    return RedirectResponse(f"/login?next={quote(here, safe='/')}" if here else "/login", status_code=303)


def _error_response(request: Request, error: Exception) -> Response:
    if isinstance(error, Unauthorized):
        return login_redirect(request)
    if isinstance(error, IPXError):
        return error_page(request, error.status_code, error.title, error.detail, error.headers)
    if isinstance(error, StarletteHTTPException):  # the upload size limit stops a body mid-stream this way
        return error_page(request, error.status_code, "The request was refused", str(error.detail))
    if isinstance(error, RequestValidationError) and any(e["loc"][:1] != ("path",) for e in error.errors()):
        where = "; ".join(described_request_error(e) for e in error.errors())
        return error_page(request, 422, "The form could not be read", f"The request is not valid — {where}.")
    return error_page(request, 404, "Not found", f"There is nothing at {request.url.path}.")  # a malformed id


class PageRoute(IPXRoute):
    """Errors on page routes become HTML: 401 a redirect to log in, others an error page (malformed ids 404).

    The error is caught inside the request's dependency scope, so the transaction is rolled back here:
    otherwise the session dependency would see a normal return and commit.
    """

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except (IPXError, RequestValidationError, StarletteHTTPException) as exc:
                session: Session | None = getattr(request.state, "page_session", None)
                if session is not None:
                    session.rollback()
                return _error_response(request, exc)

        return page_handler


def page_router() -> APIRouter:
    """A router of server-rendered pages, as every domain's are: errors drawn as pages (PageRoute), the caller
    known to the error page, the request's transaction tracked, forms sent from other websites refused."""
    return APIRouter(
        include_in_schema=False,
        route_class=PageRoute,
        dependencies=[Depends(page_caller), Depends(track_session), Depends(reject_cross_site_posts)],
    )


router = page_router()


# --- context builders: plain dicts, so templates stay logic-free ------------------------------------------------


def share_text(share_bps: int) -> str:
    return f"{share_bps / 100:g}%"


def work_view(session: Session, work: Work, public_url: str) -> dict[str, Any]:
    """The public record as the API shows it, plus what a person reads: shares in percent, sizes, links."""
    owner = registry_service.owner_of(session, work)
    view = registry_api.work_read(work, owner.display_name, public_url)
    base = f"/works/{work.id}"
    view.update(
        creators=[{**c, "share": share_text(c["share_bps"])} for c in view["creators"]],
        registered_at=registry_service.rfc3339(work.registered_at),
        registered_by=owner.display_name,
        kind_phrase=certificates.kind_phrase(work.work_type),
        size_human=certificates.human_size(work.size),
        is_image=certificates.has_preview(work.media_type),
        page_url=base,
        registrant_url=f"/works?creator={work.owner_id}",
        bundle_url=f"{base}/evidence.json",
        thumbnail_url=f"{base}/thumbnail",
        certificate_page_url=f"{base}/certificate",
        pdf_url=f"{base}/certificate.pdf",
        api_url=f"/api/v1/works/{work.id}",
    )
    return view


def verification_view(session: Session, work: Work, registry: registry_service.RegistryContext) -> dict[str, Any]:
    report = registry_service.verify_work(session, work, registry)
    return {"ok": report.ok, "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks]}


def certificate_facts(view: dict[str, Any]) -> certificates.CertificateFacts:
    return certificates.CertificateFacts(
        title=view["title"], work_type=view["work_type"],
        creators=[(c["name"], c["share"]) for c in view["creators"]], registered_by=view["registered_by"],
        sha256=view["sha256"], size=view["size"], media_type=view["media_type"],
        registered_at=view["registered_at"], log_index=view["log_index"], key_id=view["key_id"],
        status=view["status"], url=view["certificate_url"],
    )


def field_errors(error: IPXError) -> dict[str, list[str]]:
    """Field name -> sentences, from an error's `errors` list; errors about the whole form go under "form"."""
    by_field: dict[str, list[str]] = {}
    for item in error.extra.get("errors", []):
        loc = [str(part) for part in item["loc"][1:]]
        field = loc[0] if loc else "form"
        message = item["msg"][:1].upper() + item["msg"][1:]
        if field == "creators" and len(loc) >= 3:
            message = f"Row {int(loc[1]) + 1}, {loc[2]}: {item['msg']}"
        by_field.setdefault(field, []).append(message)
    return by_field


def _work_or_404(session: Session, work_id: uuid.UUID) -> Work:
    return registry_service.get_work(session, str(work_id))


# --- home --------------------------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def home_page(request: Request, session: DbSession, settings: AppSettings, caller: Visitor) -> HTMLResponse:
    """What IPX is, what was registered lately, and the state of the public log."""
    works, total = registry_service.search_works(
        session, sha256=None, q=None, owner_id=None, page=1, page_size=RECENT_WORKS
    )
    checkpoint = log.latest_checkpoint(session)
    context = {
        "recent": [work_view(session, w, settings.public_url) for w in works],
        "total_works": total,
        "log_size": log.size(session),
        "checkpoint": {
            "tree_size": checkpoint.tree_size,
            "root_hash": checkpoint.root_hash.hex(),
            "key_id": checkpoint.key_id,
            "published_at": registry_service.rfc3339(checkpoint.published_at),
        },
        "witnessing": settings.witness_policy is not None,
        "witnessed": log.latest_cosigned(session),
    }
    return render(request, "home.html", context, caller)


# --- accounts ----------------------------------------------------------------------------------------------------


def start_session(
    request: Request, response: Response, session: Session, user: User, settings: AppSettings
) -> Response:
    """Log the account in on this browser: a bearer token in an HTTP-only cookie. The browser's previous session
    (another account logged in before, on a shared computer) ends rather than lingering valid behind it."""
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:
        accounts_service.revoke_token(session, previous)
    token, _ = accounts_service.issue_token(session, user, settings.token_ttl_seconds)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=settings.token_ttl_seconds, path="/", httponly=True, samesite="lax",
        secure=settings.secure_cookies,
    )
    return response


@router.get("/signup", response_class=HTMLResponse)
def signup_page(request: Request, caller: Visitor, next: str | None = None) -> Response:
    """The sign-up form (anyone)."""
    if caller is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "accounts/signup.html", {"values": {}, "errors": {}, "next": safe_next(next)}, caller)


@router.post("/signup", response_class=HTMLResponse)
def signup(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    display_name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Create a creator account, log it in and go on (anyone)."""
    values = {"display_name": display_name, "email": email}
    try:
        account = AccountCreate(email=email.strip(), password=password, display_name=display_name)
        user = accounts_service.create_user(
            session, email=account.email, password=account.password, display_name=account.display_name
        )
    except ValidationError as exc:
        errors = field_errors(registry_api.form_errors(exc))
    except Conflict as exc:
        errors = {"email": [exc.detail]}
    except InvalidInput as exc:  # a rule the service checks, said beside the field it names
        errors = {str(e["loc"][-1]): [e["msg"]] for e in exc.extra.get("errors", [])} or {"email": [exc.detail]}
    else:
        return start_session(request, RedirectResponse(safe_next(next), status_code=303), session, user, settings)
    session.rollback()
    context = {"values": values, "errors": errors, "next": safe_next(next)}
    return render(request, "accounts/signup.html", context, None, status_code=422)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, caller: Visitor, next: str | None = None) -> Response:
    """The login form (anyone)."""
    if caller is not None:
        return RedirectResponse(safe_next(next, landing_page(caller.is_staff)), status_code=303)
    context = {"values": {}, "error": None, "next": safe_next(next, "")}  # none given: where the account lands
    return render(request, "accounts/login.html", context, caller)


def landing_page(is_staff: bool) -> str:
    """Where a log-in goes when no page asked for it: staff to the complaint queue, everyone else to their works."""
    return "/staff/complaints" if is_staff else "/me/works"


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    throttle: LoginLimits,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Check the password, set the session cookie and go on (anyone)."""
    try:
        user = accounts_service.authenticate(session, email=email, password=password, throttle=throttle)
    except (Unauthorized, TooManyAttempts) as exc:
        context = {"values": {"email": email}, "error": exc.detail, "next": safe_next(next, "")}
        return render(request, "accounts/login.html", context, None, exc.status_code, exc.headers)
    landing = landing_page(user.role in STAFF_ROLES)
    return session_or_second_step(request, session, user, settings, next=safe_next(next, landing))


def session_or_second_step(
    request: Request, session: Session, user: User, settings: AppSettings, *, next: str, notice: str | None = None
) -> Response:
    """After a right password: logged in and on to `next`, or, with two-step verification on, the form asking for
    the authenticator's code (`notice` says what just happened, a password reset say)."""
    if not two_factor.is_required(session, user):
        return start_session(request, RedirectResponse(next, status_code=303), session, user, settings)
    challenge = two_factor.open_challenge(session, user)
    return _code_page(request, challenge=challenge, next=next, notice=notice)


def _code_page(
    request: Request, *, challenge: str, next: str, notice: str | None = None, error: str | None = None,
    status_code: int = 200, headers: dict[str, str] | None = None,
) -> HTMLResponse:
    context = {"challenge": challenge, "next": next, "notice": notice, "error": error}
    return render(request, "accounts/login_code.html", context, None, status_code,
                  {**SECRET_PAGE_HEADERS, **(headers or {})})


@router.post("/login/code", response_class=HTMLResponse, dependencies=[SendsMail])
def login_code(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    throttle: LoginLimits,
    challenge: Annotated[str, Form(max_length=100)] = "",
    code: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """The log-in's second step: the authenticator's code (or a recovery code), then logged in (anyone whose
    password was right a moment ago)."""
    try:
        user = two_factor.pass_challenge(session, token=challenge, code=code, throttle=throttle)
    except (two_factor.WrongCode, TooManyAttempts) as exc:  # the failure is counted: this transaction commits
        return _code_page(request, challenge=challenge, next=safe_next(next), error=exc.detail,
                          status_code=exc.status_code, headers=exc.headers)
    except two_factor.ChallengeExpired as exc:
        context = {"values": {}, "error": exc.detail, "next": safe_next(next)}
        return render(request, "accounts/login.html", context, None, exc.status_code)
    return start_session(request, RedirectResponse(safe_next(next), status_code=303), session, user, settings)


@router.post("/logout")
def logout(request: Request, session: DbSession) -> RedirectResponse:
    """Revoke the session's token and forget the cookie."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        accounts_service.revoke_token(session, token)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- registering a work ------------------------------------------------------------------------------------------


def _creator_rows(names: list[str], shares: list[str]) -> list[dict[str, str]]:
    """The form's fixed rows as the creators list; a row with neither name nor share is left out."""
    rows = [{"name": n.strip(), "share": s.strip().rstrip("%").strip()} for n, s in zip(names, shares, strict=False)]
    return [row for row in rows if row["name"] or row["share"]]


def _new_work_context(values: dict[str, Any], errors: dict[str, list[str]], **extra: Any) -> dict[str, Any]:
    rows = list(values.get("creators", []))
    rows += [{"name": "", "share": ""}] * (CREATOR_ROWS - len(rows))
    return {
        "values": values, "errors": errors, "creator_rows": rows, "work_types": media.WORK_TYPES, **extra,
    }


@router.get("/works/new", response_class=HTMLResponse)
def new_work_page(request: Request, caller: Member, settings: AppSettings) -> HTMLResponse:
    """The registration form (logged in)."""
    context = _new_work_context({}, {}, max_upload=certificates.human_size(settings.max_upload_bytes))
    return render(request, "registry/new_work.html", context, caller)


@router.post("/works/new", response_class=HTMLResponse)
async def register_work(
    request: Request,
    caller: Member,
    session: DbSession,
    settings: AppSettings,
    registry: Registry,
    file: Annotated[UploadFile | None, File()] = None,
    title: Annotated[str, Form()] = "",
    work_type: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    creator_name: Annotated[list[str] | None, Form()] = None,
    creator_share: Annotated[list[str] | None, Form()] = None,
    year_created: Annotated[str, Form()] = "",
    published: Annotated[str | None, Form()] = None,
    published_where: Annotated[str, Form()] = "",
) -> Response:
    """Register through the same path as POST /api/v1/works, then show the new certificate (logged in)."""
    creators = _creator_rows(creator_name or [], creator_share or [])
    values = {
        "title": title, "work_type": work_type, "description": description, "creators": creators,
        "year_created": year_created, "published": published is not None, "published_where": published_where,
    }
    try:
        form = RegistrationForm(
            title=title, work_type=work_type or None, description=description.strip() or None, creators=creators,
            year_created=year_created.strip() or None, published=published is not None,
            published_where=published_where.strip() or None,
        )
        registration = await registry_api.register_upload(session, caller, settings, registry, file, form)
    except ValidationError as exc:
        error: IPXError = registry_api.form_errors(exc)
        errors = field_errors(error)
        try:  # said together with the form's errors, not after they are mended
            require_file(file)
        except InvalidInput as missing:
            errors["file"] = [missing.detail]
    except IPXError as exc:
        error, errors = exc, {} if isinstance(exc, Conflict) else {"file": [exc.detail]}  # the rest is the file's
    else:
        return RedirectResponse(f"/works/{registration.work.id}?registered=1", status_code=303)
    session.rollback()
    duplicate = error.extra.get("work_id") if isinstance(error, Conflict) else None
    context = _new_work_context(
        values, errors, duplicate=duplicate, summary=error.detail if duplicate else None,
        max_upload=certificates.human_size(settings.max_upload_bytes),
    )
    return render(request, "registry/new_work.html", context, caller, error.status_code, error.headers)


@router.get("/me/works", response_class=HTMLResponse)
def my_works_page(
    request: Request, caller: Member, session: DbSession, settings: AppSettings, page: PageOfResults = 1
) -> HTMLResponse:
    """The caller's registrations, newest first (logged in)."""
    works, total = registry_service.search_works(
        session, sha256=None, q=None, owner_id=caller.id, page=page, page_size=MY_WORKS_PAGE_SIZE
    )
    context = {
        "works": [work_view(session, w, settings.public_url) for w in works], "total": total, "page": page,
        "has_next": page * MY_WORKS_PAGE_SIZE < total,
        "password_changed": request.query_params.get("password") == "changed",
    }
    return render(request, "registry/my_works.html", context, caller)


# --- the public record -------------------------------------------------------------------------------------------


@router.get("/works", response_class=HTMLResponse, response_model=None)
def registry_page(
    request: Request, session: DbSession, settings: AppSettings, caller: Visitor, q: str = "",
    creator: uuid.UUID | None = None, page: PageOfResults = 1,
) -> HTMLResponse | RedirectResponse:
    """Every registration, newest first: searched by title or creator name, or one account's (anyone).

    A work id, certificate link or SHA-256 typed here is a look-up, not a text search: it goes to the verify page,
    which finds and re-checks that registration.
    """
    query = q.strip()[:200]
    if SHA256_PATTERN.match(query) or UUID_PATTERN.search(query):
        return RedirectResponse(f"/verify?{urlencode({'q': query})}", status_code=303)
    registrant = registry_service.registrant_name(session, str(creator)) if creator else None
    if creator and registrant is None:
        raise NotFound("No works are registered by this account.")
    works, total = registry_service.search_works(
        session, sha256=None, q=query or None, owner_id=str(creator) if creator else None, page=page,
        page_size=REGISTRY_PAGE_SIZE,
    )
    filters = {key: value for key, value in (("q", query), ("creator", str(creator or ""))) if value}
    context = {
        "works": [work_view(session, w, settings.public_url) for w in works], "total": total, "page": page,
        "has_next": page * REGISTRY_PAGE_SIZE < total, "q": query, "creator": creator, "registrant": registrant,
        "filters": filters,
    }
    return render(request, "registry/registry.html", context, caller)



@router.get("/works/{work_id}", response_class=HTMLResponse)
def work_page(
    request: Request, work_id: uuid.UUID, session: DbSession, settings: AppSettings, registry: Registry,
    caller: Visitor, registered: bool = False,
) -> HTMLResponse:
    """The public certificate page: the record, its evidence, and a fresh verification (anyone)."""
    work = _work_or_404(session, work_id)
    view = work_view(session, work, settings.public_url)
    is_owner = caller is not None and caller.id == work.owner_id
    prior = registry_service.prior_matches_of(session, work.id) if registered and is_owner else []
    context = {
        "work": view,
        "verification": verification_view(session, work, registry),
        "just_registered": registered and is_owner,
        "own_file": registry_service.stored_file(work) if is_owner else None,
        "prior": [
            {
                "title": m.work.title, "url": f"/works/{m.work.id}", "method": m.method,
                "similarity": f"{m.similarity:.0%}", "registered_at": registry_service.rfc3339(m.work.registered_at),
            }
            for m in prior
        ],
    }
    return render(request, "registry/work.html", context, caller)


@router.get("/works/{work_id}/evidence.json")
def download_evidence(work_id: uuid.UUID, session: DbSession, registry: Registry) -> JSONResponse:
    """The offline evidence bundle of GET /api/v1/works/{id}/evidence, as a file to keep (anyone)."""
    bundle = registry_service.work_evidence(session, _work_or_404(session, work_id), registry.witness_names)
    disposition = f'attachment; filename="ipx-evidence-{work_id}.json"'
    return JSONResponse(bundle, headers={"Content-Disposition": disposition})


@router.get("/works/{work_id}/file")
def download_own_file(
    work_id: uuid.UUID, caller: Member, session: DbSession, registry: Registry
) -> StreamingResponse:
    """The registered file itself, for the account that registered it (and staff)."""
    return file_download(registry.blobs, registry_service.own_file(session, str(work_id), caller))


@router.get("/works/{work_id}/thumbnail")
def work_thumbnail(
    request: Request, work_id: uuid.UUID, session: DbSession, settings: AppSettings, registry: Registry
) -> Response:
    """A small JPEG preview of an image work; the file never changes, so browsers may keep it (anyone)."""
    work = _work_or_404(session, work_id)
    if not certificates.has_preview(work.media_type):
        raise NotFound(f"There is no preview of {work.media_type} files.")
    etag = f'"{work.sha256[:32]}-{previews.THUMBNAIL_SIDE}"'
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={THUMBNAIL_MAX_AGE_SECONDS}"}
    if _held_by_browser(request, headers):
        return Response(status_code=304, headers=headers)
    jpeg = previews.thumbnail(session, work, registry.blobs, max_pixels=settings.max_image_pixels)
    return Response(jpeg, media_type="image/jpeg", headers=headers)


@router.get("/works/{work_id}/certificate", response_class=HTMLResponse)
def certificate_page(
    request: Request, work_id: uuid.UUID, session: DbSession, settings: AppSettings, caller: Visitor
) -> HTMLResponse:
    """A one-page printable certificate with a QR code of the public record (anyone)."""
    view = work_view(session, _work_or_404(session, work_id), settings.public_url)
    context = {
        "work": view, "qr_svg": certificates.qr_svg(view["certificate_url"]), "verify_note": certificates.VERIFY_NOTE,
    }
    return render(request, "registry/certificate.html", context, caller)


CERTIFICATES = certificates.CertificateCache()


@router.get("/works/{work_id}/certificate.pdf")
def certificate_pdf(request: Request, work_id: uuid.UUID, session: DbSession, settings: AppSettings) -> Response:
    """The printable certificate as a PDF, QR code included (anyone). Built once per state of its facts and kept;
    a browser asking again with the ETag gets a 304 (revalidated each time: a dispute changes the status)."""
    view = work_view(session, _work_or_404(session, work_id), settings.public_url)
    digest, pdf = CERTIFICATES.pdf(certificate_facts(view))
    headers = {"ETag": f'"{digest[:32]}"', "Cache-Control": "no-cache",
               "Content-Disposition": f'inline; filename="ipx-certificate-{work_id}.pdf"'}
    if _held_by_browser(request, headers):
        return Response(status_code=304, headers=headers)
    return Response(pdf, media_type="application/pdf", headers=headers)


def _held_by_browser(request: Request, headers: dict[str, str]) -> bool:
    """The browser already holds this version (its If-None-Match names the response's ETag): a 304 will do."""
    return request.headers.get("if-none-match") == headers["ETag"]


# --- public verification -----------------------------------------------------------------------------------------


def _lookup(session: Session, query: str) -> tuple[list[Work], int, str | None]:
    """Works matching a SHA-256 (the earliest registrations first, and how many there are in all) or a work id (also
    inside a pasted certificate URL), or why the query is unusable."""
    if SHA256_PATTERN.match(query):
        works, total = registry_service.search_works(
            session, sha256=query, q=None, owner_id=None, page=1, page_size=VERIFY_MAX_RESULTS, oldest_first=True
        )
        return works, total, None
    found = UUID_PATTERN.search(query)
    if found is None:
        return [], 0, "Enter a work id (like 3f2a…-…) or a SHA-256 (64 hexadecimal characters)."
    work = session.get(Work, found.group(0).lower())
    return ([work] if work is not None else []), int(work is not None), None


@router.get("/verify", response_class=HTMLResponse)
def verify_page(
    request: Request, session: DbSession, settings: AppSettings, registry: Registry, caller: Visitor, q: str = ""
) -> HTMLResponse:
    """Look a registration up by work id or SHA-256 and re-verify it (anyone)."""
    query = q.strip()[:200]
    works, total, problem = _lookup(session, query) if query else ([], 0, None)
    results = [
        {"work": work_view(session, w, settings.public_url), "verification": verification_view(session, w, registry)}
        for w in works
    ]
    context = {
        "q": query, "results": results, "problem": problem, "searched": bool(query) and problem is None,
        "total": total,
    }
    return render(request, "registry/verify.html", context, caller)


def _match_view(session: Session, match: registry_service.SimilarWork, public_url: str) -> dict[str, Any]:
    return {
        "work": work_view(session, match.work, public_url),
        "method": method_name(match.method),
        "distance": f"{match.distance:g}",
        "similarity": f"{match.similarity:.0%}",
        "passages": match.passages or [],
        "region": match.region,
        "registered_region": match.registered_region,
    }


@router.post("/verify", response_class=HTMLResponse)
async def verify_upload_page(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    registry: Registry,
    caller: Visitor,
    file: Annotated[UploadFile | None, File()] = None,
) -> HTMLResponse:
    """Compare an uploaded file with every registered work, side by side (anyone; nothing is stored)."""
    try:
        upload, found = await registry_api.match_uploaded_file(session, settings, registry, file)
    except IPXError as exc:
        session.rollback()
        context = {"q": "", "results": [], "problem": None, "searched": False, "upload_problem": exc.detail}
        return render(request, "registry/verify.html", context, caller, exc.status_code, exc.headers)
    picture = found.detection.picture  # the fingerprints' decoded copy: the preview costs no second decode
    preview = None if picture is None else base64.b64encode(previews.preview_jpeg(picture)).decode()
    query = {
        "filename": upload.filename, "sha256": upload.sha256, "size": certificates.human_size(upload.size),
        "media_type": found.media_type, "methods": found.detection.methods, "note": found.detection.note,
        "preview": preview and f"data:image/jpeg;base64,{preview}",
    }
    matches = [_match_view(session, m, settings.public_url) for m in found.exact + found.similar]
    context = {"q": "", "results": [], "problem": None, "searched": False, "query": query, "matches": matches}
    return render(request, "registry/verify.html", context, caller)

"""The account pages: the account's facts and a new password (logged in); a forgotten password (ask for a link by
email, then choose a new password through it).

Thin like the other page routers (ipx/web/pages.py's PageRoute, cross-site check and session tracking): the
accounts service decides; these pages only say it. The reset page's address holds the link's secret, so it is
never cached and never sent on in a Referer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ipx.accounts import service
from ipx.deps import AppSettings, CallerToken, DbSession, LoginLimits, SendsMail
from ipx.errors import InvalidInput, TooManyAttempts
from ipx.web.pages import (
    SECRET_PAGE_HEADERS,
    Member,
    Visitor,
    page_router,
    render,
    start_session,
)

router = page_router()


@router.get("/forgot-password", response_class=HTMLResponse)
def forgot_password_page(request: Request, caller: Visitor, email: str = "") -> HTMLResponse:
    """Ask for a link to choose a new password (anyone)."""
    return render(request, "accounts/forgot_password.html", {"values": {"email": email}, "error": None}, caller)


@router.post("/forgot-password", response_class=HTMLResponse, dependencies=[SendsMail])
def send_reset_link(
    request: Request, session: DbSession, settings: AppSettings, caller: Visitor,
    email: Annotated[str, Form(max_length=320)] = "",
) -> HTMLResponse:
    """Mail a reset link if the address has an account; the answer is the same either way (anyone)."""
    try:
        service.request_password_reset(session, email=email, ttl_seconds=settings.password_reset_ttl_seconds,
                                       per_day=settings.password_resets_per_day)
    except InvalidInput as exc:
        context = {"values": {"email": email}, "error": exc.detail}
        return render(request, "accounts/forgot_password.html", context, caller, status_code=422)
    context = {"email": email.strip(), "minutes": settings.password_reset_ttl_seconds // 60}
    return render(request, "accounts/reset_link_sent.html", context, caller)


def _reset_page(
    request: Request, caller: Visitor, *, token: str, email: str = "", error: str | None = None,
    link_problem: str | None = None, status_code: int = 200,
) -> HTMLResponse:
    """The new-password form, or (`link_problem`) why the link no longer works and where to ask for another."""
    context = {"token": token, "email": email, "error": error, "link_problem": link_problem}
    return render(request, "accounts/reset_password.html", context, caller, status_code, SECRET_PAGE_HEADERS)


@router.get("/reset-password/{token}", response_class=HTMLResponse)
def reset_password_page(request: Request, token: str, session: DbSession, caller: Visitor) -> HTMLResponse:
    """Choose a new password through a mailed link (anyone holding a link that still works)."""
    try:
        email = service.account_of_reset_link(session, token).email
    except service.ResetLinkInvalid as exc:
        return _reset_page(request, caller, token=token, link_problem=exc.detail, status_code=exc.status_code)
    return _reset_page(request, caller, token=token, email=email)


@router.post("/reset-password/{token}", response_class=HTMLResponse, dependencies=[SendsMail])
def reset_password(
    request: Request, token: str, session: DbSession, settings: AppSettings, throttle: LoginLimits, caller: Visitor,
    password: Annotated[str, Form()] = "",
) -> Response:
    """Set the new password, end every other session of the account, and log in here (link holders)."""
    try:
        user = service.reset_password(session, token=token, new_password=password, throttle=throttle)
    except service.ResetLinkInvalid as exc:
        session.rollback()
        return _reset_page(request, caller, token=token, link_problem=exc.detail, status_code=exc.status_code)
    except InvalidInput as exc:  # too short or too long: the form again, the link still unspent
        session.rollback()
        email = service.account_of_reset_link(session, token).email
        return _reset_page(request, caller, token=token, email=email, error=exc.detail, status_code=422)
    changed = RedirectResponse("/me/works?password=changed", status_code=303)
    return start_session(request, changed, session, user, settings)


# --- the account page -------------------------------------------------------------------------------------------


def _account_page(
    request: Request, session: DbSession, caller: Member, *, errors: dict[str, list[str]] | None = None,
    status_code: int = 200, headers: dict[str, str] | None = None,
) -> HTMLResponse:
    context = {
        "account": service.get_user(session, caller.id), "errors": errors or {},
        "password_changed": request.query_params.get("password") == "changed",
    }
    return render(request, "accounts/account.html", context, caller, status_code, headers)


@router.get("/me/account", response_class=HTMLResponse)
def account_page(request: Request, session: DbSession, caller: Member) -> HTMLResponse:
    """The account's facts, and the form for a new password (logged in)."""
    return _account_page(request, session, caller)


@router.post("/me/account/password", response_class=HTMLResponse, dependencies=[SendsMail])
def change_password(
    request: Request, session: DbSession, caller: Member, token: CallerToken, throttle: LoginLimits,
    current_password: Annotated[str, Form()] = "", new_password: Annotated[str, Form()] = "",
) -> Response:
    """Set a new password after the current one; every other session ends, this one stays (logged in)."""
    try:
        service.change_password(session, account_id=caller.id, current_password=current_password,
                                new_password=new_password, keep_token=token, throttle=throttle)
    except (service.WrongPassword, TooManyAttempts) as exc:
        session.rollback()
        return _account_page(request, session, caller, errors={"current_password": [exc.detail]},
                             status_code=exc.status_code, headers=exc.headers)
    except InvalidInput as exc:
        session.rollback()
        return _account_page(request, session, caller, errors={"new_password": [exc.detail]}, status_code=422)
    return RedirectResponse("/me/account?password=changed", status_code=303)

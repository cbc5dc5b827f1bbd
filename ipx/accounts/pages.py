"""The account pages: the account's facts, a new password and two-step verification (logged in); a forgotten
password (ask for a link by email, then choose a new password through it).

Thin like the other page routers (ipx/web/pages.py's PageRoute, cross-site check and session tracking): the
accounts service decides; these pages only say it. The reset page's address holds the link's secret, so it is
never cached and never sent on in a Referer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ipx.accounts import service, two_factor
from ipx.deps import AppSettings, CallerToken, DbSession, LoginLimits, SendsMail
from ipx.errors import Conflict, InvalidInput, IPXError, TooManyAttempts
from ipx.web.certificates import qr_svg
from ipx.web.pages import (
    SECRET_PAGE_HEADERS,
    Member,
    Visitor,
    page_router,
    render,
    session_or_second_step,
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
    return session_or_second_step(request, session, user, settings, next="/me/works?password=changed",
                                  notice="Your password is changed. Two-step verification stays on.")


# --- the account page -------------------------------------------------------------------------------------------


def _account_page(
    request: Request, session: DbSession, caller: Member, *, errors: dict[str, list[str]] | None = None,
    status_code: int = 200, headers: dict[str, str] | None = None,
) -> HTMLResponse:
    context = {
        "account": service.get_user(session, caller.id), "errors": errors or {},
        "two_factor": two_factor.status(session, caller.id),
        "password_changed": request.query_params.get("password") == "changed",
        "two_factor_off": request.query_params.get("two_factor") == "off",
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
        return _refused(request, session, caller, exc, field="current_password")
    except InvalidInput as exc:
        return _refused(request, session, caller, exc, field="new_password")
    return RedirectResponse("/me/account?password=changed", status_code=303)


# --- two-step verification ----------------------------------------------------------------------------------------


@router.post("/me/account/two-factor", response_class=HTMLResponse)
def begin_two_factor(
    request: Request, session: DbSession, caller: Member, throttle: LoginLimits,
    password: Annotated[str, Form()] = "",
) -> Response:
    """Start setting up an authenticator app, given the password: the answer shows its key, this once (logged in)."""
    try:
        setup = two_factor.begin_setup(session, account_id=caller.id, password=password, throttle=throttle)
    except (service.WrongPassword, TooManyAttempts, Conflict) as exc:
        return _refused(request, session, caller, exc, field="two_factor_password")
    qr = qr_svg(setup.uri, title="IPX's key for your authenticator app")
    context = {"setup": setup, "qr_svg": qr, "minutes": two_factor.SETUP_SECONDS // 60}
    return render(request, "accounts/two_factor_setup.html", context, caller, headers=SECRET_PAGE_HEADERS)


@router.get("/me/account/two-factor")
def two_factor_section(caller: Member) -> Response:
    """The account page's two-step verification section (logged in; the key itself is shown only when set-up begins,
    to whoever gave the password)."""
    return RedirectResponse("/me/account#two-factor", status_code=303)


def _refused(request: Request, session: DbSession, caller: Member, exc: IPXError, *, field: str) -> HTMLResponse:
    """The account page again, this form's refusal said beside `field`; nothing the form did is kept."""
    session.rollback()
    return _account_page(request, session, caller, errors={field: [exc.detail]}, status_code=exc.status_code,
                         headers=exc.headers)


def _recovery_codes_page(request: Request, caller: Member, codes: list[str], *, first: bool) -> HTMLResponse:
    context = {"codes": codes, "first": first, "as_text": "\n".join(codes) + "\n"}
    return render(request, "accounts/recovery_codes.html", context, caller, headers=SECRET_PAGE_HEADERS)


@router.post("/me/account/two-factor/confirm", response_class=HTMLResponse, dependencies=[SendsMail])
def confirm_two_factor(
    request: Request, session: DbSession, caller: Member, token: CallerToken,
    code: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Turn two-step verification on with the app's first code, and show the recovery codes once (logged in)."""
    try:
        codes = two_factor.confirm_setup(session, account_id=caller.id, code=code, keep_token=token)
    except (two_factor.WrongCode, Conflict) as exc:  # Conflict: finished in another tab, expired, or never begun
        return _refused(request, session, caller, exc, field="confirm_code")
    return _recovery_codes_page(request, caller, codes, first=True)


def _both_steps_refused(
    request: Request, session: DbSession, caller: Member, exc: IPXError, *, form: str
) -> HTMLResponse:
    field = f"{form}_code" if isinstance(exc, two_factor.WrongCode) else f"{form}_password"
    return _refused(request, session, caller, exc, field=field)


@router.post("/me/account/two-factor/recovery-codes", response_class=HTMLResponse, dependencies=[SendsMail])
def replace_recovery_codes(
    request: Request, session: DbSession, caller: Member, throttle: LoginLimits,
    password: Annotated[str, Form()] = "", code: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """New recovery codes, given the password and a code; the earlier ones stop working (logged in)."""
    try:
        codes = two_factor.new_recovery_codes(session, account_id=caller.id, password=password, code=code,
                                              throttle=throttle)
    except (service.WrongPassword, two_factor.WrongCode, TooManyAttempts, Conflict) as exc:
        return _both_steps_refused(request, session, caller, exc, form="codes")
    return _recovery_codes_page(request, caller, codes, first=False)


@router.post("/me/account/two-factor/disable", response_class=HTMLResponse, dependencies=[SendsMail])
def disable_two_factor(
    request: Request, session: DbSession, caller: Member, throttle: LoginLimits,
    password: Annotated[str, Form()] = "", code: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Turn two-step verification off, given the password and a code (logged in)."""
    try:
        two_factor.disable(session, account_id=caller.id, password=password, code=code, throttle=throttle)
    except (service.WrongPassword, two_factor.WrongCode, TooManyAttempts, Conflict) as exc:
        return _both_steps_refused(request, session, caller, exc, form="disable")
    return RedirectResponse("/me/account?two_factor=off", status_code=303)

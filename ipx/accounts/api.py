"""Account routes: sign up, exchange a password (and, with two-step verification, a code) for a bearer token, reset
a forgotten password by email, set up two-step verification."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form
from fastapi.security import OAuth2PasswordRequestForm

from ipx.accounts import service, two_factor
from ipx.accounts.schemas import (
    AccountCreate,
    AccountRead,
    BothSteps,
    PasswordChange,
    PasswordConfirmation,
    PasswordResetConfirm,
    PasswordResetRequest,
    PasswordResetSent,
    RecoveryCodesRead,
    TokenRead,
    TwoFactorCode,
    TwoFactorSetupRead,
    TwoFactorStatusRead,
)
from ipx.deps import AppSettings, Caller, CallerToken, DbSession, LoginLimits, NoStore, SendsMail
from ipx.routing import IPXRoute

router = APIRouter(prefix="/auth", tags=["accounts"], route_class=IPXRoute)


@router.post("/register", status_code=201, response_model=AccountRead)
def register_account(account_in: AccountCreate, session: DbSession) -> AccountRead:
    """Create a creator account (anyone)."""
    user = service.create_user(
        session, email=account_in.email, password=account_in.password, display_name=account_in.display_name
    )
    return AccountRead.model_validate(user)


@router.post("/token", response_model=TokenRead, dependencies=[SendsMail, NoStore])
def create_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], session: DbSession, settings: AppSettings,
    throttle: LoginLimits,
    otp: Annotated[str | None, Form(max_length=100, description="With two-step verification on: the "
                                    "authenticator's current code, or an unused recovery code.")] = None,
) -> TokenRead:
    """OAuth2 password flow: username is the email (anyone); 429 after too many failures for the address. An account
    with two-step verification also needs `otp`: without it the answer is 401 saying so."""
    user = service.authenticate(session, email=form.username, password=form.password, throttle=throttle)
    two_factor.check_token_request(session, user, otp, throttle)
    token, row = service.issue_token(session, user, settings.token_ttl_seconds)
    return TokenRead(access_token=token, expires_at=row.expires_at)


@router.get("/me", response_model=AccountRead)
def get_me(caller: Caller, session: DbSession) -> AccountRead:
    """The calling account (any logged-in account)."""
    return AccountRead.model_validate(service.get_user(session, caller.id))


@router.post("/password-reset", status_code=202, response_model=PasswordResetSent, dependencies=[SendsMail])
def request_password_reset(body: PasswordResetRequest, session: DbSession, settings: AppSettings) -> PasswordResetSent:
    """Mail the account at this address a single-use link to choose a new password (anyone).

    The answer is the same whether or not the address has an account; at most a few links a day go to one account.
    """
    service.request_password_reset(session, email=body.email, ttl_seconds=settings.password_reset_ttl_seconds,
                                   per_day=settings.password_resets_per_day)
    minutes = settings.password_reset_ttl_seconds // 60
    return PasswordResetSent(detail=f"If an account uses this address, a link to choose a new password is on its "
                                    f"way there. It works once, within {minutes} minutes.")


@router.post("/password-reset/confirm", response_model=AccountRead, dependencies=[SendsMail])
def confirm_password_reset(body: PasswordResetConfirm, session: DbSession, throttle: LoginLimits) -> AccountRead:
    """Set a new password with the mailed link's token (anyone holding it); every token of the account ends.

    410 when the link was used or has expired.
    """
    user = service.reset_password(session, token=body.token, new_password=body.password, throttle=throttle)
    return AccountRead.model_validate(user)


@router.post("/password", response_model=AccountRead, dependencies=[SendsMail])
def change_password(
    body: PasswordChange, caller: Caller, token: CallerToken, session: DbSession, throttle: LoginLimits
) -> AccountRead:
    """A new password, given the current one (any logged-in account). Every other token of the account ends; the
    one making the call stays. 422 for a wrong current password, 429 after too many."""
    user = service.change_password(session, account_id=caller.id, current_password=body.current_password,
                                   new_password=body.new_password, keep_token=token, throttle=throttle)
    return AccountRead.model_validate(user)


# --- two-step verification ------------------------------------------------------------------------------------------


def _status_read(session: DbSession, account_id: str) -> TwoFactorStatusRead:
    state = two_factor.status(session, account_id)
    return TwoFactorStatusRead(enabled=state.enabled, enabled_at=state.enabled_at, setting_up=state.setting_up,
                               recovery_codes_left=state.recovery_codes_left)


@router.get("/two-factor", response_model=TwoFactorStatusRead)
def get_two_factor(caller: Caller, session: DbSession) -> TwoFactorStatusRead:
    """Whether log-ins take an authenticator's code, and how many recovery codes are unused (any logged-in account)."""
    return _status_read(session, caller.id)


@router.post("/two-factor", status_code=201, response_model=TwoFactorSetupRead, dependencies=[NoStore])
def begin_two_factor(
    body: PasswordConfirmation, caller: Caller, session: DbSession, throttle: LoginLimits
) -> TwoFactorSetupRead:
    """Begin setting up an authenticator app, given the password: its key, to type in or show as a QR code, answered
    this once. Log-ins ask nothing more until `/two-factor/confirm` receives the app's first code, within 15 minutes.
    409 when it is already on."""
    setup = two_factor.begin_setup(session, account_id=caller.id, password=body.password, throttle=throttle)
    return TwoFactorSetupRead(
        secret=setup.secret, otpauth_uri=setup.uri,
        detail="Add this key to an authenticator app, then send the 6-digit code it shows to /two-factor/confirm.",
    )


@router.post("/two-factor/confirm", response_model=RecoveryCodesRead, dependencies=[SendsMail, NoStore])
def confirm_two_factor(
    body: TwoFactorCode, caller: Caller, token: CallerToken, session: DbSession
) -> RecoveryCodesRead:
    """Turn two-step verification on with the app's first code; answers the recovery codes, shown this once. Every
    other token of the account ends (422 for a wrong code, 409 when no set-up waits)."""
    codes = two_factor.confirm_setup(session, account_id=caller.id, code=body.code, keep_token=token)
    return RecoveryCodesRead(recovery_codes=codes)


@router.post("/two-factor/recovery-codes", response_model=RecoveryCodesRead, dependencies=[SendsMail, NoStore])
def replace_recovery_codes(
    body: BothSteps, caller: Caller, session: DbSession, throttle: LoginLimits
) -> RecoveryCodesRead:
    """New recovery codes, given the password and a code; the earlier ones stop working."""
    codes = two_factor.new_recovery_codes(session, account_id=caller.id, password=body.password, code=body.code,
                                          throttle=throttle)
    return RecoveryCodesRead(recovery_codes=codes)


@router.post("/two-factor/disable", response_model=TwoFactorStatusRead, dependencies=[SendsMail])
def disable_two_factor(
    body: BothSteps, caller: Caller, session: DbSession, throttle: LoginLimits
) -> TwoFactorStatusRead:
    """Turn two-step verification off, given the password and a code (or a recovery code)."""
    two_factor.disable(session, account_id=caller.id, password=body.password, code=body.code, throttle=throttle)
    return _status_read(session, caller.id)

"""Account routes: sign up, exchange a password for a bearer token, reset a forgotten password by email."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from ipx.accounts import service
from ipx.accounts.schemas import (
    AccountCreate,
    AccountRead,
    PasswordChange,
    PasswordResetConfirm,
    PasswordResetRequest,
    PasswordResetSent,
    TokenRead,
)
from ipx.deps import AppSettings, Caller, CallerToken, DbSession, LoginLimits, SendsMail
from ipx.routing import IPXRoute

router = APIRouter(prefix="/auth", tags=["accounts"], route_class=IPXRoute)


@router.post("/register", status_code=201, response_model=AccountRead)
def register_account(account_in: AccountCreate, session: DbSession) -> AccountRead:
    """Create a creator account (anyone)."""
    user = service.create_user(
        session, email=account_in.email, password=account_in.password, display_name=account_in.display_name
    )
    return AccountRead.model_validate(user)


@router.post("/token", response_model=TokenRead)
def create_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], session: DbSession, settings: AppSettings,
    throttle: LoginLimits,
) -> TokenRead:
    """OAuth2 password flow: username is the email (anyone); 429 after too many failures for the address."""
    user = service.authenticate(session, email=form.username, password=form.password, throttle=throttle)
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

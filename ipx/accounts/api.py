"""Account routes: sign up and exchange a password for a bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from ipx.accounts import service
from ipx.accounts.schemas import AccountCreate, AccountRead, TokenRead
from ipx.deps import AppSettings, Caller, DbSession, LoginLimits
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

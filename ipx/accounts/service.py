"""Account creation, Argon2id password checks and opaque bearer tokens (no HTTP here)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from email_validator import EmailNotValidError, ValidatedEmail, validate_email
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ipx.accounts.models import AccessToken, Role, User
from ipx.accounts.throttle import LoginThrottle
from ipx.audit import service as audit_service
from ipx.db import utcnow
from ipx.errors import Conflict, InvalidInput, NotFound, Unauthorized

_hasher = PasswordHasher()  # argon2-cffi defaults are Argon2id with RFC 9106 parameters
# Verified against when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a real password")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a detached, immutable view of the account."""

    id: str
    email: str
    display_name: str
    role: Role

    @property
    def is_staff(self) -> bool:
        return self.role in (Role.staff, Role.admin)


def _principal(user: User) -> Principal:
    return Principal(user.id, user.email, user.display_name, Role(user.role))


def canonical_email(address: str) -> str:
    """The one spelling an address is stored and looked up under: email-validator's normal form (NFC; an IDNA
    domain in Unicode), lower-cased. Sign-up normalised through the schema while log-in only lower-cased, so
    "bob@xn--xample-9ua.org" could sign up and never log in, and the CLI could make a second account."""
    try:
        return _validated(address).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput(f"“{address.strip()}” is not an email address: {exc}") from exc


def _validated(address: str) -> ValidatedEmail:
    return validate_email(address.strip(), check_deliverability=False)


def _spellings(address: str) -> tuple[str, set[str]]:
    """The spelling an address is counted under, and every spelling an account of it may be stored under.

    Accounts the CLI made before addresses were checked are stored merely lower-cased: a special-use domain
    (admin@ipx.local) or a punycode one (ops@xn--xample-9ua.org, whose canonical form has the Unicode domain).
    """
    raw = address.strip().lower()
    try:
        checked = _validated(address)
    except EmailNotValidError:
        return raw, {raw}
    canonical = checked.normalized.lower()
    return canonical, {raw, canonical} | ({checked.ascii_email.lower()} if checked.ascii_email else set())


def _account_at(session: Session, address: str) -> User | None:
    """The account of an address however it is spelled."""
    return _account_under(session, _spellings(address)[1])


def _account_under(session: Session, spellings: set[str]) -> User | None:
    """The account stored under any of these spellings (the oldest, should two spellings have made two)."""
    return session.scalars(select(User).where(User.email.in_(spellings)).order_by(User.created_at)).first()


def create_user(
    session: Session, *, email: str, password: str, display_name: str, role: Role = Role.creator
) -> User:
    email = canonical_email(email)
    if len(password) < 10:
        raise InvalidInput("The password must be at least 10 characters long.")
    if not display_name.strip():
        raise InvalidInput("The display name cannot be blank: it is signed into every registration as the creator.")
    if _account_at(session, email) is not None:
        raise Conflict(f"An account with the email {email} already exists.")
    user = User(email=email, display_name=display_name.strip(), password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    audit_service.record(
        session, action="account.created", subject_type="account", subject_id=user.id, actor_id=user.id,
        details={"role": role.value},
    )
    return user


def set_role(session: Session, *, email: str, role: Role) -> User:
    user = _account_at(session, email)
    if user is None:
        raise NotFound(f"No account with the email {email}.")
    user.role = role.value
    audit_service.record(
        session, action="account.role_changed", subject_type="account", subject_id=user.id,
        details={"role": role.value},
    )
    return user


def authenticate(session: Session, *, email: str, password: str, throttle: LoginThrottle | None = None) -> User:
    """The account these credentials open; with `throttle`, refused (429) after too many failures for the address."""
    address, spellings = _spellings(email)  # respelling an address gains no attempts
    if throttle is not None:
        throttle.attempt(address)
    user = _account_under(session, spellings)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerifyMismatchError, InvalidHashError):
        user = None
    if user is None:
        raise Unauthorized("The email or password is not correct.")
    if throttle is not None:
        throttle.succeeded(address)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def _token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def issue_token(session: Session, user: User, ttl_seconds: int) -> tuple[str, AccessToken]:
    token = secrets.token_urlsafe(32)
    row = AccessToken(
        token_hash=_token_digest(token), user_id=user.id, expires_at=utcnow() + timedelta(seconds=ttl_seconds)
    )
    session.add(row)
    return token, row


def principal_for_token(session: Session, token: str) -> Principal:
    row = session.get(AccessToken, _token_digest(token))
    if row is None:
        raise Unauthorized("The access token is not valid. Log in again to get a new one.")
    if row.expires_at <= utcnow():
        raise Unauthorized("The access token has expired. Log in again to get a new one.")
    user = session.get(User, row.user_id)
    if user is None:
        raise Unauthorized("The account for this token no longer exists.")
    return _principal(user)


def revoke_token(session: Session, token: str) -> None:
    session.execute(delete(AccessToken).where(AccessToken.token_hash == _token_digest(token)))


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such account.")
    return user

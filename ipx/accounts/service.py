"""Account creation, Argon2id password checks, opaque bearer tokens and mailed password resets (no HTTP here)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from email_validator import EmailNotValidError, ValidatedEmail, validate_email
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ipx.accounts.models import STAFF_ROLES, AccessToken, LoginChallenge, PasswordReset, Role, User
from ipx.accounts.throttle import LoginThrottle
from ipx.audit import service as audit_service
from ipx.db import utcnow
from ipx.errors import Conflict, InvalidInput, IPXError, NotFound, Unauthorized
from ipx.notifications import service as notifications
from ipx.text import line_breaking_character

MIN_PASSWORD_CHARACTERS, MAX_PASSWORD_CHARACTERS = 10, 200
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
    staff_without_two_factor: bool = False  # a staff account that must, and does not yet, use two-step verification

    @property
    def is_staff(self) -> bool:
        """Whether the caller may act as staff: a staff role, with two-step verification on where that is required
        (IPX_STAFF_TWO_FACTOR_REQUIRED), since staff hide works, refund sales and decide disputes."""
        return self.role in STAFF_ROLES and not self.staff_without_two_factor


STAFF_NEED_TWO_FACTOR = ("Staff accounts here must use two-step verification: turn it on from your account page "
                         "(/me/account), then come back.")


def _principal(user: User, *, staff_need_two_factor: bool = False) -> Principal:
    role = Role(user.role)
    unverified_staff = staff_need_two_factor and role in STAFF_ROLES and not user.two_factor_enabled
    return Principal(user.id, user.email, user.display_name, role, staff_without_two_factor=unverified_staff)


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


def _shaped_like_an_address(text: str) -> bool:
    local, at, domain = text.strip().rpartition("@")
    return bool(local and at and domain) and not any(character.isspace() for character in text.strip())


def _account_at(session: Session, address: str) -> User | None:
    """The account of an address however it is spelled."""
    return _account_under(session, _spellings(address)[1])


def _account_under(session: Session, spellings: set[str], *, lock: bool = False) -> User | None:
    """The account stored under any of these spellings (the oldest, should two spellings have made two).

    `lock`: the row stays locked to the end of the transaction, so a log-in, a reset request and a password reset
    of one account take turns (PostgreSQL; SQLite's transactions take turns anyway).
    """
    query = select(User).where(User.email.in_(spellings)).order_by(User.created_at)
    return session.scalars(query.with_for_update() if lock else query).first()


def create_user(
    session: Session, *, email: str, password: str, display_name: str, role: Role = Role.creator
) -> User:
    email = canonical_email(email)
    password_hash = _new_password_hash(password)
    if not display_name.strip():
        raise InvalidInput("The display name cannot be blank: it is signed into every registration as the creator.")
    if line_breaking_character(display_name) is not None:
        message = ("The display name cannot hold line breaks, tabs or other control characters: it is printed on "
                   "one line in every certificate and signed into the log.")
        raise InvalidInput(message, errors=[{"loc": ["body", "display_name"], "msg": message}])
    if _account_at(session, email) is not None:
        raise Conflict(f"An account with the email {email} already exists.")
    user = User(email=email, display_name=display_name.strip(), password_hash=password_hash, role=role)
    session.add(user)
    session.flush()
    audit_service.record(
        session, action="account.created", subject_type="account", subject_id=user.id, actor_id=user.id,
        details={"role": role.value},
    )
    return user


def _check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARACTERS:
        raise InvalidInput(f"The password must be at least {MIN_PASSWORD_CHARACTERS} characters long.")
    if len(password) > MAX_PASSWORD_CHARACTERS:
        raise InvalidInput(f"The password must be at most {MAX_PASSWORD_CHARACTERS} characters long.")


def _new_password_hash(password: str) -> str:
    _check_new_password(password)
    return _hasher.hash(password)


def find_account(session: Session, email: str) -> User:
    """The account of an address however it is spelled (for staff's tools), or NotFound."""
    user = _account_at(session, email)
    if user is None:
        raise NotFound(f"No account with the email {email}.")
    return user


def set_role(session: Session, *, email: str, role: Role) -> User:
    user = find_account(session, email)
    user.role = role.value
    audit_service.record(
        session, action="account.role_changed", subject_type="account", subject_id=user.id,
        details={"role": role.value},
    )
    return user


def password_correct(
    stored_hash: str | None, password: str, address: str, throttle: LoginThrottle | None
) -> bool:
    """Argon2's verdict, counted against the log-in throttle: the attempt counted before the check (429 when there
    were too many), the count cleared by a success. No account (`stored_hash` None) costs as long and is never
    correct."""
    if throttle is not None:
        throttle.attempt(address)
    try:
        _hasher.verify(stored_hash or _DUMMY_HASH, password)
    except (VerifyMismatchError, InvalidHashError):
        return False
    if stored_hash is None:
        return False
    if throttle is not None:
        throttle.succeeded(address)
    return True


def authenticate(session: Session, *, email: str, password: str, throttle: LoginThrottle | None = None) -> User:
    """The account these credentials open; with `throttle`, refused (429) after too many failures for the address."""
    address, spellings = _spellings(email)  # respelling an address gains no attempts
    # locked: a password reset committing between this check and the new token's insert would miss that token
    user = _account_under(session, spellings, lock=True)
    correct = password_correct(user.password_hash if user else None, password, address, throttle)
    if user is None or not correct:
        raise Unauthorized("The email or password is not correct.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def issue_token(session: Session, user: User, ttl_seconds: int) -> tuple[str, AccessToken]:
    token = secrets.token_urlsafe(32)
    row = AccessToken(
        token_hash=token_digest(token), user_id=user.id, expires_at=utcnow() + timedelta(seconds=ttl_seconds)
    )
    session.add(row)
    return token, row


def principal_for_token(session: Session, token: str, *, staff_need_two_factor: bool = False) -> Principal:
    row = session.get(AccessToken, token_digest(token))
    if row is None:
        raise Unauthorized("The access token is not valid. Log in again to get a new one.")
    if row.expires_at <= utcnow():
        raise Unauthorized("The access token has expired. Log in again to get a new one.")
    user = session.get(User, row.user_id)
    if user is None:
        raise Unauthorized("The account for this token no longer exists.")
    return _principal(user, staff_need_two_factor=staff_need_two_factor)


def end_sessions(session: Session, user_id: str, *, keep_token: str | None = None) -> None:
    """Every bearer token and session cookie of the account stops working, except `keep_token` (the caller's)."""
    tokens = delete(AccessToken).where(AccessToken.user_id == user_id)
    if keep_token is not None:
        tokens = tokens.where(AccessToken.token_hash != token_digest(keep_token))
    session.execute(tokens)


def end_log_ins_in_progress(session: Session, user_id: str) -> None:
    """Log-ins waiting for their code end: the password they passed, or the second step they would pass, changed."""
    session.execute(delete(LoginChallenge).where(LoginChallenge.user_id == user_id))


def throttle_address(email: str) -> str:
    """The spelling of an address the log-in throttle counts it under."""
    return _spellings(email)[0]


def revoke_token(session: Session, token: str) -> None:
    session.execute(delete(AccessToken).where(AccessToken.token_hash == token_digest(token)))


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such account.")
    return user


# --- password resets --------------------------------------------------------------------------------------------


class WrongPassword(IPXError):
    status_code = 422
    title = "Wrong password"


class ResetLinkInvalid(IPXError):
    status_code = 410
    title = "Link no longer valid"


RESET_MAIL = """Someone, we hope you, asked to choose a new password for the IPX account {email}.

Choose it here. The link works once, within the next {minutes} minutes:

{site}/reset-password/{token}

If you did not ask for this, ignore this message: your password stays as it is.
"""


def request_password_reset(session: Session, *, email: str, ttl_seconds: int, per_day: int) -> None:
    """Mail the account at this address a single-use link to choose a new password.

    Returns the same whether or not the address has an account, so the form tells nobody who is registered; and
    sends one account at most `per_day` links a day, so it cannot be used to flood someone's mailbox.
    Raises InvalidInput only for text that is neither an email address nor an account's stored spelling (accounts
    the CLI made under special-use domains, like admin@ipx.local, can reset too).
    """
    user = _account_under(session, _spellings(email)[1], lock=True)  # locked: parallel requests count in turn
    if user is None:
        if not _shaped_like_an_address(email):
            canonical_email(email)  # says what is wrong with it
        # anything shaped like an address gets the same answer as an account's, special-use domains included: an
        # "is not an email address" for admin@ipx.local alone would tell that an account exists there
        return
    sent_today = session.scalar(select(func.count()).where(
        PasswordReset.user_id == user.id, PasswordReset.created_at > utcnow() - timedelta(days=1)
    ))
    if (sent_today or 0) >= per_day:
        return
    token = secrets.token_urlsafe(32)
    session.add(PasswordReset(
        token_hash=token_digest(token), user_id=user.id, expires_at=utcnow() + timedelta(seconds=ttl_seconds)
    ))
    notifications.enqueue(
        session, kind="password_reset", to_email=user.email, subject="Choose a new password for IPX",
        body=RESET_MAIL.format(email=user.email, minutes=ttl_seconds // 60, site=notifications.SITE,
                               token=notifications.SECRET),
        subject_type="account", subject_id=user.id, secret=token,
    )
    audit_service.record(session, action="account.password_reset_requested", subject_type="account",
                         subject_id=user.id)


def _live_reset(session: Session, token: str) -> PasswordReset:
    reset = session.get(PasswordReset, token_digest(token))
    if reset is None or reset.used_at is not None or reset.expires_at <= utcnow():
        raise ResetLinkInvalid(
            "This password link no longer works: it was used already, or it is older than the time it was good "
            "for. Ask for a new one."
        )
    return reset


def account_of_reset_link(session: Session, token: str) -> User:
    """The account a reset link is for, while the link still works (ResetLinkInvalid once it does not)."""
    return get_user(session, _live_reset(session, token).user_id)


PASSWORD_CHANGED_MAIL = """The password of your IPX account {email} was changed just now, and every browser and app
logged in to it with the old one was logged out.

If that was you, there is nothing to do. If it was not, choose a new password at once:

{site}/forgot-password
"""


def _set_password(session: Session, user: User, new_password: str, *, keep_token: str | None = None) -> None:
    """The new password, and its consequences: every other session and every pending reset link of the account end,
    and the account's address hears of it (someone else may have done it)."""
    user.password_hash = _new_password_hash(new_password)
    now = utcnow()
    session.execute(update(PasswordReset).where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
                    .values(used_at=now))
    end_sessions(session, user.id, keep_token=keep_token)
    end_log_ins_in_progress(session, user.id)
    notifications.enqueue(
        session, kind="password_changed", to_email=user.email, subject="Your IPX password was changed",
        body=PASSWORD_CHANGED_MAIL.format(email=user.email, site=notifications.SITE),
        subject_type="account", subject_id=user.id,
    )


def change_password(
    session: Session, *, account_id: str, current_password: str, new_password: str, keep_token: str | None,
    throttle: LoginThrottle | None = None,
) -> User:
    """A logged-in account's new password. It must give its current one, so a session left open on a shared
    computer cannot lock its owner out; guesses count against the log-in throttle. The session making the change
    (`keep_token`) stays logged in."""
    user = get_user(session, account_id)
    session.refresh(user, with_for_update=True)  # the account first, as log-ins and resets lock it
    if not password_correct(user.password_hash, current_password, throttle_address(user.email), throttle):
        raise WrongPassword("The current password is not correct.")
    _set_password(session, user, new_password, keep_token=keep_token)
    audit_service.record(session, action="account.password_changed", subject_type="account", subject_id=user.id,
                         actor_id=user.id)
    return user


def reset_password(
    session: Session, *, token: str, new_password: str, throttle: LoginThrottle | None = None
) -> User:
    """Set a new password through a mailed link, which is then spent.

    Every session and every other reset link of the account ends with it: whoever knew the old password is
    logged out. The log-in throttle's count for the address is cleared, as a successful log-in clears it.
    """
    user = account_of_reset_link(session, token)
    session.refresh(user, with_for_update=True)  # first the account, as log-in and reset requests lock it
    _check_new_password(new_password)  # refused before the link is spent, so the form can be sent again
    now = utcnow()
    spent = session.execute(  # one statement, so two submissions of one link cannot both set a password
        update(PasswordReset)
        .where(PasswordReset.token_hash == token_digest(token), PasswordReset.used_at.is_(None),
               PasswordReset.expires_at > now)
        .values(used_at=now)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise ResetLinkInvalid("This password link was used a moment ago. Ask for a new one if you need it.")
    _set_password(session, user, new_password)
    if throttle is not None:
        throttle.succeeded(throttle_address(user.email))
    audit_service.record(session, action="account.password_reset", subject_type="account", subject_id=user.id,
                         actor_id=user.id)
    return user

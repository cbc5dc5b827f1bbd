"""Two-step verification: an authenticator app's code (TOTP) asked after the password, recovery codes for a lost
phone, and the log-in that waits between the two steps (no HTTP here).

A stolen or guessed password alone then opens nothing: no registration in the owner's name, no offer withdrawn, no
counter-notice filed. As on PyPI and GitHub, it is the account holder's choice, set up from the account page or
the API, and a password reset does not switch it off (whoever reads the mailbox still needs the phone).

Every step that checks a secret locks the account's row first, as log-ins and password resets do, so a code
accepted once is refused to a second request racing it. Guessed codes count against the log-in throttle under
their own key: a right password clears the password count, and must not clear the count of wrong codes.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ipx.accounts import totp
from ipx.accounts.models import LoginChallenge, RecoveryCode, TwoFactor, User
from ipx.accounts.service import (
    WrongPassword,
    end_log_ins_in_progress,
    end_sessions,
    find_account,
    get_user,
    password_correct,
    throttle_address,
    token_digest,
)
from ipx.accounts.throttle import LoginThrottle
from ipx.audit import service as audit_service
from ipx.db import utcnow
from ipx.errors import Conflict, IPXError, Unauthorized
from ipx.notifications import service as notifications

ISSUER = "IPX"
CHALLENGE_SECONDS = 300  # to fetch the phone and type the code
CODE_THROTTLE_ADVICE = "Then type the code your authenticator app shows at that moment, or an unused recovery code."
CHALLENGE_FAILURES = 5  # wrong codes before the password must be given again
SETUP_SECONDS = 900  # a set-up not confirmed by then is void: its key was shown once, to whoever gave the password
_clock = time.time  # the authenticator's clock; tests move it instead of waiting 30 seconds per code


class WrongCode(IPXError):
    status_code = 422
    title = "Wrong code"


class SecondStepRequired(Unauthorized):
    """The password was right; the account also asks for its authenticator's code."""

    title = "Two-step verification required"


class ChallengeExpired(IPXError):
    status_code = 410
    title = "Log-in expired"


@dataclass(frozen=True)
class Setup:
    """What an authenticator app needs to start showing the account's codes."""

    secret: str  # base32, grouped, for typing in
    uri: str  # otpauth://, for the QR code


@dataclass(frozen=True)
class Status:
    enabled_at: datetime | None
    recovery_codes_left: int
    setting_up: bool

    @property
    def enabled(self) -> bool:
        return self.enabled_at is not None


def _locked_account(session: Session, account_id: str) -> User:
    user = get_user(session, account_id)
    session.refresh(user, with_for_update=True)  # the account first, as log-ins and password resets lock it
    return user


def _enabled(session: Session, user_id: str) -> TwoFactor | None:
    row = session.get(TwoFactor, user_id)
    return row if row is not None and row.enabled_at is not None else None


def is_required(session: Session, user: User) -> bool:
    """Whether logging in to this account takes a code after the password."""
    return _enabled(session, user.id) is not None


def status(session: Session, account_id: str) -> Status:
    row = session.get(TwoFactor, account_id)
    enabled_at = row.enabled_at if row is not None else None
    setting_up = row is not None and not enabled_at and not _setup_expired(row)
    return Status(enabled_at=enabled_at, recovery_codes_left=_recovery_codes_left(session, account_id),
                  setting_up=setting_up)


def _recovery_codes_left(session: Session, user_id: str) -> int:
    unused = select(func.count()).where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    return session.scalar(unused) or 0


def _setup_expired(row: TwoFactor) -> bool:
    return row.created_at <= utcnow() - timedelta(seconds=SETUP_SECONDS)


def _setup_of(user: User, secret: bytes) -> Setup:
    return Setup(totp.base32_secret(secret), totp.provisioning_uri(secret, account=user.email, issuer=ISSUER))


def begin_setup(session: Session, *, account_id: str, password: str, throttle: LoginThrottle | None = None) -> Setup:
    """A new authenticator secret for the account, not yet asked at log-in: `confirm_setup` turns it on once the app
    shows a right code, within SETUP_SECONDS. The key is returned here only, to the caller who gave the password: a
    stolen session alone can neither read it nor tie the account to a stranger's phone."""
    user = _locked_account(session, account_id)
    if not password_correct(user.password_hash, password, throttle_address(user.email), throttle):
        raise WrongPassword("The password is not correct.")
    row = session.get(TwoFactor, user.id)
    if row is not None and row.enabled_at is not None:
        raise Conflict("Two-step verification is already on for this account. Turn it off first to move it to "
                       "another app.")
    secret = totp.new_secret()
    if row is None:
        session.add(TwoFactor(user_id=user.id, secret=secret))
    else:  # a set-up begun before and never finished: its secret is forgotten
        row.secret, row.created_at = secret, utcnow()
    return _setup_of(user, secret)


ENABLED_MAIL = """Two-step verification is now on for your IPX account {email}: logging in takes the password and then
the 6-digit code of your authenticator app (or one of your recovery codes). Every other browser and app logged in to
the account was logged out.

If you did not do this, choose a new password at once ({site}/forgot-password) and write to IPX's staff.
"""


def confirm_setup(session: Session, *, account_id: str, code: str, keep_token: str | None = None) -> list[str]:
    """Turn two-step verification on with the first code the app shows; returns the recovery codes, which exist
    nowhere else from then on (only their hashes are kept). Every other session of the account ends: none of them
    passed the second step."""
    user = _locked_account(session, account_id)
    row = session.get(TwoFactor, user.id)
    if row is None or row.enabled_at is not None or _setup_expired(row):
        raise Conflict(f"No set-up of two-step verification is waiting for a code (one lasts {SETUP_SECONDS // 60} "
                       "minutes): start it again from your account, with your password.")
    step = totp.matching_step(row.secret, code, _clock())
    if step is None:
        raise WrongCode("That is not the code the app shows for this key. Type the 6 digits it shows now; if it "
                        "still fails, check that the phone's clock is set automatically.")
    row.enabled_at, row.last_step = utcnow(), step
    codes = _replace_recovery_codes(session, user.id)
    end_sessions(session, user.id, keep_token=keep_token)
    end_log_ins_in_progress(session, user.id)
    _tell(session, user, "two_factor_enabled", "Two-step verification is on for your IPX account", ENABLED_MAIL)
    audit_service.record(session, action="account.two_factor_enabled", subject_type="account", subject_id=user.id,
                         actor_id=user.id)
    return codes


def _replace_recovery_codes(session: Session, user_id: str) -> list[str]:
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = totp.new_recovery_codes()
    session.add_all(RecoveryCode(code_hash=totp.recovery_code_digest(code), user_id=user_id) for code in codes)
    return codes


NEW_CODES_MAIL = """New recovery codes were made for your IPX account {email}; the earlier ones no longer work.

If you did not do this, choose a new password at once ({site}/forgot-password) and make new recovery codes again.
"""


def new_recovery_codes(
    session: Session, *, account_id: str, password: str, code: str, throttle: LoginThrottle | None = None
) -> list[str]:
    """A new set of recovery codes, given the password and a code (the app's, or an unused recovery code): both
    steps, as for turning it off, since a recovery code turns it off. The earlier codes stop working."""
    user = _locked_account(session, account_id)
    if _enabled(session, user.id) is None:
        raise Conflict("Two-step verification is off for this account, so it has no recovery codes.")
    _check_both_steps(session, user, password, code, throttle)
    codes = _replace_recovery_codes(session, user.id)
    _tell(session, user, "recovery_codes_replaced", "New recovery codes for your IPX account", NEW_CODES_MAIL)
    audit_service.record(session, action="account.recovery_codes_replaced", subject_type="account",
                         subject_id=user.id, actor_id=user.id)
    return codes


def _check_both_steps(session: Session, user: User, password: str, code: str, throttle: LoginThrottle | None) -> None:
    if not password_correct(user.password_hash, password, throttle_address(user.email), throttle):
        raise WrongPassword("The password is not correct.")
    if not second_step_passed(session, user, code, throttle, tell=False):
        raise WrongCode("The code is not correct: type the 6 digits your authenticator app shows now, or one of "
                        "your unused recovery codes.")


DISABLED_MAIL = """Two-step verification was turned off for your IPX account {email}: logging in now takes the password
alone.

If you did not do this, choose a new password at once ({site}/forgot-password) and turn it on again.
"""


def disable(
    session: Session, *, account_id: str, password: str, code: str, throttle: LoginThrottle | None = None
) -> None:
    """Turn two-step verification off, given the password and a code (or a recovery code): both steps, so neither a
    stolen session nor a stolen password alone can remove it."""
    user = _locked_account(session, account_id)
    if _enabled(session, user.id) is None:
        raise Conflict("Two-step verification is already off for this account.")
    _check_both_steps(session, user, password, code, throttle)
    _remove(session, user)
    audit_service.record(session, action="account.two_factor_disabled", subject_type="account", subject_id=user.id,
                         actor_id=user.id)


def _remove(session: Session, user: User) -> None:
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    session.execute(delete(TwoFactor).where(TwoFactor.user_id == user.id))
    end_log_ins_in_progress(session, user.id)
    _tell(session, user, "two_factor_disabled", "Two-step verification is off for your IPX account", DISABLED_MAIL)


def remove_for_support(session: Session, *, email: str) -> User:
    """Staff's last resort (`ipx users two-factor-off`) for a holder who lost both the phone and the recovery codes,
    once they have proved who they are some other way; the address hears of it. A set-up never finished asks nothing
    at log-in: there is nothing to turn off."""
    user = _locked_account(session, find_account(session, email).id)
    if _enabled(session, user.id) is None:
        raise Conflict(f"Two-step verification is not on for {user.email}: logging in takes the password alone.")
    _remove(session, user)
    audit_service.record(session, action="account.two_factor_removed", subject_type="account", subject_id=user.id)
    return user


RECOVERY_USED_MAIL = """One of the recovery codes of your IPX account {email} was used just now; it works no more.
{left}

If that was not you, someone has your password and a recovery code: choose a new password at once
({site}/forgot-password), then make new recovery codes on your account page.
"""


def second_step_passed(
    session: Session, user: User, code: str, throttle: LoginThrottle | None, *, tell: bool = True
) -> bool:
    """Whether `code` is the authenticator's current code, not used before, or an unused recovery code (then spent,
    and with `tell` the address hears of it).

    The caller holds the account's row lock. Counted against the throttle under the account's own second-step key,
    which only a right code clears: no address typed at the log-in form can be spelled like it (addresses are
    counted lower-cased), so nobody can use up an account's code attempts by failing to log in as something else.
    """
    row = _enabled(session, user.id)
    if row is None:
        return False
    key = f"Second step of account {user.id}"
    if throttle is not None:
        throttle.attempt(key, what="wrong codes for this account", advice=CODE_THROTTLE_ADVICE)
    step = totp.matching_step(row.secret, code, _clock(), after_step=row.last_step)
    if step is not None:
        row.last_step = step
    elif not _spend_recovery_code(session, user, code, tell=tell):
        return False
    if throttle is not None:
        throttle.succeeded(key)
    return True


def _spend_recovery_code(session: Session, user: User, code: str, *, tell: bool) -> bool:
    spent = session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == totp.recovery_code_digest(code),
               RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        return False
    left = _recovery_codes_left(session, user.id)
    if tell:
        left_text = {0: "No unused recovery code is left: make new ones on your account page before you need one.",
                     1: "1 unused recovery code is left."}.get(left, f"{left} unused recovery codes are left.")
        _tell(session, user, "recovery_code_used", "A recovery code was used for your IPX account",
              RECOVERY_USED_MAIL, left=left_text)
    audit_service.record(session, action="account.recovery_code_used", subject_type="account", subject_id=user.id,
                         actor_id=user.id, details={"left": left})
    return True


def _tell(session: Session, user: User, kind: str, subject: str, body: str, **facts: str) -> None:
    notifications.enqueue(
        session, kind=kind, to_email=user.email, subject=subject,
        body=body.format(email=user.email, site=notifications.SITE, **facts), subject_type="account",
        subject_id=user.id,
    )


# --- the log-in's second step -------------------------------------------------------------------------------------


def check_token_request(session: Session, user: User, code: str | None, throttle: LoginThrottle | None) -> None:
    """For an API token request whose password was right: nothing when the account asks no code, else the code."""
    if not is_required(session, user):
        return
    if not code:
        raise SecondStepRequired(
            "This account uses two-step verification: send the 6-digit code of its authenticator app (or one of its "
            "recovery codes) as the form field “otp”, with the email and password."
        )
    if not second_step_passed(session, user, code, throttle):
        raise Unauthorized("The email, password or code is not correct.")


def open_challenge(session: Session, user: User) -> str:
    """A log-in waiting for its second step; the returned secret names it to the form that asks for the code."""
    session.execute(delete(LoginChallenge).where(LoginChallenge.user_id == user.id,
                                                 LoginChallenge.expires_at <= utcnow()))
    token = secrets.token_urlsafe(32)
    session.add(LoginChallenge(
        token_hash=token_digest(token), user_id=user.id, expires_at=utcnow() + timedelta(seconds=CHALLENGE_SECONDS)
    ))
    return token


def _live_challenge(session: Session, token: str) -> LoginChallenge:
    challenge = session.get(LoginChallenge, token_digest(token), populate_existing=True)
    if challenge is None or challenge.expires_at <= utcnow() or challenge.failures >= CHALLENGE_FAILURES:
        raise ChallengeExpired(
            f"This log-in is over: the code must come within {CHALLENGE_SECONDS // 60} minutes of the password, and "
            f"after {CHALLENGE_FAILURES} wrong codes the password is asked again. Log in again."
        )
    return challenge


def pass_challenge(session: Session, *, token: str, code: str, throttle: LoginThrottle | None = None) -> User:
    """The account whose log-in this code completes; the challenge is spent. A wrong code is counted on the challenge
    (the caller commits it) and raises WrongCode; ChallengeExpired once the log-in is over."""
    user = _locked_account(session, _live_challenge(session, token).user_id)
    challenge = _live_challenge(session, token)  # again under the lock: a parallel right code may have spent it
    if not second_step_passed(session, user, code, throttle):
        challenge.failures += 1
        left = CHALLENGE_FAILURES - challenge.failures
        if not left:
            raise ChallengeExpired(f"{CHALLENGE_FAILURES} wrong codes: log in again, with the password first.")
        raise WrongCode("The code is not correct: type the 6 digits your authenticator app shows now, or one of your "
                        f"recovery codes. {left} more tr{'y' if left == 1 else 'ies'} before the password is asked "
                        "again.")
    session.delete(challenge)
    return user

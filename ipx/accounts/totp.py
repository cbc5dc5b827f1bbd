"""Time-based one-time passwords (RFC 6238) and recovery codes: pure functions, no database, no HTTP.

The parameters are the ones every authenticator app assumes when a QR code leaves them out: HMAC-SHA1, 6 digits,
30-second steps. HOTP itself (RFC 4226) comes from `cryptography`; what lives here is the part an account needs
around it: which step a typed code belongs to (one step of clock drift either way, as RFC 6238 section 6
recommends), so a code once accepted can be refused the second time, and the otpauth URI the QR code carries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.hotp import HOTP

SECRET_BYTES = 20  # RFC 4226 section 4: 160 bits, the length of SHA-1's output
DIGITS = 6
STEP_SECONDS = 30
DRIFT_STEPS = 1  # a code from the step before or after still counts: phones' clocks and slow typing
RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_BYTES = 10  # 80 bits: too many to guess, even offline against a leaked SHA-256 of the code
_RECOVERY_GROUP = 4


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def step_at(unix_time: float) -> int:
    """The RFC 6238 time step T of a moment: whole 30-second periods since the Unix epoch."""
    return int(unix_time // STEP_SECONDS)


def code_at(secret: bytes, step: int, digits: int = DIGITS) -> str:
    """The code an authenticator shows during `step`."""
    return HOTP(secret, digits, SHA1(), enforce_key_length=False).generate(step).decode()


def matching_step(secret: bytes, code: str, unix_time: float, *, after_step: int | None = None) -> int | None:
    """The time step whose code `code` is, within DRIFT_STEPS of `unix_time`; None when it is none of them.

    Steps at or before `after_step` (the last one accepted) are not tried: a code works once, so one seen over a
    shoulder or in a proxy's log is worth nothing afterwards. Spaces typed in the code (apps show "123 456") are
    ignored.
    """
    typed = "".join(code.split())
    if len(typed) != DIGITS or not typed.isascii() or not typed.isdigit():
        return None
    now = step_at(unix_time)
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        if (after_step is None or step > after_step) and hmac.compare_digest(code_at(secret, step), typed):
            return step
    return None


def base32_secret(secret: bytes) -> str:
    """The secret as authenticator apps take it typed in: base32 without padding, in groups of four."""
    text = base64.b32encode(secret).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def provisioning_uri(secret: bytes, *, account: str, issuer: str) -> str:
    """The otpauth:// URI of Google Authenticator's key-URI format, which every authenticator app reads from a QR
    code: the label names the issuer and the account, so the app lists the code under both."""
    label = quote(f"{issuer}:{account}", safe="@:")
    query = urlencode({
        "secret": base64.b32encode(secret).decode().rstrip("="), "issuer": issuer, "algorithm": "SHA1",
        "digits": DIGITS, "period": STEP_SECONDS,
    })
    return f"otpauth://totp/{label}?{query}"


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Single-use codes for when the authenticator is lost: lower-case base32 in groups of four, easy to copy out."""
    codes = []
    for _ in range(count):
        text = base64.b32encode(secrets.token_bytes(RECOVERY_CODE_BYTES)).decode().lower()
        codes.append("-".join(text[i : i + _RECOVERY_GROUP] for i in range(0, len(text), _RECOVERY_GROUP)))
    return codes


def recovery_code_digest(code: str) -> bytes:
    """What is stored of a recovery code: SHA-256 of it without spaces, hyphens or case, as it may be typed."""
    normalized = "".join(character for character in code.lower() if character.isalnum())
    return hashlib.sha256(normalized.encode()).digest()

"""TOTP and recovery codes against the specifications' own test vectors (RFC 4226 appendix D, RFC 6238 appendix B)."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from ipx.accounts import totp

RFC_SECRET = b"12345678901234567890"  # the SHA-1 secret of both RFCs' appendices

# RFC 4226 appendix D: HOTP values for counters 0..9, 6 digits
RFC4226_HOTP = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]

# RFC 6238 appendix B, SHA-1 rows: (Unix time, 8-digit TOTP)
RFC6238_SHA1 = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("counter", "expected"), list(enumerate(RFC4226_HOTP)))
def test_codes_are_rfc4226_hotp_of_the_step(counter: int, expected: str) -> None:
    assert totp.code_at(RFC_SECRET, counter) == expected


@pytest.mark.parametrize(("unix_time", "expected"), RFC6238_SHA1)
def test_codes_are_rfc6238_totp(unix_time: int, expected: str) -> None:
    assert totp.code_at(RFC_SECRET, totp.step_at(unix_time), digits=8) == expected
    # six digits are the same number modulo 10^6, which is what every authenticator app shows
    assert totp.matching_step(RFC_SECRET, expected[-6:], unix_time) == totp.step_at(unix_time)


def test_a_code_counts_one_step_either_side_and_never_twice() -> None:
    now = 1_700_000_015.0
    step = totp.step_at(now)
    for drift in (-1, 0, 1):
        assert totp.matching_step(RFC_SECRET, totp.code_at(RFC_SECRET, step + drift), now) == step + drift
    for drift in (-2, 2):
        assert totp.matching_step(RFC_SECRET, totp.code_at(RFC_SECRET, step + drift), now) is None
    current = totp.code_at(RFC_SECRET, step)
    assert totp.matching_step(RFC_SECRET, current, now, after_step=step) is None  # used once: refused
    assert totp.matching_step(RFC_SECRET, current, now, after_step=step - 1) == step
    assert totp.matching_step(RFC_SECRET, totp.code_at(RFC_SECRET, step - 1), now, after_step=step) is None


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", "12345\x00"])
def test_anything_but_six_ascii_digits_matches_nothing(typed: str) -> None:
    assert totp.matching_step(RFC_SECRET, typed, 59) is None


def test_spaces_in_a_typed_code_are_ignored() -> None:
    code = totp.code_at(RFC_SECRET, totp.step_at(59))
    assert totp.matching_step(RFC_SECRET, f" {code[:3]} {code[3:]} ", 59) == totp.step_at(59)


def test_the_qr_code_uri_and_typed_key_carry_the_secret() -> None:
    uri = totp.provisioning_uri(RFC_SECRET, account="ana+art@example.org", issuer="IPX")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc, parts.path) == ("otpauth", "totp", "/IPX:ana%2Bart@example.org")
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert query == {"secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "issuer": "IPX", "algorithm": "SHA1",
                     "digits": "6", "period": "30"}
    typed = totp.base32_secret(RFC_SECRET)
    assert typed == "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
    assert base64.b32decode(typed.replace(" ", "")) == RFC_SECRET
    assert len(totp.new_secret()) == 20 and totp.new_secret() != totp.new_secret()


def test_recovery_codes_are_distinct_and_typed_loosely() -> None:
    codes = totp.new_recovery_codes()
    assert len(codes) == 10 == len(set(codes))
    assert all(len(code.replace("-", "")) == 16 for code in codes)
    code = codes[0]
    assert totp.recovery_code_digest(code) == totp.recovery_code_digest(f" {code.upper().replace('-', ' ')} ")
    assert totp.recovery_code_digest(code) != totp.recovery_code_digest(codes[1])

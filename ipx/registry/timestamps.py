"""RFC 3161 timestamps from an outside time-stamping authority (TSA) on the statements in IPX's log.

A registration's "no later than" otherwise rests on IPX's own clock and its own signed checkpoints. A TSA's token
over the statement is a second, independent witness: whoever trusts the TSA (a public one, or a qualified trust
service under eIDAS) can see that the statement existed at the token's time, whatever IPX's clock said. Pure
functions over bytes, plus the one HTTP call that asks for a token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from cryptography import x509
from rfc3161_client import (
    TimestampRequestBuilder,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

QUERY_TYPE = "application/timestamp-query"  # RFC 3161 §3.4
REQUEST_SECONDS = 10.0
MAX_RESPONSE_BYTES = 1 << 20  # a token with its certificates is a few kB


class TimestampError(ValueError):
    """No usable token: the authority refused, was unreachable, or answered something that does not verify."""


@dataclass(frozen=True)
class Authority:
    """A TSA as IPX is configured with it: where to ask, and the root certificates its tokens chain to."""

    url: str
    roots_pem: bytes

    @property
    def roots(self) -> list[x509.Certificate]:
        return x509.load_pem_x509_certificates(self.roots_pem)


def request_token(authority: Authority, statement: bytes) -> tuple[bytes, datetime]:
    """Ask the authority for a token over `statement` (its SHA-256); returns the whole response, checked, and its
    time. The nonce and the roots are checked here too, so nothing unverifiable is ever stored."""
    request = TimestampRequestBuilder().data(statement).nonce(nonce=True).cert_request(cert_request=True).build()
    deadline = time.monotonic() + REQUEST_SECONDS
    try:
        with httpx.stream("POST", authority.url, content=request.as_bytes(), headers={"Content-Type": QUERY_TYPE},
                          timeout=REQUEST_SECONDS) as answer:
            if answer.status_code != 200:
                raise TimestampError(f"the time-stamping authority at {authority.url} answered HTTP "
                                     f"{answer.status_code}")
            received = bytearray()
            for piece in answer.iter_bytes():  # a whole-answer deadline: httpx's timeouts are per read
                received += piece
                if time.monotonic() > deadline or len(received) > MAX_RESPONSE_BYTES:
                    raise TimestampError(f"the time-stamping authority at {authority.url} took longer than "
                                         f"{REQUEST_SECONDS:g} s or sent more than {MAX_RESPONSE_BYTES:,} bytes")
    except httpx.HTTPError as exc:
        raise TimestampError(f"the time-stamping authority at {authority.url} could not be reached ({exc})") from exc
    verifier = VerifierBuilder.from_request(request)
    return bytes(received), _verified(bytes(received), statement, verifier, authority.roots)


def token_time(response: bytes, statement: bytes, roots: list[x509.Certificate]) -> datetime:
    """The time a stored token attests for `statement`, once it verifies against `roots` (else TimestampError)."""
    return _verified(response, statement, VerifierBuilder(), roots)


def _verified(response: bytes, statement: bytes, verifier: VerifierBuilder, roots: list[x509.Certificate]) -> datetime:
    for root in roots:
        verifier = verifier.add_root_certificate(root)
    try:
        decoded: TimeStampResponse = decode_timestamp_response(response)
        verifier.build().verify_message(decoded, statement)
    except (ValueError, VerificationError) as exc:
        raise TimestampError(f"the timestamp does not verify: {exc}") from exc
    return decoded.tst_info.gen_time.astimezone(UTC)

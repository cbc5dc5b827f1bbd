"""How the log reads a witness's 200 answer (ipx/registry/witnesses.py): whatever the witness sends, the answer is a
checked cosignature or a WitnessError naming the witness, never a crash that stops the other witnesses being asked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ipx.registry.evidence import VerificationReport, _check_cosignatures
from ipx.registry.note import Checkpoint, CosignatureVerifier, cosign, sign_note
from ipx.registry.witnesses import Witness, WitnessError, WitnessPolicy, cosignature_of, request_cosignature

LOG_KEY, WITNESS_KEY = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
BODY = Checkpoint("log.example/log", 3, bytes(32)).body()
NOTE = sign_note(BODY, "log.example/log", LOG_KEY)
WITNESS = Witness(CosignatureVerifier("witness.example/w", WITNESS_KEY.public_key()), "https://witness.example/w")


def test_a_good_answer_gives_the_checked_line_and_its_time() -> None:
    line = cosign(BODY, WITNESS.name, WITNESS_KEY, 1_700_000_000)
    cosignature = cosignature_of(WITNESS, NOTE, line.encode())
    assert (cosignature.line, int(cosignature.at.timestamp())) == (line, 1_700_000_000)


@pytest.mark.parametrize("answer", [
    pytest.param("\u2014 witness.example/w \u00e9\n".encode(), id="non-ASCII signature"),
    pytest.param("\u2014 witness.example/w AAAA\u2028\n".encode(), id="Unicode line separator"),
    pytest.param(b"\xff\xfe", id="not UTF-8"),
    pytest.param(b"", id="empty"),
])
def test_a_malformed_answer_is_the_witness_s_error(answer: bytes) -> None:
    with pytest.raises(WitnessError, match=r"witness\.example/w answered with no valid cosignature"):
        cosignature_of(WITNESS, NOTE, answer)


@pytest.mark.parametrize("timestamp", [
    pytest.param(int(time.time()) + 2 * 3600, id="two hours ahead"), pytest.param(2**40, id="year 36812"),
    pytest.param(2**63 - 1, id="the largest"),
])
def test_a_cosignature_dated_ahead_of_this_clock_is_refused(timestamp: int) -> None:
    """Any time up to 2^63 - 1 verifies, but one past year 9999 crashed the run, and bundles would carry it."""
    with pytest.raises(WitnessError, match="ahead of this host's clock"):
        cosignature_of(WITNESS, NOTE, cosign(BODY, WITNESS.name, WITNESS_KEY, timestamp).encode())


def test_a_verifier_reports_a_cosignature_time_beyond_any_date() -> None:
    report = VerificationReport()
    checkpoint = replace(Checkpoint.parse(BODY), cosigned_at=((WITNESS.name, 2**62),))
    _check_cosignatures(report, checkpoint, WitnessPolicy((WITNESS,), 1))
    assert report.ok and f"time {2**62}, beyond any date" in report.checks[0].detail


def test_a_huge_answer_is_read_no_further_than_the_limit() -> None:
    sent = 0

    def huge() -> Iterator[bytes]:  # 64 MiB, as a stand-in for an endless one
        nonlocal sent
        for _ in range(1024):
            sent += 65536
            yield b"x" * 65536

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=huge()))
    with httpx.Client(transport=transport) as client, pytest.raises(WitnessError, match="more than 64 KiB"):
        request_cosignature(client, WITNESS, 0, [], NOTE)
    assert sent <= 2 * 65536


def test_a_redirect_is_not_followed_and_says_where_to() -> None:
    moved = "https://witness.example/new/add-checkpoint"
    transport = httpx.MockTransport(lambda request: httpx.Response(308, headers={"Location": moved}))
    with httpx.Client(transport=transport) as client, pytest.raises(WitnessError, match=f"a redirect to {moved}"):
        request_cosignature(client, WITNESS, 0, [], NOTE)


@pytest.mark.parametrize("quorum", [1.5, True, "1"])
def test_a_published_quorum_that_is_not_a_whole_number_is_refused(quorum: object) -> None:
    document = {"quorum": quorum, "cosigners": [{"name": WITNESS.name, "vkey": WITNESS.verifier.vkey}]}
    with pytest.raises(ValueError, match="not a whole number"):
        WitnessPolicy.from_document(document)
    assert WitnessPolicy.from_document({**document, "quorum": 1}).quorum == 1

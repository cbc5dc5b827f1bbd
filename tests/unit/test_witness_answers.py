"""How the log reads a witness's 200 answer (ipx/registry/witnesses.py): whatever the witness sends, the answer is a
checked cosignature or a WitnessError naming the witness, never a crash that stops the other witnesses being asked."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ipx.registry.note import Checkpoint, CosignatureVerifier, cosign, sign_note
from ipx.registry.witnesses import Witness, WitnessError, cosignature_of

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

"""tlog-cosignature/v1: a witness's timestamped Ed25519 signature line on a checkpoint note.

The spec's cosigned checkpoint (../shared/vectors/signed-note, unverifiable_examples) publishes no witness key, so it
fixes the wire layout (key id, big-endian time, signed message); signing and verifying use a published test key.
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ipx.registry.note import (
    COSIGNATURE_TYPE,
    Checkpoint,
    CosignatureVerifier,
    NoteError,
    NoteVerifier,
    add_signatures,
    cosign,
    cosigned_message,
    open_checkpoint,
    open_note,
    sign_note,
)
from ipx.registry.witnesses import Witness, WitnessPolicy
from tests.conftest import SHARED
from tests.unit.test_vectors_note import private_key_from_skey

NOTES = json.loads((SHARED / "vectors" / "signed-note" / "notes.json").read_text())
SPEC_COSIGNED = next(e for e in NOTES["unverifiable_examples"] if "parsed_cosignature" in e)
LOG_NAME, LOG_KEY = private_key_from_skey(NOTES["tdev_formats_test_keys"][0]["skey"])
WITNESS_KEY = private_key_from_skey(NOTES["tdev_formats_test_keys"][1]["skey"])[1]
WITNESS = "witness.example/w1"
BODY = Checkpoint(LOG_NAME, 8, bytes(range(32))).body()


def test_spec_example_layout_key_id_time_and_signed_message() -> None:
    expected = SPEC_COSIGNED["parsed_cosignature"]
    line = SPEC_COSIGNED["note"].splitlines()[-1]
    name, encoded = line.removeprefix("\u2014 ").split(" ")
    blob = base64.b64decode(encoded)
    assert name == expected["key_name"]
    assert blob[:4].hex() == expected["key_id_hex"]
    assert int.from_bytes(blob[4:12], "big") == expected["timestamp"]
    assert len(blob[12:]) == expected["sig_len_bytes"]
    body = SPEC_COSIGNED["note"].split("\n\n")[0] + "\n"
    assert cosigned_message(body, expected["timestamp"]) == expected["signed_message"].encode()


def test_cosignature_verifies_and_returns_its_time() -> None:
    note = add_signatures(sign_note(BODY, LOG_NAME, LOG_KEY), [cosign(BODY, WITNESS, WITNESS_KEY, 1679315147)])
    log = NoteVerifier(LOG_NAME, LOG_KEY.public_key())
    witness = CosignatureVerifier(WITNESS, WITNESS_KEY.public_key())
    opened = open_note(note, [log, witness])
    assert opened.verified_by == (LOG_NAME, WITNESS)
    assert opened.cosigned_at == ((WITNESS, 1679315147),)
    assert open_checkpoint(note, [log]).size == 8  # a verifier that knows no witness ignores the line


def test_key_id_commits_to_the_cosignature_type() -> None:
    """The same Ed25519 key as a plain signer and as a cosigner has two key ids: neither signature passes for the
    other."""
    plain = NoteVerifier(WITNESS, WITNESS_KEY.public_key())
    cosigner = CosignatureVerifier(WITNESS, WITNESS_KEY.public_key())
    assert plain.key_hash != cosigner.key_hash
    assert base64.b64decode(cosigner.vkey.split("+", 2)[2])[:1] == COSIGNATURE_TYPE
    assert CosignatureVerifier.from_vkey(cosigner.vkey) == cosigner
    with pytest.raises(NoteError, match="cosignature"):
        CosignatureVerifier.from_vkey(plain.vkey)
    with pytest.raises(NoteError, match="signing"):
        NoteVerifier.from_vkey(cosigner.vkey)
    plain_note = sign_note(BODY, WITNESS, WITNESS_KEY)
    with pytest.raises(NoteError, match="no valid signature"):
        open_note(plain_note, [cosigner])


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda blob: blob[:4] + (1679315148).to_bytes(8, "big") + blob[12:], id="time changed"),
        pytest.param(lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]), id="signature bit flipped"),
        pytest.param(lambda blob: blob[:-8], id="truncated"),
        pytest.param(lambda blob: blob[:4] + (2**63).to_bytes(8, "big") + blob[12:], id="time beyond 2^63-1"),
    ],
)
def test_a_known_witness_with_a_bad_cosignature_rejects_the_note(tamper) -> None:
    line = cosign(BODY, WITNESS, WITNESS_KEY, 1679315147)
    name, encoded = line.removeprefix("\u2014 ").split(" ")
    bad = f"\u2014 {name} {base64.b64encode(tamper(base64.b64decode(encoded))).decode()}\n"
    note = add_signatures(sign_note(BODY, LOG_NAME, LOG_KEY), [bad])
    witness = CosignatureVerifier(WITNESS, WITNESS_KEY.public_key())
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note, [NoteVerifier(LOG_NAME, LOG_KEY.public_key()), witness])


def test_cosignature_of_another_body_does_not_verify() -> None:
    other = Checkpoint(LOG_NAME, 9, bytes(32)).body()
    note = add_signatures(sign_note(BODY, LOG_NAME, LOG_KEY), [cosign(other, WITNESS, WITNESS_KEY, 5)])
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note, [CosignatureVerifier(WITNESS, WITNESS_KEY.public_key())])


def test_add_signatures_keeps_each_line_once() -> None:
    signed = sign_note(BODY, LOG_NAME, LOG_KEY)
    line = cosign(BODY, WITNESS, WITNESS_KEY, 7)
    assert add_signatures(add_signatures(signed, [line, line]), [line]) == signed + line


def test_cosign_refuses_times_outside_the_format() -> None:
    key = Ed25519PrivateKey.generate()
    for timestamp in (-1, 2**63):
        with pytest.raises(NoteError, match="out of range"):
            cosign(BODY, WITNESS, key, timestamp)


def test_one_key_listed_under_two_names_is_refused_as_two_witnesses() -> None:
    """The cosigned message does not name the witness: the log can copy a cosignature under a second name with that
    name's key id, and it verifies, so a policy counting the two names would take one witness for a quorum of two."""
    line = cosign(BODY, WITNESS, WITNESS_KEY, 7)
    copied = CosignatureVerifier("witness.example/w2", WITNESS_KEY.public_key())
    blob = base64.b64decode(line.split(" ")[2])
    relabelled = f"\u2014 {copied.name} {base64.b64encode(copied.key_hash + blob[4:]).decode()}\n"
    witnesses = (Witness(CosignatureVerifier(WITNESS, WITNESS_KEY.public_key()), ""), Witness(copied, ""))
    note = add_signatures(sign_note(BODY, LOG_NAME, LOG_KEY), [line, relabelled])
    opened = open_note(note, [w.verifier for w in witnesses])
    assert len(opened.cosigned_at) == 2  # why the policy must refuse it
    with pytest.raises(ValueError, match="same key"):
        WitnessPolicy(witnesses, 2)


def test_a_cosignature_under_the_log_s_name_is_not_the_log_s_signature() -> None:
    """A verifier trusting a witness that bears the origin as its name must still demand the log's own signature: the
    witness alone cannot make a checkpoint."""
    forged = Checkpoint(LOG_NAME, 9, bytes(32)).body()
    note = f"{forged}\n{cosign(forged, LOG_NAME, WITNESS_KEY, 7)}"
    verifiers = [NoteVerifier(LOG_NAME, LOG_KEY.public_key()), CosignatureVerifier(LOG_NAME, WITNESS_KEY.public_key())]
    with pytest.raises(NoteError, match="not signed by a key of that name"):
        open_checkpoint(note, verifiers)
    signed = add_signatures(sign_note(forged, LOG_NAME, LOG_KEY), [cosign(forged, LOG_NAME, WITNESS_KEY, 7)])
    assert open_checkpoint(signed, verifiers).cosigned_at == ((LOG_NAME, 7),)

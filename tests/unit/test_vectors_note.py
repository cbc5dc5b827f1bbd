"""C2SP signed-note and tlog-checkpoint vectors (../shared/vectors/signed-note)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ipx.registry.note import Checkpoint, NoteError, NoteVerifier, open_checkpoint, open_note, sign_note
from tests.conftest import SHARED

VECTORS = SHARED / "vectors" / "signed-note"
NOTES = json.loads((VECTORS / "notes.json").read_text())


def private_key_from_skey(skey: str) -> tuple[str, Ed25519PrivateKey]:
    _, _, name, _, encoded = skey.split("+", 4)
    seed = base64.b64decode(encoded)[1:]
    return name, Ed25519PrivateKey.from_private_bytes(seed)


def test_c2sp_spec_example_verifies() -> None:
    example = NOTES["c2sp_signed_note_example"]
    verifier = NoteVerifier.from_vkey(example["vkey"])
    assert verifier.key_hash.hex() == example["key_id_hex"]
    opened = open_note(example["note"], [verifier])
    assert opened.text == example["signed_text"]
    assert opened.verified_by == (example["key_name"],)


def test_go_sign_vector_is_reproduced_byte_for_byte() -> None:
    vector = NOTES["go_sign_vector"]
    name, key = private_key_from_skey(vector["skey"])
    assert sign_note(vector["text"], name, key) == vector["expected_signed_note"]


@pytest.mark.parametrize("case", NOTES["go_open_cases"], ids=lambda c: c["desc"])
def test_go_open_cases(case: dict) -> None:
    verifiers = [NoteVerifier.from_vkey(v) for v in case["verifier_vkeys"]]
    message = base64.b64decode(case["msg_b64"])
    if not case["ok"]:
        with pytest.raises(NoteError):
            open_note(message, verifiers)
        return
    opened = open_note(message, verifiers)
    assert opened.text == case["text"]
    assert sorted(opened.verified_by) == sorted(name for name, _ in case["verified_sigs"])
    assert sorted((n, h.hex()) for n, h in opened.unverified) == sorted(map(tuple, case.get("unverified_sigs", [])))


@pytest.mark.parametrize("vkey", [v["vkey"] for v in NOTES["go_bad_vkeys"] if "vkey" in v])
def test_bad_verifier_keys_are_rejected(vkey: str) -> None:
    with pytest.raises(NoteError):
        NoteVerifier.from_vkey(vkey)


def test_every_proper_substring_and_one_byte_variant_of_a_vkey_is_rejected() -> None:
    vkey = NOTES["go_keys"]["PeterNeumann"]["vkey"]
    assert NoteVerifier.from_vkey(vkey).name == "PeterNeumann"
    for start in range(len(vkey)):
        for end in range(start, len(vkey) + 1):
            if (start, end) == (0, len(vkey)):
                continue
            with pytest.raises(NoteError):
                NoteVerifier.from_vkey(vkey[start:end])
    for position in range(len(vkey)):
        variant = vkey[:position] + chr(ord(vkey[position]) + 1) + vkey[position + 1 :]
        with pytest.raises(NoteError):
            NoteVerifier.from_vkey(variant)


@pytest.mark.parametrize("case", NOTES["tdev_formats_checkpoint_parse_cases"], ids=lambda c: c["desc"])
def test_checkpoint_parse_cases(case: dict) -> None:
    # our checkpoints carry 32-byte SHA-256 roots; the formats cases use short placeholder hashes
    text: str = case["text"]
    strict_c2sp = "strict parser may reject" in case["desc"]  # C2SP: extension lines MUST be non-empty; we are strict
    if not case["ok"] or strict_c2sp:
        with pytest.raises(NoteError):
            Checkpoint.parse(text)
        return
    lines = text.split("\n")
    lines[2] = base64.b64encode(b"\x07" * 32).decode()
    parsed = Checkpoint.parse("\n".join(lines))
    assert (parsed.origin, parsed.size) == (case["origin"], case["size"])
    assert "".join(line + "\n" for line in parsed.extensions) == case["rest"]


def test_derived_checkpoint_opens_with_its_vkey_and_matches_the_reference_root() -> None:
    derived = json.loads((VECTORS / "derived_checkpoint.json").read_text())
    checkpoint = open_checkpoint(derived["signed_checkpoint"], [NoteVerifier.from_vkey(derived["vkey"])])
    assert checkpoint.size == derived["parsed"]["tree_size"]
    assert checkpoint.root_hash.hex() == derived["parsed"]["root_hash_hex"]
    name, key = private_key_from_skey(derived["skey"])
    assert sign_note(derived["checkpoint_body"], name, key) == derived["signed_checkpoint"]


def test_checkpoint_signed_by_another_origin_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    body = Checkpoint("log.example/a", 3, b"\x01" * 32).body()
    note = sign_note(body, "log.example/b", key)
    with pytest.raises(NoteError, match="not signed by a key of that name"):
        open_checkpoint(note, [NoteVerifier("log.example/b", key.public_key())])


def test_tampered_checkpoint_body_fails() -> None:
    key = Ed25519PrivateKey.generate()
    note = sign_note(Checkpoint("log", 3, b"\x01" * 32).body(), "log", key)
    with pytest.raises(NoteError, match="does not verify"):
        open_checkpoint(note.replace("\n3\n", "\n4\n"), [NoteVerifier("log", key.public_key())])


@pytest.mark.parametrize("size", ["\u0661", "\u00b2", "\uff11", "01", "+1", " 1"])
def test_a_checkpoint_size_is_ascii_decimal_only(size: str) -> None:
    """str.isdigit takes "²" (then int() raised) and Arabic-Indic or full-width digits (then int() read them)."""
    root = base64.b64encode(bytes(32)).decode()
    with pytest.raises(NoteError, match="is not a decimal number"):
        Checkpoint.parse(f"example.org/log\n{size}\n{root}\n")

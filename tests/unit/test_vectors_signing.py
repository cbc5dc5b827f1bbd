"""RFC 8785 (JCS) and Ed25519 (RFC 8032, Wycheproof) vectors from ../shared/vectors."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ipx.registry import signing
from tests.conftest import SHARED

JCS = SHARED / "vectors" / "jcs"
ED25519 = SHARED / "vectors" / "ed25519"


@pytest.mark.parametrize("name", sorted(p.stem for p in (JCS / "input").glob("*.json")))
def test_jcs_canonical_bytes(name: str) -> None:
    value = json.loads((JCS / "input" / f"{name}.json").read_bytes())
    expected = (JCS / "output" / f"{name}.json").read_bytes()
    assert signing.canonical_json(value) == expected
    assert signing.canonical_json(value) == bytes.fromhex((JCS / "outhex" / f"{name}.txt").read_text())


def test_jcs_es6_number_formatting_100k() -> None:
    with gzip.open(JCS / "es6testfile_100k.txt.gz", "rt") as lines:
        for line in lines:
            bits, expected = line.rstrip("\n").split(",")
            value = struct.unpack(">d", int(bits, 16).to_bytes(8, "big"))[0]
            assert signing.canonical_json(value).decode() == expected, bits


def _rfc8032() -> list[dict]:
    return json.loads((ED25519 / "rfc8032_7_1.json").read_text())["vectors"]


@pytest.mark.parametrize("vector", _rfc8032(), ids=lambda v: v["name"])
def test_rfc8032_sign_and_verify(vector: dict) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["secret_key"]))
    assert signing.raw_public_key(key.public_key()).hex() == vector["public_key"]
    message = bytes.fromhex(vector["message"])
    assert signing.sign(key, message).hex() == vector["signature"]
    signing.verify(key.public_key(), message, bytes.fromhex(vector["signature"]))


def _wycheproof() -> list[tuple[str, dict]]:
    suite = json.loads((ED25519 / "ed25519_test.json").read_text())
    return [(group["publicKey"]["pk"], test) for group in suite["testGroups"] for test in group["tests"]]


@pytest.mark.parametrize(("public_key", "test"), _wycheproof(), ids=str)
def test_wycheproof_verify(public_key: str, test: dict) -> None:
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
    message, signature = bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"])
    if test["result"] == "valid":
        signing.verify(key, message, signature)
    elif test["result"] == "invalid":
        with pytest.raises(signing.SignatureError):
            signing.verify(key, message, signature)


def test_statement_signature_covers_the_canonical_bytes(tmp_path: Path) -> None:
    key = signing.generate_private_key()
    body, signature = signing.sign_statement(key, {"b": 1, "a": "é"})
    assert body == '{"a":"é","b":1}'.encode()
    signing.verify(key.public_key(), body, signature)
    with pytest.raises(signing.SignatureError):
        signing.verify(key.public_key(), body.replace(b"1", b"2"), signature)
    pem = signing.public_key_pem(key.public_key())
    assert signing.key_id(signing.load_public_key_pem(pem)) == signing.key_id(key.public_key())
    assert signing.load_private_key_pem(signing.private_key_pem(key)).public_key() == key.public_key()

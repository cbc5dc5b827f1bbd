"""Ed25519 signing over RFC 8785 canonical JSON, and key encodings.

Pure functions: the same bytes and key always give the same signature, so every function here is
checked against published test vectors (RFC 8032, Wycheproof, RFC 8785).
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class SignatureError(ValueError):
    """A signature does not verify, or a key cannot be read."""


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes: the only form statements are signed and logged in."""
    return rfc8785.dumps(value)


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw public key: stable, collision-free and computable by anyone."""
    return hashlib.sha256(raw_public_key(public_key)).hexdigest()


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def private_key_pem(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_public_key_pem(pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise SignatureError(f"the public key is not a readable PEM key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError("the public key is not an Ed25519 key")
    return key


def load_private_key_pem(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError("the private key is not an Ed25519 key")
    return key


def sign(private_key: Ed25519PrivateKey, message: bytes) -> bytes:
    return private_key.sign(message)


def verify(public_key: Ed25519PublicKey, message: bytes, signature: bytes) -> None:
    try:
        public_key.verify(signature, message)
    except InvalidSignature as exc:
        raise SignatureError("the Ed25519 signature does not match the signed bytes") from exc


def sign_statement(private_key: Ed25519PrivateKey, statement: dict[str, Any]) -> tuple[bytes, bytes]:
    """Return (JCS bytes, signature): the bytes are also the transparency-log leaf."""
    body = canonical_json(statement)
    return body, sign(private_key, body)

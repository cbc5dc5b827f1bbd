"""Signing keys: created on first start, rotated by `ipx keys rotate`, never forgotten.

The private key sits in the key directory (mode 0600), the public key and its validity window in
the database, so `/.well-known/ipx/keys` can publish every key that ever signed anything. A retired key's
private half is destroyed once its retirement is committed: whoever later got hold of it could sign a whole
fake log, backdated into the key's window, that verifies offline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from ipx.audit import service as audit_service
from ipx.db import utcnow
from ipx.errors import NotFound
from ipx.registry import signing
from ipx.registry.models import SigningKey


@dataclass(frozen=True)
class Signer:
    key_id: str
    private_key: Ed25519PrivateKey

    def sign(self, message: bytes) -> bytes:
        return signing.sign(self.private_key, message)


_loaded: dict[str, Signer] = {}
_loaded_lock = Lock()


def _key_path(key_dir: Path, key_id: str) -> Path:
    return key_dir / f"{key_id}.pem"


def _create_key(session: Session, key_dir: Path) -> SigningKey:
    private_key = signing.generate_private_key()
    key_id = signing.key_id(private_key.public_key())
    key_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(_key_path(key_dir, key_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(signing.private_key_pem(private_key))
        out.flush()
        os.fsync(out.fileno())
    row = SigningKey(key_id=key_id, public_key_pem=signing.public_key_pem(private_key.public_key()))
    session.add(row)
    session.flush()
    audit_service.record(session, action="key.created", subject_type="signing_key", subject_id=key_id)
    return row


def active_key(session: Session) -> SigningKey | None:
    query = select(SigningKey).where(SigningKey.valid_until.is_(None)).order_by(SigningKey.valid_from.desc())
    return session.scalars(query).first()


def ensure_active_key(session: Session, key_dir: Path) -> SigningKey:
    return active_key(session) or _create_key(session, key_dir)


def rotate(session: Session, key_dir: Path) -> SigningKey:
    """Retire the active key (it stays published with its window) and start signing with a new one."""
    old = active_key(session)
    if old is not None:
        old.valid_until = utcnow()
        audit_service.record(session, action="key.retired", subject_type="signing_key", subject_id=old.key_id)
    return _create_key(session, key_dir)


def destroy_retired_private_keys(session: Session, key_dir: Path) -> list[str]:
    """Delete the private key files of retired keys (call after the retirement commits); returns their ids."""
    retired = session.scalars(select(SigningKey.key_id).where(SigningKey.valid_until.is_not(None)))
    destroyed = []
    for key_id in retired:
        path = _key_path(key_dir, key_id)
        if path.exists():
            path.unlink()
            destroyed.append(key_id)
        with _loaded_lock:
            _loaded.pop(key_id, None)
    return destroyed


def active_signer(session: Session, key_dir: Path) -> Signer:
    row = active_key(session)
    if row is None:
        raise NotFound("No signing key exists yet: run `ipx keys init` or start the server once.")
    with _loaded_lock:
        signer = _loaded.get(row.key_id)
        if signer is None:
            private_key = signing.load_private_key_pem(_key_path(key_dir, row.key_id).read_bytes())
            signer = _loaded[row.key_id] = Signer(row.key_id, private_key)
    return signer


def all_keys(session: Session) -> list[SigningKey]:
    return list(session.scalars(select(SigningKey).order_by(SigningKey.valid_from)))


def get_key(session: Session, key_id: str) -> SigningKey:
    row = session.get(SigningKey, key_id)
    if row is None:
        raise NotFound(f"No signing key with id {key_id}.")
    return row

"""The witness's own Ed25519 key: created on first use beside the log's signing keys, then kept for good.

Log operators configure the witness by this key's cosignature vkey, so losing or replacing it silently would make
every cosignature unverifiable to them: it is never rotated here, and a second worker racing to create it ends up
with the same key as the first.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from threading import Lock

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ipx.registry import signing
from ipx.registry.note import CosignatureVerifier

KEY_FILE = "witness.pem"

_loaded: dict[Path, Ed25519PrivateKey] = {}
_loaded_lock = Lock()


def _create(path: Path) -> None:
    """Write a new key to a private temporary file, then link it into place: the link fails if another process got
    there first, and nobody ever reads a half-written key file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(signing.private_key_pem(signing.generate_private_key()))
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another worker's key won; this one was never used
            os.link(temporary, path)
    finally:
        temporary.unlink()


def witness_key(key_dir: Path) -> Ed25519PrivateKey:
    """The witness's private key, created in `key_dir` the first time any process asks for it."""
    path = key_dir / KEY_FILE
    with _loaded_lock:
        if path not in _loaded:
            if not path.exists():
                _create(path)
            _loaded[path] = signing.load_private_key_pem(path.read_bytes())
        return _loaded[path]


def witness_verifier(key_dir: Path, name: str) -> CosignatureVerifier:
    """What a log operator configures to check this witness's cosignatures; its `.vkey` is the string to give them."""
    return CosignatureVerifier(name, witness_key(key_dir).public_key())

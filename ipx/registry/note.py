"""C2SP signed notes, tlog checkpoints and their cosignatures (https://c2sp.org/signed-note, /tlog-checkpoint,
/tlog-cosignature).

A checkpoint commits the log to a size and root hash; signing it as a note lets any witness or
verifier check it with the log's published Ed25519 key and nothing else. A witness's cosignature is one more
signature line on the same note: it says the witness saw this tree head and checked it extends every earlier one
it saw, so a verifier that requires independent cosignatures cannot be shown a fork only it sees.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field, replace
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ipx.registry.signing import raw_public_key

SIGNATURE_PREFIX = "\u2014 "  # em dash and a space
ED25519_TYPE = b"\x01"
COSIGNATURE_TYPE = b"\x04"  # tlog-cosignature/v1: a timestamped Ed25519 signature over a checkpoint
MAX_TIMESTAMP = 2**63 - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
MAX_SIGNATURES = 100  # as Go's note package: bounds the work a hostile note can cause


class NoteError(ValueError):
    """A note or checkpoint is malformed or carries no valid signature; the message says which."""


def note_key_hash(name: str, raw_key: bytes, key_type: bytes = ED25519_TYPE) -> bytes:
    """The 4-byte key hash: SHA-256(name || 0x0A || type || public key)[:4]; the type keeps a witness's cosignature
    key from passing for a plain signing key of the same name."""
    return hashlib.sha256(name.encode() + b"\n" + key_type + raw_key).digest()[:4]


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What a tlog-cosignature/v1 signs: a header line, the time line, then the checkpoint's note text."""
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


@dataclass(frozen=True)
class NoteVerifier:
    """A plain Ed25519 note signer, such as the log itself."""

    name: str
    public_key: Ed25519PublicKey
    key_type: ClassVar[bytes] = ED25519_TYPE

    @property
    def key_hash(self) -> bytes:
        return note_key_hash(self.name, raw_public_key(self.public_key), self.key_type)

    @property
    def vkey(self) -> str:
        """The `name+hex id+base64` verifier key string used by Go's note package and witnesses."""
        raw = base64.b64encode(self.key_type + raw_public_key(self.public_key)).decode()
        return f"{self.name}+{self.key_hash.hex()}+{raw}"

    def verify(self, signature: bytes, text: str) -> int | None:
        """Raise InvalidSignature unless `signature` signs `text`; a plain signature carries no time (None)."""
        self.public_key.verify(signature, text.encode())
        return None

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        parts = vkey.split("+", 2)
        if len(parts) != 3 or not parts[0] or len(parts[1]) != 8:
            raise NoteError(f"malformed verifier key {vkey!r}")
        name, key_hash_hex, encoded = parts
        try:
            blob = base64.b64decode(encoded, validate=True)
            key_hash = bytes.fromhex(key_hash_hex)
        except (binascii.Error, ValueError) as exc:
            raise NoteError(f"malformed verifier key {vkey!r}") from exc
        if len(blob) != 33 or blob[:1] != cls.key_type:
            kind = "cosignature (type 0x04)" if cls.key_type == COSIGNATURE_TYPE else "signing (type 0x01)"
            raise NoteError(f"verifier key is not a 32-byte Ed25519 {kind} key")
        verifier = cls(name, Ed25519PublicKey.from_public_bytes(blob[1:]))
        if verifier.key_hash != key_hash or key_hash_hex != key_hash_hex.lower():
            raise NoteError("verifier key id does not match its name and key")
        return verifier


@dataclass(frozen=True)
class CosignatureVerifier(NoteVerifier):
    """A witness's Ed25519 key (tlog-cosignature/v1): its signature is over the note text with a time before it."""

    key_type: ClassVar[bytes] = COSIGNATURE_TYPE

    def verify(self, signature: bytes, text: str) -> int:
        """Raise InvalidSignature unless `signature` is this witness's cosignature of `text`; return its time."""
        if len(signature) != 8 + 64:
            raise InvalidSignature("a cosignature is an 8-byte time and a 64-byte signature")
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            raise InvalidSignature("cosignature time out of range")
        self.public_key.verify(signature[8:], cosigned_message(text, timestamp))
        return timestamp


@dataclass(frozen=True)
class OpenedNote:
    text: str
    verified_by: tuple[str, ...]
    unverified: tuple[tuple[str, bytes], ...]  # (name, key hash) of signatures with no known key
    cosigned_at: tuple[tuple[str, int], ...] = ()  # (witness name, POSIX time) of each verified cosignature


def check_signer_name(name: str) -> None:
    """A name begins every signature line and every vkey: a space, '+' or em dash in it would break both."""
    if "\u2014" in name or " " in name or "+" in name or not name:
        raise NoteError(f"invalid signer name {name!r}: it must be non-empty, without spaces, '+' or an em dash")


def _signature_line(name: str, key_hash: bytes, signature: bytes) -> str:
    check_signer_name(name)
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(key_hash + signature).decode()}\n"


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    key_hash = note_key_hash(name, raw_public_key(private_key.public_key()))
    return f"{text}\n{_signature_line(name, key_hash, private_key.sign(text.encode()))}"


def cosign(text: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> str:
    """A witness's cosignature line for a checkpoint's note text, to add to the note's signatures."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError("cosignature time out of range")
    key_hash = note_key_hash(name, raw_public_key(private_key.public_key()), COSIGNATURE_TYPE)
    signature = private_key.sign(cosigned_message(text, timestamp))
    return _signature_line(name, key_hash, timestamp.to_bytes(8, "big") + signature)


def split_note(note: str) -> tuple[str, str]:
    """The signed text (up to and including the newline before the last blank line) and the signature lines after
    it: the text may itself hold blank lines, the signatures cannot."""
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("signed note has no blank line before its signatures")
    return note[: split + 1], note[split + 2 :]


def add_signatures(note: str, lines: list[str]) -> str:
    """The note with more signature lines (each ending in a newline) after its own, none twice."""
    present = set(split_note(note)[1].splitlines(keepends=True))
    return note + "".join(line for line in dict.fromkeys(lines) if line not in present)


def _decode(note: str | bytes) -> str:
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("signed note is not valid UTF-8") from exc
    if any((ord(ch) < 0x20 and ch != "\n") or ch == "\x7f" for ch in note):
        raise NoteError("signed note contains control characters")
    return note


def open_note(note: str | bytes, verifiers: list[NoteVerifier]) -> OpenedNote:
    """Split a signed note, check every signature by a known key (a witness's cosignature too), and demand at least
    one."""
    note = _decode(note)
    if not note.endswith("\n"):
        raise NoteError("signed note does not end with a newline")
    text, signature_block = split_note(note)
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    ambiguous: set[tuple[str, bytes]] = set()
    for verifier in verifiers:
        key = (verifier.name, verifier.key_hash)
        if key in known:
            ambiguous.add(key)
        known[key] = verifier
    lines = signature_block.splitlines()
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"signed note has more than {MAX_SIGNATURES} signatures")
    lines = list(dict.fromkeys(lines))  # duplicate signature lines count once
    verified: list[str] = []
    unverified: list[tuple[str, bytes]] = []
    cosigned: list[tuple[str, int]] = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"malformed signature line {line!r}")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].rpartition(" ")
        if not name or " " in name:
            raise NoteError(f"malformed signer name in {line!r}")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise NoteError(f"signature of {name!r} is not base64") from exc
        if len(blob) < 5:
            raise NoteError(f"signature of {name!r} is too short")
        if (name, blob[:4]) in ambiguous:
            raise NoteError(f"more than one verifier key is named {name!r} with the same key id")
        verifier = known.get((name, blob[:4]))
        if verifier is None:
            unverified.append((name, blob[:4]))
            continue
        try:
            timestamp = verifier.verify(blob[4:], text)
        except InvalidSignature as exc:
            raise NoteError(f"signature by {name!r} does not verify") from exc
        verified.append(name)
        if timestamp is not None:
            cosigned.append((name, timestamp))
    if not verified:
        raise NoteError("the note carries no valid signature by a known key")
    return OpenedNote(text, tuple(verified), tuple(unverified), tuple(cosigned))


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()
    # (witness name, POSIX time) of the verified cosignatures on the note it was read from: not part of the body
    cosigned_at: tuple[tuple[str, int], ...] = field(default=(), compare=False)

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode(), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("checkpoint needs origin, size and root hash lines, each ending in a newline")
        origin, size_text, root_text, *extensions = lines[:-1]
        if not origin:
            raise NoteError("checkpoint origin is empty")
        if not _DECIMAL.fullmatch(size_text):  # ASCII digits only: str.isdigit takes "²" and Arabic-Indic digits
            raise NoteError(f"checkpoint size {size_text!r} is not a decimal number")
        try:
            root = base64.b64decode(root_text, validate=True)
        except binascii.Error as exc:
            raise NoteError("checkpoint root hash is not base64") from exc
        if len(root) != 32:
            raise NoteError("checkpoint root hash is not 32 bytes")
        if any(not line for line in extensions):
            raise NoteError("checkpoint has an empty extension line")
        return cls(origin, int(size_text), root, tuple(extensions))


def open_checkpoint(note: str, verifiers: list[NoteVerifier]) -> Checkpoint:
    """The checkpoint of a note signed by its log, with the cosignatures of any witnesses among `verifiers`."""
    opened = open_note(note, verifiers)
    checkpoint = Checkpoint.parse(opened.text)
    # a witness's cosignature does not count as the log's signature, even where the witness bears the log's name
    cosigners = [name for name, _ in opened.cosigned_at]
    if opened.verified_by.count(checkpoint.origin) <= cosigners.count(checkpoint.origin):
        raise NoteError(f"checkpoint for {checkpoint.origin!r} is not signed by a key of that name")
    return replace(checkpoint, cosigned_at=opened.cosigned_at)

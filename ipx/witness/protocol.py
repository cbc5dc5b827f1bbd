"""The tlog-witness wire format (https://c2sp.org/tlog-witness): the add-checkpoint request and the 409 size body.

Pure: bytes in, frozen values out. Both directions are here, so the log side that submits checkpoints to witnesses
renders exactly what the witness parses.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_PROOF_LINES = 63  # the spec's bound: a consistency proof of a tree of 2**63 leaves is no longer
MAX_TREE_SIZE = 2**63 - 1  # what a BIGINT column holds
SIZE_MEDIA_TYPE = "text/x.tlog.size"
HASH_SIZE = 32
_DECIMAL = re.compile(r"0|[1-9][0-9]*")  # ASCII digits, no leading zeroes


class MalformedRequest(ValueError):
    """An add-checkpoint body (or a 409 size body) that does not follow the format; the message says where."""


@dataclass(frozen=True)
class CheckpointRequest:
    old_size: int
    proof: tuple[bytes, ...]
    note: str  # the signed checkpoint, its signature lines included


def _size(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text) or int(text) > MAX_TREE_SIZE:
        raise MalformedRequest(f"{what} {text!r} is not a decimal number without leading zeroes below 2^63")
    return int(text)


def parse_request(body: bytes) -> CheckpointRequest:
    """`old N`, up to 63 base64 proof hashes, an empty line, then the signed checkpoint; every line ends in LF."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedRequest(f"the request is not UTF-8 text (byte {exc.start})") from exc
    if any((ord(ch) < 0x20 and ch != "\n") or ch == "\x7f" for ch in text):  # as signed notes forbid them
        raise MalformedRequest("the request contains control characters")
    header, newline, rest = text.partition("\n")
    if not newline or not header.startswith("old "):
        raise MalformedRequest("the request does not start with an 'old <size>' line")
    old_size = _size(header.removeprefix("old "), "old size")
    proof: list[bytes] = []
    while True:
        line, newline, rest = rest.partition("\n")
        if not newline:
            raise MalformedRequest("the request has no empty line between the consistency proof and the checkpoint")
        if not line:
            break
        if len(proof) == MAX_PROOF_LINES:
            raise MalformedRequest(f"the consistency proof has more than {MAX_PROOF_LINES} lines")
        try:
            node = base64.b64decode(line, validate=True)
        except binascii.Error as exc:
            raise MalformedRequest(f"consistency proof line {len(proof) + 1} is not base64") from exc
        if len(node) != HASH_SIZE:
            raise MalformedRequest(f"consistency proof line {len(proof) + 1} is not a {HASH_SIZE}-byte hash")
        proof.append(node)
    return CheckpointRequest(old_size, tuple(proof), rest)


def render_request(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The add-checkpoint body a log sends: the size the witness last cosigned, the proof from it, the note."""
    lines = [f"old {old_size}", *(base64.b64encode(node).decode() for node in proof), ""]
    return ("\n".join(lines) + "\n" + note).encode()


def render_size(size: int) -> bytes:
    return f"{size}\n".encode()


def parse_size(body: bytes) -> int:
    """The size in a 409 `text/x.tlog.size` answer: the witness's latest cosigned size, to submit a proof from."""
    text = body.decode("ascii", errors="replace")
    if not text.endswith("\n"):
        raise MalformedRequest("a tlog size body is a decimal number and a newline")
    return _size(text[:-1], "tree size")

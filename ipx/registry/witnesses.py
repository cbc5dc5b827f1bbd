"""Asking witnesses to cosign the log's checkpoints (https://c2sp.org/tlog-witness), and the policy verifiers apply.

A signed checkpoint proves what the log says, not that it says the same to everyone: IPX could show one person a
tree with their registration and another a tree without it. A witness keeps the last tree head it saw for the log
and cosigns a new one only with a consistency proof from it, so a checkpoint cosigned by independent witnesses is one
the whole world was shown. Bundles carry the cosignatures; a verifier configured with the witnesses' keys and a
quorum (published in /.well-known/ipx/keys, or chosen by the verifier) rejects checkpoints with fewer.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ipx.db import transaction
from ipx.registry import log
from ipx.registry.note import SIGNATURE_PREFIX, CosignatureVerifier, NoteError, add_signatures, open_note
from ipx.registry.signing import raw_public_key
from ipx.witness import protocol

MAX_RESPONSE_BYTES = 64 * 1024
MAX_CLOCK_AHEAD = 3600  # seconds a cosignature may be dated after this host's time


class WitnessError(Exception):
    """A witness did not cosign; the message says why, in words an operator can act on."""


class WitnessConflict(WitnessError):
    """The witness last cosigned another tree size than the one the request started from (409 with its size)."""

    def __init__(self, witness: str, size: int) -> None:
        super().__init__(f"{witness} last cosigned the log at size {size}")
        self.size = size


@dataclass(frozen=True)
class Witness:
    verifier: CosignatureVerifier
    url: str  # the submission prefix: add-checkpoint is posted to url + "/add-checkpoint"

    @property
    def name(self) -> str:
        return self.verifier.name

    @classmethod
    def parse(cls, entry: str) -> Witness:
        """A configured witness: its cosignature verifier key and its submission URL, separated by a space."""
        vkey, _, url = entry.strip().partition(" ")
        url = url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"witness {entry!r} must be 'VKEY URL': its cosignature key, a space, its http(s) URL")
        try:
            return cls(CosignatureVerifier.from_vkey(vkey), url)
        except NoteError as exc:
            raise ValueError(f"witness {vkey!r}: {exc}") from exc


@dataclass(frozen=True)
class WitnessPolicy:
    """Which witnesses' cosignatures count, and how many a checkpoint needs."""

    witnesses: tuple[Witness, ...]
    quorum: int

    def __post_init__(self) -> None:
        if not 1 <= self.quorum <= len(self.witnesses):
            raise ValueError(f"a quorum of {self.quorum} needs between 1 and {len(self.witnesses)} (the witnesses "
                             "configured) cosignatures")
        if len({w.name for w in self.witnesses}) != len(self.witnesses):
            raise ValueError("two witnesses have the same name: a checkpoint would count one cosignature twice")
        # a cosignature does not sign its name, so one key's line can be copied under each name it is listed by
        if len({raw_public_key(w.verifier.public_key) for w in self.witnesses}) != len(self.witnesses):
            raise ValueError("two witnesses have the same key: one witness's cosignature would count for both names")

    @property
    def verifiers(self) -> list[CosignatureVerifier]:
        return [w.verifier for w in self.witnesses]

    def document(self) -> dict[str, Any]:
        """As published in /.well-known/ipx/keys, for verifiers."""
        return {
            "quorum": self.quorum,
            "cosigners": [{"name": w.name, "vkey": w.verifier.vkey, "url": w.url} for w in self.witnesses],
        }

    @classmethod
    def from_document(cls, document: Any) -> WitnessPolicy:
        try:
            cosigners = document["cosigners"]
            witnesses = tuple(Witness(CosignatureVerifier.from_vkey(str(c["vkey"])), str(c.get("url", "")))
                              for c in cosigners)
            quorum = document["quorum"]
            if type(quorum) is not int:  # int() would make 1.5 a quorum of 1, and true one of 1
                raise ValueError(f"the quorum {quorum!r} is not a whole number")
            return cls(witnesses, quorum)
        except (KeyError, TypeError, ValueError, NoteError) as exc:
            raise ValueError(f"the witness policy needs a quorum and each cosigner's vkey ({exc})") from exc


@dataclass(frozen=True)
class Cosignature:
    line: str  # the note signature line, as the witness sent it
    at: datetime  # the time inside it


@dataclass(frozen=True)
class Outcome:
    witness: str
    tree_size: int
    stored: bool = False  # False: already kept (another run's), or refused (see problem)
    problem: str | None = None


def collect_cosignatures(
    sessions: sessionmaker[Session], client: httpx.Client, policy: WitnessPolicy
) -> list[Outcome]:
    """Ask every witness to cosign the latest checkpoint (the same one for all, so one checkpoint gathers the
    quorum), and keep what they sign.

    Witnesses are asked outside any transaction (on SQLite a transaction holds the whole database's write lock), each
    answer is stored in its own short one, and one witness's refusal does not stop the others.
    """
    with transaction(sessions) as session:
        checkpoint = log.latest_checkpoint(session)
        tree_size, note = checkpoint.tree_size, checkpoint.note
    outcomes = []
    for witness in policy.witnesses:
        try:
            cosignature = _cosignature(sessions, client, witness, tree_size, note)
        except WitnessError as exc:
            outcomes.append(Outcome(witness.name, tree_size, problem=str(exc)))
            continue
        try:
            with transaction(sessions) as session:
                stored = log.keep_cosignature(session, tree_size, witness.name, cosignature.line, cosignature.at)
        except IntegrityError:
            stored = False  # a run at the same time kept this witness's cosignature of this size first
        outcomes.append(Outcome(witness.name, tree_size, stored))
    return outcomes


def _cosignature(
    sessions: sessionmaker[Session], client: httpx.Client, witness: Witness, tree_size: int, note: str
) -> Cosignature:
    """Start from the size this log knows the witness cosigned; if the witness says it holds another (a cosignature
    whose answer was lost, a restored database here), prove consistency from that size instead, once."""
    with transaction(sessions) as session:
        old_size = min(log.last_cosigned_size(session, witness.name), tree_size)
    for attempt in range(2):
        with transaction(sessions) as session:
            proof = [] if old_size in (0, tree_size) else log.consistency_proof(session, old_size, tree_size)
        try:
            return request_cosignature(client, witness, old_size, proof, note)
        except WitnessConflict as conflict:
            if attempt or conflict.size > tree_size:
                raise WitnessError(
                    f"{conflict}, but this log's checkpoint has size {tree_size}: the witness was shown a larger tree "
                    "(a fork, or this database was restored from an older backup)"
                    if conflict.size > tree_size else str(conflict)
                ) from conflict
            old_size = conflict.size
    raise AssertionError("unreachable: the second attempt returns or raises")


def request_cosignature(
    client: httpx.Client, witness: Witness, old_size: int, proof: Sequence[bytes], note: str
) -> Cosignature:
    """The witness's verified cosignature of `note`, or WitnessError saying why there is none."""
    request = protocol.render_request(old_size, proof, note)
    try:
        with client.stream("POST", f"{witness.url}/add-checkpoint", content=request) as response:
            body = _bounded_body(witness, response)
    except httpx.HTTPError as exc:
        raise WitnessError(f"{witness.name} at {witness.url} cannot be reached: {exc}") from exc
    if response.status_code == 200:
        return cosignature_of(witness, note, body)
    raise _refusal(witness, response, body, old_size)


def _bounded_body(witness: Witness, response: httpx.Response) -> bytes:
    """The answer's body, read no further than the limit: a broken or hostile witness could send gigabytes."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise WitnessError(f"{witness.name} answered HTTP {response.status_code} with more than "
                               f"{MAX_RESPONSE_BYTES // 1024} KiB: no witness answer is that long")
    return bytes(body)


def cosignature_of(witness: Witness, note: str, body: bytes) -> Cosignature:
    """This witness's cosignature of `note` among the lines of a 200 answer, checked (a bad one by its key is an
    error, lines by other keys are ignored)."""
    try:
        lines = body.decode().splitlines(keepends=True)
        ours = [line for line in lines if line.startswith(f"{SIGNATURE_PREFIX}{witness.name} ") and
                _key_hash(line) == witness.verifier.key_hash]
        opened = open_note(add_signatures(note, ours), [witness.verifier])
    except ValueError as exc:  # not UTF-8, not base64 (a non-ASCII character is no binascii.Error), no valid line
        raise WitnessError(f"{witness.name} answered with no valid cosignature: {exc}") from exc
    timestamp = opened.cosigned_at[0][1]
    if timestamp > time.time() + MAX_CLOCK_AHEAD:  # up to 2^63-1 verifies; bundles would carry it to every verifier
        raise WitnessError(f"{witness.name} dated its cosignature {timestamp} (POSIX seconds), ahead of this host's "
                           "clock: one of the two clocks is wrong")
    return Cosignature(ours[0], datetime.fromtimestamp(timestamp, UTC))


def _key_hash(line: str) -> bytes:
    return base64.b64decode(line.rstrip("\n").rpartition(" ")[2], validate=True)[:4]


def _refusal(witness: Witness, response: httpx.Response, body: bytes, old_size: int) -> WitnessError:
    status, text = response.status_code, body[:300].decode(errors="replace").strip()
    if status == 409 and response.headers.get("content-type", "").startswith(protocol.SIZE_MEDIA_TYPE):
        try:
            return WitnessConflict(witness.name, protocol.parse_size(body))
        except protocol.MalformedRequest as exc:
            return WitnessError(f"{witness.name} answered 409 with no usable size: {exc}")
    if response.has_redirect_location:  # not followed: a redirected POST may arrive as a GET, or somewhere else
        return WitnessError(f"{witness.name} answered HTTP {status}, a redirect to {response.headers['location']}: "
                            "if that is the witness's submission URL, configure it in IPX_LOG_WITNESSES")
    reasons = {
        400: "says the request is malformed",
        403: "does not trust this log's signing key: give it the log's note verifier key from /.well-known/ipx/keys",
        404: "does not witness this log (its origin is not configured there)",
        409: "holds a different tree head of the same size: it was shown another history of this log",
        422: f"could not verify the consistency proof from size {old_size}: it was shown another history of this log",
    }
    reason = reasons.get(status, f"answered HTTP {status}")
    return WitnessError(f"{witness.name} {reason}" + (f" ({text})" if text else ""))

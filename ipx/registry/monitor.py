"""Watching IPX's log from outside: does every checkpoint it signs extend the ones it signed before?

A bundle proves an entry is in the tree its checkpoint names, but not that everyone is shown the same tree: a log
could sign a second history for some visitors (a split view) or rewrite its past. Whoever keeps the checkpoint they
saw last and checks each new one against it (RFC 9162 consistency proof) would see either; two checkpoints signed by
IPX's key that do not extend one another are themselves the proof of it, publishable to anyone. With the entries
downloaded too, the monitor rebuilds the tree from them and so also knows what was added (an account's owner can see
every registration made under their name).

Pure functions and a small HTTP client; `ipx log monitor` is the command that runs them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ipx.registry import merkle, signing
from ipx.registry.note import Checkpoint, NoteError, NoteVerifier, open_checkpoint

STATE_VERSION = 1
REQUEST_TIMEOUT_SECONDS = 30.0
ENTRIES_PER_REQUEST = 1000  # the server's page size (ipx/registry/log.py MAX_ENTRIES_PER_PAGE)


class MonitorError(ValueError):
    """A server's answer that cannot be used (unreachable, an error status, malformed); the message says why."""


class Refused(MonitorError):
    """The site answered a well-formed request with a client error: it says it has no such tree, not that it is
    busy or down (those are plain MonitorErrors)."""


class UnusableLocalFile(MonitorError):
    """The keys file or the saved state cannot be used: the monitor's own files, not the site, are at fault."""


class LogInconsistent(Exception):
    """What IPX served cannot all be true; the signed checkpoints as served, and whatever else lets anyone check the
    claim again (a proof, the range of entries), are the evidence."""

    def __init__(self, reason: str, *checkpoints: str, details: str = "") -> None:
        super().__init__(reason)
        self.reason, self.checkpoints, self.details = reason, checkpoints, details

    def evidence(self) -> str:
        """What to publish: the reason, each signed checkpoint involved (oldest first), then the details."""
        shown = "".join(f"\nCheckpoint {number}, as IPX served it:\n{note}" for number, note in
                        enumerate(self.checkpoints, 1))
        return f"{self.reason}\n{shown}" + (f"\n{self.details}\n" if self.details else "")


@dataclass(frozen=True)
class SeenLog:
    """What a monitor keeps between runs: the last checkpoint it accepted and, when it audits the entries, the
    compact range of the tree (one hash per 1-bit of the size) that lets the next entries extend it."""

    checkpoint: str
    origin: str
    size: int
    root_hash: bytes
    frontier: tuple[bytes, ...] | None = None

    def to_json(self) -> str:
        state: dict[str, Any] = {"version": STATE_VERSION, "checkpoint": self.checkpoint}
        if self.frontier is not None:
            state["frontier"] = [base64.b64encode(node).decode() for node in self.frontier]
        return json.dumps(state, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, verifiers: list[NoteVerifier]) -> SeenLog:
        """A saved state, its checkpoint checked again (a state file is no more trusted than a server)."""
        try:
            state = json.loads(text)
            if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
                raise ValueError(f"not a monitor state of version {STATE_VERSION}")
            if not isinstance(state.get("checkpoint"), str):
                raise ValueError("it holds no checkpoint")
            checkpoint = open_checkpoint(state["checkpoint"], verifiers)
            frontier = state.get("frontier")
            if frontier is not None and not isinstance(frontier, list):
                raise ValueError("its frontier is not a list")
            nodes = None if frontier is None else tuple(base64.b64decode(node, validate=True) for node in frontier)
            if nodes is not None and any(len(node) != merkle.HASH_SIZE for node in nodes):
                raise ValueError(f"its frontier holds a hash that is not {merkle.HASH_SIZE} bytes")
            seen = cls(state["checkpoint"], checkpoint.origin, checkpoint.size, checkpoint.root_hash, nodes)
            if nodes is not None and root_of_frontier(seen.size, nodes) != seen.root_hash:
                raise ValueError("its tree does not add up to its checkpoint")
        except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as exc:
            raise UnusableLocalFile(f"the saved state cannot be used ({exc or type(exc).__name__})") from exc
        return seen


def checkpoint_verifiers(keys_document: Any, *, retired_too: bool = False) -> list[NoteVerifier]:
    """Note verifiers for the keys a saved /.well-known/ipx/keys lists as in use (not retired), or all of them.

    A retired key's private half is destroyed at rotation, so a new checkpoint signed by one is not IPX's, whoever
    holds a leaked copy; a checkpoint saved while it was in use stays good (`retired_too`, for the saved state).
    """
    try:
        origin = keys_document["log_origin"]
        if not isinstance(origin, str) or not origin:
            raise TypeError("log_origin is not a name")
        listed = [key for key in keys_document["keys"] if retired_too or not key.get("valid_until")]
        keys = [(key["key_id"], signing.load_public_key_pem(key["public_key_pem"])) for key in listed]
    except (KeyError, TypeError, AttributeError, signing.SignatureError) as exc:
        raise UnusableLocalFile(f"not IPX's published keys: each key needs key_id and public_key_pem, and the log's "
                                f"origin is needed ({exc})") from exc
    for key_id, public_key in keys:
        if signing.key_id(public_key) != key_id:
            raise UnusableLocalFile(f"key {key_id} does not match its public key")
    verifiers = [NoteVerifier(origin, public_key) for _, public_key in keys]
    if not verifiers:
        raise UnusableLocalFile("the keys file lists no key in use")
    return verifiers


def open_served_checkpoint(note: str, verifiers: list[NoteVerifier]) -> Checkpoint:
    try:
        return open_checkpoint(note, verifiers)
    except NoteError as exc:
        raise UnusableLocalFile(
            f"the checkpoint the site served is not signed by a key in use in your keys file ({exc}); if IPX "
            "rotated its key, save /.well-known/ipx/keys again and compare it with the one you had"
        ) from exc


def append_leaves(size: int, frontier: tuple[bytes, ...], leaf_hashes: list[bytes]) -> tuple[bytes, ...]:
    """The compact range of a tree of `size` leaves extended by `leaf_hashes`.

    The frontier holds the roots of the perfect subtrees that make up the tree, largest first (one per 1-bit of
    the size); adding a leaf merges equal-sized subtrees from the right, as a binary counter carries.
    """
    nodes = list(frontier)
    for leaf in leaf_hashes:
        nodes.append(leaf)
        merged, size = size, size + 1
        while merged & 1:
            right = nodes.pop()
            nodes[-1] = merkle.node_hash(nodes[-1], right)
            merged >>= 1
    return tuple(nodes)


def root_of_frontier(size: int, frontier: tuple[bytes, ...]) -> bytes:
    """RFC 9162's tree hash from the compact range: the subtrees folded from the right (smallest first)."""
    if len(frontier) != size.bit_count():
        raise MonitorError(f"a tree of {size} entries has {size.bit_count()} subtrees, not {len(frontier)}")
    if not frontier:
        return merkle.EMPTY_ROOT
    root = frontier[-1]
    for node in reversed(frontier[:-1]):
        root = merkle.node_hash(node, root)
    return root


def check_extends(seen: SeenLog, latest: Checkpoint, latest_note: str, proof: list[bytes]) -> None:
    """Raise LogInconsistent unless the larger of the two trees extends the smaller (`proof` from the smaller size).

    A smaller tree than one seen before is a log that went back, or a second history being shown: a log never
    shrinks, so it must at least be proven part of the larger.
    """
    if latest.origin != seen.origin:
        raise MonitorError(f"the site's log is {latest.origin!r}, the saved state's {seen.origin!r}")
    smaller, larger = sorted((seen, latest), key=lambda tree: tree.size)
    expected = expected_proof_length(smaller.size, larger.size)
    if len(proof) != expected or any(len(node) != merkle.HASH_SIZE for node in proof):
        # a garbled answer proves nothing either way: only a well-formed proof that fails is evidence
        raise MonitorError(f"the site served a malformed consistency proof ({len(proof)} hashes where {expected} "
                           f"of {merkle.HASH_SIZE} bytes belong)")
    try:
        merkle.verify_consistency(smaller.size, larger.size, smaller.root_hash, larger.root_hash, proof)
    except merkle.ProofError as exc:
        reason = (f"IPX signed a tree of {latest.size} entries that is not consistent with the tree of {seen.size} "
                  f"entries it signed before ({exc}): both checkpoints carry IPX's signature, and they cannot both "
                  "be true")
        served = "\n".join(base64.b64encode(node).decode() for node in proof)
        details = f"The consistency proof from {smaller.size} to {larger.size} the site served:\n{served or '(none)'}"
        raise LogInconsistent(reason, seen.checkpoint, latest_note, details=details) from exc


def expected_proof_length(first: int, second: int) -> int:
    """How many hashes RFC 9162's consistency proof between two sizes holds (the proof's shape, not its values)."""
    if first in (0, second):
        return 0
    return len(merkle.consistency_proof(first, second, lambda level, index: bytes(merkle.HASH_SIZE)))


def audit_entries(base: SeenLog, latest: Checkpoint, latest_note: str, leaves: list[bytes]) -> tuple[bytes, ...]:
    """The latest tree's frontier, once the downloaded leaves, hashed here, rebuild its signed root from `base`."""
    if base.frontier is None:
        raise MonitorError("entries can only be added to a tree whose frontier is known")
    leaf_hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    frontier = append_leaves(base.size, base.frontier, leaf_hashes)
    if root_of_frontier(latest.size, frontier) != latest.root_hash:
        reason = (f"the entries {base.size} to {latest.size - 1} the site served do not add up to the tree of "
                  f"{latest.size} entries it signed")
        details = (
            f"Anyone can download entries {base.size} to {latest.size - 1} from /api/v1/log/entries and hash them "
            f"(RFC 9162 leaf hashes) to check this. The SHA-256 of the leaf hashes served here, one after the other: "
            f"{hashlib.sha256(b''.join(leaf_hashes)).hexdigest()}"
        )
        raise LogInconsistent(reason, latest_note, details=details)
    return frontier


@dataclass(frozen=True)
class Observation:
    """One run's finding: `status` is "first seen", "unchanged", "grown" or "older" (a checkpoint smaller than the
    one seen before, proven part of it: a stale copy, nothing to save); `entries` are the new ones, when audited."""

    status: str
    previous_size: int | None
    served_size: int
    seen: SeenLog
    entries: list[tuple[int, Mapping[str, Any]]]


def observe(remote: RemoteLog, seen: SeenLog | None, verifiers: list[NoteVerifier], *, audit: bool) -> Observation:
    """Fetch the site's checkpoint and check it against what was seen before; with `audit`, also download the new
    entries and rebuild the tree from them (from the first entry, when no frontier was kept)."""
    note = remote.checkpoint()
    latest = open_served_checkpoint(note, verifiers)
    previous_size = None if seen is None else seen.size
    if latest.size == 0 and latest.root_hash != merkle.EMPTY_ROOT:
        raise LogInconsistent("IPX signed an empty tree whose root is not the empty tree's", note)
    if seen is not None and seen.size > 0 and latest.size == 0:
        reason = f"the site now serves an empty log after signing a tree of {seen.size} entries"
        raise LogInconsistent(reason, seen.checkpoint, note)
    if seen is not None and seen.size > 0:  # every tree extends the empty one: nothing to prove from size 0
        first, second = sorted((seen.size, latest.size))
        try:
            proof = remote.consistency_proof(first, second)
        except Refused as exc:
            if latest.size >= seen.size:
                raise
            reason = (f"the site went back: it serves a tree of {latest.size} entries after signing one of "
                      f"{seen.size}, and refuses to prove the smaller part of the larger ({exc}), so it no longer "
                      "holds entries it signed")
            raise LogInconsistent(reason, seen.checkpoint, note) from exc
        check_extends(seen, latest, note, proof)
        if latest.size < seen.size:
            return Observation("older", previous_size, latest.size, seen, [])
    status = "first seen" if seen is None else "grown" if latest.size > seen.size else "unchanged"
    if not audit:
        kept = seen.frontier if seen is not None and status == "unchanged" else None  # still this tree's
        accepted = SeenLog(note, latest.origin, latest.size, latest.root_hash, kept)
        return Observation(status, previous_size, latest.size, accepted, [])
    empty = SeenLog(note, latest.origin, 0, merkle.EMPTY_ROOT, ())
    base = seen if seen is not None and seen.frontier is not None else empty
    downloaded = list(remote.leaves(base.size, latest.size))
    frontier = audit_entries(base, latest, note, [leaf for _, leaf in downloaded])
    new_entries = [(index, statement_of(leaf)) for index, leaf in downloaded if index >= (previous_size or 0)]
    accepted = SeenLog(note, latest.origin, latest.size, latest.root_hash, frontier)
    return Observation(status, previous_size, latest.size, accepted, new_entries)


def statement_of(leaf: bytes) -> Mapping[str, Any]:
    """A log entry's statement (its leaf is the statement's canonical JSON); {} for a leaf that is not one."""
    try:
        statement = json.loads(leaf)
    except ValueError:
        return {}
    return statement if isinstance(statement, dict) else {}


class RemoteLog:
    """IPX's public log endpoints, over HTTP."""

    def __init__(self, site: str, client: httpx.Client | None = None) -> None:
        self.site = site.rstrip("/")
        self.client = client or httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS, follow_redirects=True)

    def _get(self, path: str, **params: int) -> httpx.Response:
        try:
            response = self.client.get(f"{self.site}/api/v1/log/{path}", params=params)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise MonitorError(f"cannot reach {self.site} ({exc})") from exc
        if response.status_code != 200:
            answer = response.text[:300].strip()
            detail = f"{self.site} answered {response.status_code} to /api/v1/log/{path} ({answer})"
            busy_or_down = response.status_code >= 500 or response.status_code in (408, 429)
            raise MonitorError(detail) if busy_or_down else Refused(detail)
        return response

    def _json(self, path: str, **params: int) -> Any:
        response = self._get(path, **params)
        try:
            return response.json()
        except (ValueError, RecursionError) as exc:
            raise MonitorError(f"{self.site} answered /api/v1/log/{path} with something other than JSON") from exc

    def checkpoint(self) -> str:
        return self._get("checkpoint").text

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The proof between two sizes; [] when they are equal (nothing to prove, roots compared directly)."""
        if first == second:
            return []
        answer = self._json("proof/consistency", first=first, second=second)
        try:
            return [base64.b64decode(node, validate=True) for node in answer["hashes"]]
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise MonitorError(f"{self.site} served a malformed consistency proof ({exc})") from exc

    def leaves(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """(index, leaf bytes) of entries [start, end), page by page, each checked to be the one asked for."""
        position = start
        while position < end:
            answer = self._json("entries", start=position, end=min(end, position + ENTRIES_PER_REQUEST))
            try:
                page = [(entry["index"], base64.b64decode(entry["leaf"], validate=True)) for entry in answer["entries"]]
            except (KeyError, TypeError, ValueError, binascii.Error) as exc:
                raise MonitorError(f"{self.site} served malformed log entries ({exc})") from exc
            if not page:
                raise MonitorError(f"{self.site} served no entry from {position} although it signed {end}")
            for index, leaf in page:
                if index != position:
                    raise MonitorError(f"{self.site} served entry {index} where {position} was asked for")
                yield index, leaf
                position += 1
                if position == end:
                    return

"""The transparency log: an RFC 9162 Merkle tree stored as leaves and perfect-subtree nodes.

Appends serialize on the single `log_state` row (a row lock on PostgreSQL, the write lock on SQLite),
held until the registration's transaction commits, so leaf indexes form one gap-free sequence even
with many workers, and a rolled-back registration leaves no leaf behind. Every append is followed by
a signed checkpoint in the same transaction, so evidence is complete the moment it is acknowledged.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ipx.errors import IPXError, NotFound
from ipx.registry import merkle
from ipx.registry.keys import Signer
from ipx.registry.models import CheckpointCosignature, LogCheckpoint, LogLeaf, LogNode, LogState
from ipx.registry.note import Checkpoint, add_signatures, sign_note

LOG_STATE_ID = 1
MAX_ENTRIES_PER_PAGE = 1000


class ProofRequestError(IPXError):
    title = "Proof out of range"


@dataclass(frozen=True)
class Appended:
    index: int
    leaf_hash: bytes


def _state(session: Session) -> LogState:
    state = session.get(LogState, LOG_STATE_ID)
    if state is None:
        raise NotFound("The transparency log is not initialized: run `ipx db upgrade`.")
    return state


def origin(session: Session) -> str:
    value = _state(session).origin
    if not value:
        raise NotFound("The transparency log has no origin yet: start the server once.")
    return value


def ensure_origin(session: Session, configured_origin: str) -> str:
    """Fix the origin on first start; afterwards the stored one wins, as checkpoints depend on it."""
    state = _state(session)
    if not state.origin:
        state.origin = configured_origin
    return state.origin


def size(session: Session) -> int:
    return _state(session).size


def _node_reader(session: Session) -> merkle.NodeReader:
    cache: dict[tuple[int, int], bytes] = {}

    def read(level: int, index: int) -> bytes:
        key = (level, index)
        if key not in cache:
            node = session.get(LogNode, key)
            if node is None:
                raise NotFound(f"log node {key} is missing")
            cache[key] = node.hash
        return cache[key]

    return read


def append(session: Session, entry_type: str, build_leaf: Callable[[], bytes]) -> Appended:
    """Take the next index, then build the leaf: anything the leaf timestamps is ordered like the log."""
    new_size = session.execute(
        update(LogState)
        .where(LogState.id == LOG_STATE_ID)
        .values(size=LogState.size + 1)
        .returning(LogState.size)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    index = new_size - 1
    data = build_leaf()
    leaf = merkle.leaf_hash(data)
    session.add(LogLeaf(index=index, entry_type=entry_type, data=data, leaf_hash=leaf))
    read = _node_reader(session)
    for level, position, value in merkle.completed_nodes(index, leaf, read):
        session.add(LogNode(level=level, index=position, hash=value))
    session.flush()
    session.expire(_state(session))
    return Appended(index, leaf)


def hold_appends(session: Session) -> None:
    """Wait for appends in flight and keep new ones out until this transaction ends (key rotation needs that)."""
    session.execute(select(LogState.id).where(LogState.id == LOG_STATE_ID).with_for_update()).one()


def publish_checkpoint(session: Session, signer: Signer) -> LogCheckpoint:
    """The signed checkpoint of the log as it stands, by `signer`: after a key rotation the current size is signed
    again by the new key (same tree head, so notes signed earlier by the old key stay valid)."""
    tree_size = size(session)
    existing = session.get(LogCheckpoint, tree_size)
    if existing is not None and existing.key_id == signer.key_id:
        return existing
    root = merkle.root_hash(tree_size, _node_reader(session))
    note = sign_note(Checkpoint(origin(session), tree_size, root).body(), origin(session), signer.private_key)
    row = existing or LogCheckpoint(tree_size=tree_size, root_hash=root)
    row.note, row.key_id = note, signer.key_id
    session.add(row)
    session.flush()
    return row


def latest_checkpoint(session: Session) -> LogCheckpoint:
    row = session.scalars(select(LogCheckpoint).order_by(LogCheckpoint.tree_size.desc()).limit(1)).first()
    if row is None:
        raise NotFound("No checkpoint has been published yet.")
    return row


def checkpoint_at(session: Session, tree_size: int) -> LogCheckpoint:
    row = session.get(LogCheckpoint, tree_size)
    if row is None:
        raise NotFound(f"No checkpoint was published for tree size {tree_size}.")
    return row


def cosigned_note(session: Session, checkpoint: LogCheckpoint) -> str:
    """The checkpoint's signed note with every witness cosignature kept for it (verifiers ignore witnesses they do
    not know)."""
    lines = session.scalars(
        select(CheckpointCosignature.line).where(CheckpointCosignature.tree_size == checkpoint.tree_size)
        .order_by(CheckpointCosignature.witness)
    )
    return add_signatures(checkpoint.note, list(lines))


def best_witnessed_checkpoint(session: Session, index: int, witnesses: Collection[str]) -> LogCheckpoint:
    """The checkpoint to prove entry `index` against: of those that include it, one cosigned by the most of
    `witnesses`, the ones the log asks now (the newest such), so a verifier requiring their quorum can check it; the
    latest when none is cosigned yet. Retired witnesses' cosignatures do not count: old checkpoints they cosigned
    would otherwise keep winning over new ones that meet the current quorum."""
    best = session.scalars(
        select(CheckpointCosignature.tree_size)
        .where(CheckpointCosignature.tree_size > index, CheckpointCosignature.witness.in_(list(witnesses)))
        .group_by(CheckpointCosignature.tree_size)
        .order_by(func.count().desc(), CheckpointCosignature.tree_size.desc()).limit(1)
    ).first()
    return latest_checkpoint(session) if best is None else checkpoint_at(session, best)


def latest_cosigned(session: Session) -> tuple[int, list[str]] | None:
    """The largest tree size any witness cosigned, and which witnesses did: what the world is known to have seen."""
    tree_size = session.scalar(select(func.max(CheckpointCosignature.tree_size)))
    if tree_size is None:
        return None
    witnesses = session.scalars(
        select(CheckpointCosignature.witness).where(CheckpointCosignature.tree_size == tree_size)
        .order_by(CheckpointCosignature.witness)
    )
    return tree_size, list(witnesses)


def last_cosigned_size(session: Session, witness: str) -> int:
    """The largest tree size `witness` has cosigned for this log, 0 if none: where its next consistency proof
    starts."""
    return session.scalar(
        select(func.max(CheckpointCosignature.tree_size)).where(CheckpointCosignature.witness == witness)
    ) or 0


def keep_cosignature(session: Session, tree_size: int, witness: str, line: str, at: datetime) -> bool:
    """Store a verified cosignature unless the witness's cosignature of that size is already kept; True if stored."""
    if session.get(CheckpointCosignature, (tree_size, witness)) is not None:
        return False
    session.add(CheckpointCosignature(tree_size=tree_size, witness=witness, line=line, cosigned_at=at))
    session.flush()
    return True


def _check_size(session: Session, tree_size: int, name: str) -> None:
    current = size(session)
    if not 0 < tree_size <= current:
        raise ProofRequestError(f"{name}={tree_size} is out of range: the log has {current} entries.")


def inclusion_proof(session: Session, index: int, tree_size: int) -> list[bytes]:
    _check_size(session, tree_size, "size")
    if not 0 <= index < tree_size:
        raise ProofRequestError(f"index={index} is out of range for a tree of size {tree_size}.")
    return merkle.inclusion_proof(index, tree_size, _node_reader(session))


def consistency_proof(session: Session, first: int, second: int) -> list[bytes]:
    _check_size(session, second, "second")
    if not 0 < first <= second:
        raise ProofRequestError(f"first={first} must be between 1 and second={second}.")
    return merkle.consistency_proof(first, second, _node_reader(session))


def leaf(session: Session, index: int) -> LogLeaf:
    row = session.get(LogLeaf, index)
    if row is None:
        raise NotFound(f"No log entry at index {index}.")
    return row


def entries(session: Session, start: int, end: int) -> list[LogLeaf]:
    current = size(session)
    if not 0 <= start < end:
        raise ProofRequestError("start must be at least 0 and smaller than end.")
    if start > current:
        raise ProofRequestError(f"start={start} is out of range: the log has {current} entries.")
    if start == current:  # a mirror that has caught up polls here: nothing new yet, not an error
        return []
    end = min(end, current, start + MAX_ENTRIES_PER_PAGE)
    query = select(LogLeaf).where(LogLeaf.index >= start, LogLeaf.index < end).order_by(LogLeaf.index)
    return list(session.scalars(query))


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()

"""Cosigning a log's checkpoint (https://c2sp.org/tlog-witness, add-checkpoint), step by step as the spec orders them.

A witness's one promise is that it never cosigns two checkpoints of one log that are not consistent with each
other. So the latest cosigned checkpoint is replaced by a compare-and-swap on the size that was checked: two
submissions racing from the same size cannot both win, which would let a log roll the witness back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ipx.audit import service as audit_service
from ipx.audit.models import AuditEvent
from ipx.db import utcnow
from ipx.errors import Conflict, Forbidden, InvalidInput, IPXError, NotFound
from ipx.registry.merkle import EMPTY_ROOT, ProofError, verify_consistency
from ipx.registry.note import Checkpoint, NoteError, NoteVerifier, cosign, open_checkpoint, split_note
from ipx.witness import protocol
from ipx.witness.keys import witness_key
from ipx.witness.models import WitnessedLog

INCONSISTENT_ACTION = "witness.inconsistent_checkpoint"


class MalformedCheckpointRequest(IPXError):
    status_code = 400
    title = "Malformed checkpoint request"


class UnknownLog(NotFound):
    title = "Unknown log"

    def __init__(self, origin: str) -> None:
        super().__init__(f"This witness does not witness the log {origin!r}; its operator lists the logs it does.")


class CheckpointNotSigned(Forbidden):
    title = "Checkpoint not signed"

    def __init__(self, origin: str, reason: str) -> None:
        super().__init__(f"The checkpoint carries no valid signature by a trusted key of {origin!r}: {reason}.")


class OldSizeMismatch(Conflict):
    """The submitter's idea of what this witness last cosigned is stale: it is told the size and sends a new proof."""

    title = "Old size mismatch"

    def __init__(self, size: int) -> None:
        super().__init__(f"The latest checkpoint cosigned for this log has size {size}.")
        self.size = size


class InvalidProof(InvalidInput):
    title = "Invalid consistency proof"


class ForkEvidence(IPXError):
    """A checkpoint validly signed by the log that contradicts one this witness cosigned: evidence of a fork, kept
    (as an audit event) while the checkpoint is refused, so the refusal must not roll the request back."""


class ForkedCheckpoint(ForkEvidence, Conflict):
    title = "Checkpoint conflicts with the cosigned one"


class InconsistentCheckpoint(ForkEvidence, InvalidProof):
    pass


@dataclass(frozen=True)
class WitnessContext:
    """Built once in create_app: who this witness is and which logs' keys it trusts, by origin."""

    name: str
    key_dir: Path
    logs: Mapping[str, tuple[NoteVerifier, ...]]

    @classmethod
    def from_vkeys(cls, name: str, key_dir: Path, vkeys: list[str]) -> WitnessContext:
        logs: dict[str, tuple[NoteVerifier, ...]] = {}
        for verifier in map(NoteVerifier.from_vkey, vkeys):
            logs[verifier.name] = (*logs.get(verifier.name, ()), verifier)
        return cls(name, key_dir, logs)


def _record_inconsistency(
    session: Session, body: bytes, text: str, *, origin: str, reason: str, cosigned: WitnessedLog
) -> None:
    """Keep a validly signed checkpoint that contradicts the cosigned one: with the note this witness cosigned, it is
    what staff show the world. Once per checkpoint `text`, not per request: anyone can replay the log's public
    checkpoints with made-up proofs, and each new body would otherwise add 64 KiB to the audit log. The log's row is
    locked first, so that two submissions of one checkpoint at once keep it once too (PostgreSQL; SQLite serializes
    writers anyway)."""
    session.execute(select(WitnessedLog.origin).where(WitnessedLog.origin == origin).with_for_update())
    subject_id = hashlib.sha256(text.encode()).hexdigest()
    seen = exists().where(AuditEvent.subject_type == "checkpoint", AuditEvent.subject_id == subject_id,
                          AuditEvent.action == INCONSISTENT_ACTION)
    if session.scalar(select(seen)):
        return
    details = {
        "origin": origin, "reason": reason, "submitted": body.decode(),
        "cosigned_size": cosigned.tree_size, "cosigned_note": cosigned.note,
    }
    audit_service.record(session, action=INCONSISTENT_ACTION, subject_type="checkpoint", subject_id=subject_id,
                         details=details)


def _store(
    session: Session, request: protocol.CheckpointRequest, checkpoint: Checkpoint, *, first_sighting: bool
) -> None:
    """Replace the cosigned checkpoint only if it still has the size that was checked (insert it on a first
    sighting): a racing submission that got there first turns this one into a 409."""
    origin, now = checkpoint.origin, utcnow()
    values = {"tree_size": checkpoint.size, "root_hash": checkpoint.root_hash, "note": request.note, "updated_at": now}
    if first_sighting:
        try:
            with session.begin_nested():
                session.add(WitnessedLog(origin=origin, **values))
        except IntegrityError:
            pass
        else:
            return
    else:
        swap = (update(WitnessedLog).where(WitnessedLog.origin == origin, WitnessedLog.tree_size == request.old_size)
                .values(**values).execution_options(synchronize_session=False))
        if session.execute(swap).rowcount == 1:  # type: ignore[attr-defined]
            return
    raise OldSizeMismatch(session.scalar(select(WitnessedLog.tree_size).where(WitnessedLog.origin == origin)) or 0)


def add_checkpoint(session: Session, request_body: bytes, *, witness: WitnessContext) -> str:
    """Check a submitted checkpoint against the latest one cosigned for its log, record it, and return this
    witness's cosignature line (spec order: 400, 404, 403, 400, 409, 409, 422)."""
    # 1. The request's framing and the checkpoint's body (400).
    try:
        request = protocol.parse_request(request_body)
        text = split_note(request.note)[0]  # its origin picks the keys, before any signature is checked
        checkpoint = Checkpoint.parse(text)
    except (protocol.MalformedRequest, NoteError) as exc:
        raise MalformedCheckpointRequest(f"The request is malformed: {exc}.") from exc
    # 2. A log this witness trusts (404), signed by one of its keys (403); other signatures are ignored.
    verifiers = witness.logs.get(checkpoint.origin)
    if not verifiers:
        raise UnknownLog(checkpoint.origin)
    try:
        open_checkpoint(request.note, list(verifiers))
    except NoteError as exc:
        raise CheckpointNotSigned(checkpoint.origin, str(exc)) from exc
    # 3. Sizes (400): the old size is where the proof starts, so it cannot lie beyond the checkpoint.
    if checkpoint.size > protocol.MAX_TREE_SIZE:
        raise MalformedCheckpointRequest(f"The checkpoint's size {checkpoint.size} is beyond 2^63 - 1.")
    if checkpoint.size == 0 and checkpoint.root_hash != EMPTY_ROOT:  # no tree of nothing has another root
        raise MalformedCheckpointRequest("The checkpoint's tree is empty but its root hash is not SHA-256 of nothing.")
    if request.old_size > checkpoint.size:
        raise MalformedCheckpointRequest(
            f"The old size {request.old_size} is larger than the checkpoint's size {checkpoint.size}.")
    # 4. The submitter must start from what this witness last cosigned (409 with that size).
    cosigned = session.get(WitnessedLog, checkpoint.origin)
    if request.old_size != (cosigned.tree_size if cosigned else 0):
        raise OldSizeMismatch(cosigned.tree_size if cosigned else 0)
    # 5. The same size must be the same tree (409), a larger one must extend it (422).
    if cosigned and request.old_size == checkpoint.size and cosigned.root_hash != checkpoint.root_hash:
        reason = f"same size {checkpoint.size} as the cosigned checkpoint, different root hash"
        _record_inconsistency(session, request_body, text, origin=checkpoint.origin, reason=reason, cosigned=cosigned)
        raise ForkedCheckpoint(f"The log signed a checkpoint of size {checkpoint.size} with a different root hash "
                               "than the one this witness cosigned: the log has forked. The checkpoint is kept as "
                               "evidence.")
    if request.old_size == checkpoint.size and request.proof:
        raise InvalidProof("The old size is the checkpoint's size, so the consistency proof must be empty.")
    if request.old_size == 0 and request.proof:
        raise InvalidProof("The old size is 0, so the consistency proof must be empty.")
    if cosigned and 0 < request.old_size < checkpoint.size:
        try:
            verify_consistency(request.old_size, checkpoint.size, cosigned.root_hash, checkpoint.root_hash,
                               request.proof)
        except ProofError as exc:
            reason = f"no consistency from size {request.old_size} to {checkpoint.size}: {exc}"
            _record_inconsistency(session, request_body, text, origin=checkpoint.origin, reason=reason,
                                  cosigned=cosigned)
            raise InconsistentCheckpoint(
                f"The consistency proof from the cosigned size {request.old_size} to {checkpoint.size} does not "
                f"verify ({exc}). The checkpoint is kept as possible evidence of a fork.") from exc
    # 6. Persist before answering, atomically with the size check, then cosign.
    key = witness_key(witness.key_dir)
    _store(session, request, checkpoint, first_sighting=cosigned is None)
    return cosign(text, witness.name, key, int(utcnow().timestamp()))

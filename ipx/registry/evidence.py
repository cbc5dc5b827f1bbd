"""Evidence bundles and their offline verification.

`verify_bundle` trusts nothing but the bundle, the optional file and optional pinned keys: it is what
`ipx verify` runs on a laptop long after IPX is gone, and what `GET /verify/{id}` runs server-side.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from typing import Any

from ipx.registry import merkle, signing
from ipx.registry.note import NoteError, NoteVerifier, open_checkpoint


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class VerificationReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def as_dict(self) -> dict[str, Any]:
        return {"valid": self.ok, "checks": [check.__dict__ for check in self.checks]}


def build_bundle(
    *,
    statement: dict[str, Any],
    signature: bytes,
    key_id: str,
    public_key_pem: str,
    origin: str,
    index: int,
    tree_size: int,
    leaf_hash: bytes,
    inclusion_proof: list[bytes],
    checkpoint: str,
    checkpoint_key: dict[str, str],
) -> dict[str, Any]:
    return {
        "statement": statement,
        "signature": base64.b64encode(signature).decode(),
        "key": {"key_id": key_id, "algorithm": "ed25519", "public_key_pem": public_key_pem},
        "log": {
            "origin": origin,
            "index": index,
            "tree_size": tree_size,
            "leaf_hash": base64.b64encode(leaf_hash).decode(),
            "inclusion_proof": [base64.b64encode(h).decode() for h in inclusion_proof],
            "checkpoint": checkpoint,
            "checkpoint_key": checkpoint_key,
        },
    }


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("expected a base64 string")
    return base64.b64decode(value, validate=True)


def _load_key(report: VerificationReport, name: str, key: Any, pinned: set[str] | None) -> Any:
    try:
        public_key = signing.load_public_key_pem(key["public_key_pem"])
    except (KeyError, TypeError, signing.SignatureError) as exc:
        report.add(name, False, f"the bundle's key cannot be read: {exc}")
        return None
    actual_id = signing.key_id(public_key)
    if actual_id != key.get("key_id"):
        report.add(name, False, f"key_id {key.get('key_id')} does not match the public key ({actual_id})")
        return None
    if pinned is not None and actual_id not in pinned:
        report.add(name, False, f"key {actual_id} is not among the trusted IPX keys you supplied")
        return None
    report.add(name, True, f"Ed25519 key {actual_id[:16]}…" + (" (trusted)" if pinned else ""))
    return public_key


def verify_bundle(
    bundle: dict[str, Any], file_bytes: bytes | None = None, trusted_key_ids: set[str] | None = None
) -> VerificationReport:
    report = VerificationReport()
    try:
        statement, log = bundle["statement"], bundle["log"]
        signature = _b64(bundle["signature"])
        leaf_hash = _b64(log["leaf_hash"])
        proof = [_b64(h) for h in log["inclusion_proof"]]
        index, tree_size, checkpoint_text = int(log["index"]), int(log["tree_size"]), log["checkpoint"]
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        report.add("bundle format", False, f"the bundle is missing or mangles a field: {exc}")
        return report
    report.add("bundle format", True, "all fields present")

    statement_key = _load_key(report, "statement key", bundle.get("key", {}), trusted_key_ids)
    body = signing.canonical_json(statement)
    if statement_key is not None:
        if statement.get("key_id") != bundle["key"]["key_id"]:
            report.add("statement signature", False, "the statement names a different key than the bundle")
        else:
            try:
                signing.verify(statement_key, body, signature)
                report.add("statement signature", True, "Ed25519 signature over the RFC 8785 statement is valid")
            except signing.SignatureError as exc:
                report.add("statement signature", False, f"{exc}: the statement or signature was altered")

    expected_leaf = merkle.leaf_hash(body)
    report.add(
        "log leaf",
        expected_leaf == leaf_hash,
        "leaf hash is SHA-256(0x00 || statement)" if expected_leaf == leaf_hash
        else "the log's leaf hash is not the hash of this statement",
    )

    checkpoint_key_info = log.get("checkpoint_key") or bundle.get("key", {})
    checkpoint_key = _load_key(report, "checkpoint key", checkpoint_key_info, trusted_key_ids)
    if checkpoint_key is not None:
        try:
            checkpoint = open_checkpoint(checkpoint_text, [NoteVerifier(log.get("origin", ""), checkpoint_key)])
        except NoteError as exc:
            report.add("checkpoint signature", False, str(exc))
        else:
            report.add("checkpoint signature", True, f"signed note for {checkpoint.origin}, size {checkpoint.size}")
            if checkpoint.size != tree_size:
                detail = f"proof is for size {tree_size}, checkpoint says {checkpoint.size}"
                report.add("inclusion proof", False, detail)
            else:
                try:
                    merkle.verify_inclusion(index, tree_size, leaf_hash, proof, checkpoint.root_hash)
                    report.add("inclusion proof", True, f"entry {index} is in the log of {tree_size} entries")
                except merkle.ProofError as exc:
                    report.add("inclusion proof", False, str(exc))

    if file_bytes is not None:
        expected = work_sha256(statement)
        digest = hashlib.sha256(file_bytes).hexdigest()
        same = digest == expected
        report.add(
            "file hash",
            same,
            "the file's SHA-256 matches the registered work" if same
            else "this statement names no work's file (a license revocation), so no file can match it"
            if expected is None else f"the file's SHA-256 {digest} differs from the registered {expected}",
        )
    return report


def work_sha256(statement: dict[str, Any]) -> str | None:
    """The SHA-256 of the work a signed statement is about: a registration's own, a license's licensed work."""
    value = statement.get("sha256", statement.get("work_sha256"))
    return value if isinstance(value, str) else None

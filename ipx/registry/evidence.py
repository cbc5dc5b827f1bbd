"""Evidence bundles and their offline verification.

`verify_bundle` trusts nothing but the bundle, the optional file and optional pinned keys: it is what
`ipx verify` runs on a laptop long after IPX is gone, and what `GET /verify/{id}` runs server-side.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ipx.registry import merkle, signing
from ipx.registry.note import NoteError, NoteVerifier, open_checkpoint

# Workers and the host that rotates keys keep their own clocks; a statement may carry a time this much past its
# key's retirement without being refused (rotation holds appends, so any later time is a forgery's).
CLOCK_SKEW = timedelta(seconds=60)
# The field holding the time each kind of signed statement speaks for.
SIGNED_AT_FIELDS = ("registered_at", "issued_at", "revoked_at")


class PublishedKeysError(ValueError):
    """A keys document that is not IPX's /.well-known/ipx/keys."""


@dataclass(frozen=True)
class TrustedKey:
    """A key IPX published: it signed statements dated from `valid_from` until its retirement, if any."""

    valid_from: datetime
    valid_until: datetime | None = None

    def covers(self, at: datetime) -> bool:
        return self.valid_from - CLOCK_SKEW <= at and (self.valid_until is None or at <= self.valid_until + CLOCK_SKEW)


def published_keys(document: Any) -> dict[str, TrustedKey]:
    """The keys of a saved copy of /.well-known/ipx/keys, with their validity windows."""
    try:
        listed = document["keys"] if isinstance(document, dict) else document
        return {
            str(key["key_id"]): TrustedKey(
                _instant(key["valid_from"]), _instant(key["valid_until"]) if key.get("valid_until") else None
            )
            for key in listed
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise PublishedKeysError(f"each key needs key_id and valid_from ({exc})") from exc


def _instant(text: Any) -> datetime:
    """An RFC 3339 time as an aware datetime (naive ones are UTC, as IPX writes them)."""
    value = datetime.fromisoformat(str(text))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


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


def _load_key(report: VerificationReport, name: str, key: Any, pinned: Mapping[str, TrustedKey] | None) -> Any:
    try:
        public_key = signing.load_public_key_pem(key["public_key_pem"])
    except (KeyError, TypeError, AttributeError, signing.SignatureError) as exc:
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


def _check_signing_time(report: VerificationReport, statement: dict[str, Any], window: TrustedKey) -> None:
    """A statement dated outside its key's published window was not signed by IPX then: a retired key that leaked
    could otherwise vouch for registrations "made" after its retirement."""
    field_name = next((name for name in SIGNED_AT_FIELDS if name in statement), None)
    try:
        at = _instant(statement[field_name]) if field_name else None
    except ValueError:
        at = None
    if at is None:
        report.add("signing time", False, "the statement carries no readable time to check against its key")
    elif not window.covers(at):
        until = window.valid_until.isoformat() if window.valid_until else "now"
        report.add("signing time", False, f"{field_name} {at.isoformat()} lies outside the key's validity, "
                                          f"{window.valid_from.isoformat()} to {until}")
    else:
        report.add("signing time", True, f"{field_name} lies inside the key's validity window")


def verify_bundle(
    bundle: dict[str, Any], file_bytes: bytes | None = None, trusted_keys: Mapping[str, TrustedKey] | None = None
) -> VerificationReport:
    """Check a bundle; with `trusted_keys` (IPX's published keys), also that IPX signed it, within the key's window."""
    report = VerificationReport()
    try:
        statement, log = bundle["statement"], bundle["log"]
        signature = _b64(bundle["signature"])
        leaf_hash = _b64(log["leaf_hash"])
        proof = [_b64(h) for h in log["inclusion_proof"]]
        index, tree_size, checkpoint_text = int(log["index"]), int(log["tree_size"]), log["checkpoint"]
        if not isinstance(statement, dict) or not isinstance(checkpoint_text, str):
            raise TypeError("the statement must be a JSON object and the checkpoint a text")
        body = signing.canonical_json(statement)  # refuses numbers RFC 8785 cannot write
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        report.add("bundle format", False, f"the bundle is missing or mangles a field: {exc}")
        return report
    report.add("bundle format", True, "all fields present")

    statement_key = _load_key(report, "statement key", bundle.get("key", {}), trusted_keys)
    if statement_key is not None:
        if statement.get("key_id") != bundle["key"]["key_id"]:
            report.add("statement signature", False, "the statement names a different key than the bundle")
        else:
            try:
                signing.verify(statement_key, body, signature)
                report.add("statement signature", True, "Ed25519 signature over the RFC 8785 statement is valid")
            except signing.SignatureError as exc:
                report.add("statement signature", False, f"{exc}: the statement or signature was altered")
            if trusted_keys is not None:
                _check_signing_time(report, statement, trusted_keys[bundle["key"]["key_id"]])

    expected_leaf = merkle.leaf_hash(body)
    report.add(
        "log leaf",
        expected_leaf == leaf_hash,
        "leaf hash is SHA-256(0x00 || statement)" if expected_leaf == leaf_hash
        else "the log's leaf hash is not the hash of this statement",
    )

    checkpoint_key_info = log.get("checkpoint_key") or bundle.get("key", {})
    checkpoint_key = _load_key(report, "checkpoint key", checkpoint_key_info, trusted_keys)
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

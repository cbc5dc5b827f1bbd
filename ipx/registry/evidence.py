"""Evidence bundles and their offline verification.

`verify_bundle` trusts nothing but the bundle, the optional file and IPX's published keys (a saved copy of
/.well-known/ipx/keys): it is what `ipx verify` runs on a laptop long after IPX is gone, and what `GET /verify/{id}`
runs server-side. The keys are not optional: a bundle carries its own public key, and anyone can make a bundle whose
signature, leaf, checkpoint and proof all agree with a key of their own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509

from ipx.registry import merkle, signing, timestamps
from ipx.registry.note import Checkpoint, NoteError, NoteVerifier, open_checkpoint
from ipx.registry.witnesses import WitnessPolicy

# Workers and the host that rotates keys keep their own clocks; a statement may carry a time this much past its
# key's retirement without being refused (rotation holds appends, so any later time is a forgery's).
CLOCK_SKEW = timedelta(seconds=60)
REGISTRATION_TYPE = "ipx.registration/v1"
LICENSE_TYPE = "ipx.license/v1"
REVOCATION_TYPE = "ipx.license-revocation/v1"
# The one field holding the time each kind of signed statement speaks for.
SIGNED_AT = {REGISTRATION_TYPE: "registered_at", LICENSE_TYPE: "issued_at", REVOCATION_TYPE: "revoked_at"}


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


def published_witness_policy(document: Any) -> WitnessPolicy | None:
    """The witnesses, and how many of them, whose cosignatures a saved /.well-known/ipx/keys asks of checkpoints."""
    policy = document.get("witnesses") if isinstance(document, dict) else None
    if not policy:
        return None
    try:
        return WitnessPolicy.from_document(policy)
    except ValueError as exc:
        raise PublishedKeysError(str(exc)) from exc


def published_timestamp_roots(document: Any) -> list[x509.Certificate]:
    """The root certificates of the time-stamping authority a saved /.well-known/ipx/keys names, if any."""
    authority = document.get("timestamp_authority") if isinstance(document, dict) else None
    if not authority:
        return []
    try:
        return x509.load_pem_x509_certificates(str(authority["root_certificates_pem"]).encode())
    except (KeyError, TypeError, ValueError) as exc:
        raise PublishedKeysError(f"the time-stamping authority's root certificates cannot be read ({exc})") from exc


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
    statement_type: str | None = None
    proves: str | None = None  # what the statement, once verified, proves: a sentence
    revoked: str | None = None  # for a license bundle carrying its verified revocation: when and why
    timestamped: str | None = None  # an outside authority's verified RFC 3161 time for the statement
    witnessed: str | None = None  # the witnesses whose verified cosignatures make up the quorum asked for

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def as_dict(self) -> dict[str, Any]:
        """`valid` alone cannot tell a registration from a license: `type` and `proves` say what was verified."""
        return {
            "valid": self.ok, "type": self.statement_type, "proves": self.proves if self.ok else None,
            "revoked": self.revoked if self.ok else None, "timestamped": self.timestamped if self.ok else None,
            "witnessed": self.witnessed if self.ok else None,
            "checks": [check.__dict__ for check in self.checks],
        }


def what_it_proves(statement: dict[str, Any]) -> str:
    """What a verified statement proves, in a sentence, for each kind IPX signs into its log."""

    def party(role: str) -> str:
        who = statement.get(role)
        who = who if isinstance(who, dict) else {}
        return f"{who.get('display_name')} (account {who.get('account_id')})"

    if statement.get("type") == LICENSE_TYPE:
        return (
            f"license {statement.get('license_id')} to the work {statement.get('work_id')} (sha256 "
            f"{statement.get('work_sha256')}) was granted by {party('licensor')} to {party('licensee')} no later "
            f"than {statement.get('issued_at')}"
        )
    if statement.get("type") == REVOCATION_TYPE:
        return (
            f"license {statement.get('license_id')} was revoked no later than {statement.get('revoked_at')} "
            f"(“{statement.get('reason')}”)"
        )
    return (
        f"“{statement.get('title')}” (sha256 {statement.get('sha256')}) was registered by {party('creator')} no "
        f"later than {statement.get('registered_at')}"
    )


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
    timestamp: dict[str, str] | None = None,
) -> dict[str, Any]:
    bundle = {
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
    if timestamp:
        bundle["timestamp"] = timestamp
    return bundle


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("expected a base64 string")
    return base64.b64decode(value, validate=True)


def _load_key(report: VerificationReport, name: str, key: Any, trusted: Mapping[str, TrustedKey]) -> Any:
    try:
        public_key = signing.load_public_key_pem(key["public_key_pem"])
    except (KeyError, TypeError, AttributeError, signing.SignatureError) as exc:
        report.add(name, False, f"the bundle's key cannot be read: {exc}")
        return None
    actual_id = signing.key_id(public_key)
    if actual_id != key.get("key_id"):
        report.add(name, False, f"key_id {key.get('key_id')} does not match the public key ({actual_id})")
        return None
    if actual_id not in trusted:
        report.add(name, False, f"key {actual_id} is not among IPX's published keys: IPX did not sign this")
        return None
    report.add(name, True, f"Ed25519 key {actual_id[:16]}…, published by IPX")
    return public_key


def _check_signing_time(report: VerificationReport, statement: dict[str, Any], window: TrustedKey) -> None:
    """A statement dated outside its key's published window was not signed by IPX then: a retired key that leaked
    could otherwise vouch for registrations "made" after its retirement. The time checked is the one field the
    statement's type speaks for; a statement carrying another type's time field too is refused, or a forger could
    add a harmless date inside the window beside the one that matters."""
    field_name = SIGNED_AT[statement["type"]]
    foreign = sorted((set(SIGNED_AT.values()) - {field_name}) & statement.keys())
    try:
        at = _instant(statement[field_name]) if field_name in statement else None
    except ValueError:
        at = None
    if foreign:
        report.add("signing time", False, f"a {statement['type']} statement carries {foreign[0]}, which IPX writes "
                                          "only into another kind of statement")
    elif at is None:
        report.add("signing time", False, f"the statement carries no readable {field_name} to check against its key")
    elif not window.covers(at):
        until = window.valid_until.isoformat() if window.valid_until else "now"
        report.add("signing time", False, f"{field_name} {at.isoformat()} lies outside the key's validity, "
                                          f"{window.valid_from.isoformat()} to {until}")
    else:
        report.add("signing time", True, f"{field_name} lies inside the key's validity window")


def _is_count(value: Any) -> bool:
    """A JSON whole number: not a bool, a float, a string or a negative number, which int() would wave through."""
    return type(value) is int and value >= 0


def verify_bundle(
    bundle: Any, file_bytes: bytes | None, trusted_keys: Mapping[str, TrustedKey],
    timestamp_roots: Sequence[x509.Certificate] = (), witnesses: WitnessPolicy | None = None,
) -> VerificationReport:
    """Check that IPX signed the statement with a key it published, within that key's window, and logged it; given
    the file, that it is the work. A license bundle that carries its revocation is checked whole, and said revoked;
    a bundle's RFC 3161 timestamp is checked against `timestamp_roots` (left unchecked without them); with
    `witnesses`, its checkpoint must carry a quorum of their cosignatures."""
    report = _verify_entry(bundle, trusted_keys, witnesses)
    if report.checks[0].ok and file_bytes is not None:
        expected = work_sha256(bundle["statement"])
        digest = hashlib.sha256(file_bytes).hexdigest()
        same = digest == expected
        report.add(
            "file hash",
            same,
            "the file's SHA-256 matches the work the statement is about" if same
            else "this statement names no work's file (a license revocation), so no file can match it"
            if expected is None else f"the file's SHA-256 {digest} differs from the work's, {expected}",
        )
    if report.checks[0].ok and "revocation" in bundle:
        _check_revocation(report, bundle["statement"], bundle["revocation"], trusted_keys)
    if report.checks[0].ok and "timestamp" in bundle and timestamp_roots:
        _check_timestamp(report, bundle["statement"], bundle["timestamp"], timestamp_roots)
    return report


def _check_timestamp(
    report: VerificationReport, statement: dict[str, Any], stamp: Any, roots: Sequence[x509.Certificate]
) -> None:
    try:
        response, authority = _b64(stamp["response"]), str(stamp["authority"])
        at = timestamps.token_time(response, signing.canonical_json(statement), list(roots))
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        report.add("timestamp", False, f"the bundle's RFC 3161 timestamp does not verify: {exc}")
        return
    report.timestamped = f"{authority} attests that the statement existed by {at.isoformat()}"
    report.add("timestamp", True, f"RFC 3161 token of {authority}, chained to its published root: {at.isoformat()}")


def _check_revocation(
    report: VerificationReport, statement: dict[str, Any], revocation: Any, trusted_keys: Mapping[str, TrustedKey]
) -> None:
    nested = _verify_entry(revocation, trusted_keys)
    failed = "; ".join(f"{c.name}: {c.detail}" for c in nested.checks if not c.ok)
    if failed:
        report.add("revocation", False, f"the bundle's revocation does not verify ({failed})")
    elif statement["type"] != LICENSE_TYPE or nested.statement_type != REVOCATION_TYPE:
        report.add("revocation", False, "only a license bundle can carry a revocation, and only a revocation there")
    elif revocation["statement"].get("license_id") != statement.get("license_id"):
        report.add("revocation", False, "the revocation is of another license")
    else:
        report.add("revocation", True, "the license's revocation is signed and logged too")
        report.revoked = nested.proves


def _verify_entry(
    bundle: Any, trusted_keys: Mapping[str, TrustedKey], witnesses: WitnessPolicy | None = None
) -> VerificationReport:
    """Everything but the file: format, keys, signature, signing time, leaf, checkpoint, inclusion."""
    report = VerificationReport()
    try:
        statement, log = bundle["statement"], bundle["log"]
        signature = _b64(bundle["signature"])
        leaf_hash = _b64(log["leaf_hash"])
        proof = [_b64(h) for h in log["inclusion_proof"]]
        index, tree_size, checkpoint_text = log["index"], log["tree_size"], log["checkpoint"]
        if not isinstance(statement, dict) or not isinstance(checkpoint_text, str) or not isinstance(
                log.get("origin", ""), str):
            raise TypeError("the statement must be a JSON object, the checkpoint and the log's origin texts")
        if not (_is_count(index) and _is_count(tree_size) and index < tree_size):
            raise ValueError(f"log index {index!r} must be a whole number below the tree size {tree_size!r}")
        if statement.get("type") not in SIGNED_AT:
            raise ValueError(f"statement type {statement.get('type')!r} is none IPX signs")
        body = signing.canonical_json(statement)  # refuses numbers RFC 8785 cannot write
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        report.add("bundle format", False, f"the bundle is missing or mangles a field: {exc}")
        return report
    report.add("bundle format", True, "all fields present")
    report.statement_type, report.proves = statement["type"], what_it_proves(statement)

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
            checkpoint = open_checkpoint(
                checkpoint_text,
                [NoteVerifier(log.get("origin", ""), checkpoint_key), *(witnesses.verifiers if witnesses else ())],
            )
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
            if witnesses is not None:
                _check_cosignatures(report, checkpoint, witnesses)
    return report


def _check_cosignatures(report: VerificationReport, checkpoint: Checkpoint, witnesses: WitnessPolicy) -> None:
    """A quorum of the named witnesses must have cosigned: each says it was shown this tree head and that it extends
    every earlier one it saw, so the checkpoint is not one only this verifier is shown."""
    cosigned = dict(checkpoint.cosigned_at)
    named = ", ".join(f"{name} ({_cosignature_time(at)})" for name, at in cosigned.items())
    if len(cosigned) >= witnesses.quorum:
        report.witnessed = f"cosigned by {named}"
        report.add("witness cosignatures", True, f"{len(cosigned)} of the witnesses cosigned the checkpoint, "
                                                 f"{witnesses.quorum} required: {named}")
        return
    report.add(
        "witness cosignatures", False,
        f"the checkpoint (size {checkpoint.size}) is cosigned by {len(cosigned)} of the {witnesses.quorum} witnesses "
        f"required{f' ({named})' if named else ''}; IPX asks its witnesses to cosign new checkpoints every few "
        "minutes, so a bundle for a new entry verifies once they have: download it again later",
    )


def _cosignature_time(at: int) -> str:
    """A cosignature's time, as a date where it is one: a witness's key can sign any time up to 2^63 - 1 seconds."""
    try:
        return datetime.fromtimestamp(at, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return f"time {at}, beyond any date"


def work_sha256(statement: dict[str, Any]) -> str | None:
    """The SHA-256 of the work a signed statement is about: a registration's own, a license's licensed work."""
    value = statement.get("sha256", statement.get("work_sha256"))
    return value if isinstance(value, str) else None

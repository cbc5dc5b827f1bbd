"""Registering works: validate, store, sign, log, in one transaction (no HTTP, no commit here)."""

from __future__ import annotations

import base64
import json
import mimetypes
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from ipx.accounts.models import User
from ipx.accounts.service import Principal
from ipx.audit import service as audit_service
from ipx.blobs import BlobStore, RecentDigests
from ipx.db import contains_pattern, page_of, utcnow
from ipx.errors import Conflict, Forbidden, InvalidInput, IPXError, NotFound
from ipx.fingerprint.engine import ComputedFingerprints, FingerprintEngine
from ipx.fingerprint.pixels import Frame
from ipx.registry import evidence, keys, log, media, previews, signing
from ipx.registry.models import LogLeaf, LogTimestamp, PriorMatch, SigningKey, Work, WorkFingerprint
from ipx.registry.note import NoteVerifier
from ipx.registry.schemas import RegistrationForm
from ipx.registry.timestamps import Authority
from ipx.registry.witnesses import WitnessPolicy


@dataclass(frozen=True)
class Upload:
    """A fully received upload, spooled to a private temporary file and hashed on the way in."""

    path: Path
    sha256: str
    size: int
    filename: str | None
    content_type: str | None


@dataclass(frozen=True)
class SimilarWork:
    work: Work
    method: str
    distance: float
    similarity: float
    passages: list[dict[str, Any]] | None = None
    region: Frame | None = None  # where the work appears in the upload (images matched by keypoints)
    registered_region: Frame | None = None  # which part of the work the upload shows


@dataclass
class RegistryContext:
    blobs: BlobStore
    key_dir: Path
    public_url: str
    fingerprints: FingerprintEngine
    timestamp_authority: Authority | None = None
    witness_policy: WitnessPolicy | None = None
    stored_digests: RecentDigests = field(init=False)

    @property
    def witness_names(self) -> frozenset[str]:
        """The witnesses the log asks now: whose cosignatures choose a bundle's checkpoint."""
        return frozenset(w.name for w in self.witness_policy.witnesses) if self.witness_policy else frozenset()

    def __post_init__(self) -> None:
        self.stored_digests = RecentDigests(self.blobs)


@dataclass
class Registration:
    work: Work
    owner: Principal
    prior_similar: list[SimilarWork] = field(default_factory=list)
    detection: ComputedFingerprints = field(default_factory=ComputedFingerprints)


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _statement(
    *, work_id: str, upload: Upload, media_type: str, work_type: str, form: RegistrationForm,
    owner: Principal, fingerprints: dict[str, Any], registered_at: datetime, key_id: str,
) -> dict[str, Any]:
    creators = form.creators or []
    statement: dict[str, Any] = {
        "type": evidence.REGISTRATION_TYPE,
        "work_id": work_id,
        "sha256": upload.sha256,
        "size": upload.size,
        "media_type": media_type,
        "title": form.title,
        "work_type": work_type,
        "creators": [
            {"name": c.name, "share_bps": int(c.share * 100), **({"role": c.role} if c.role else {})}
            for c in creators
        ] or [{"name": owner.display_name, "share_bps": 10000}],
        "publication": {
            "published": form.published, **({"where": form.published_where} if form.published_where else {})
        },
        "creator": {"account_id": owner.id, "display_name": owner.display_name},
        "fingerprints": fingerprints,
        "registered_at": rfc3339(registered_at),
        "key_id": key_id,
    }
    if form.description:
        statement["description"] = form.description
    if form.year_created is not None:
        statement["year_created"] = form.year_created
    return statement


def _reject_bad_upload(upload: Upload) -> str:
    if upload.size == 0:
        raise InvalidInput("The file is empty (0 bytes): attach the file itself.")
    with upload.path.open("rb") as source:
        head = source.read(media.SNIFF_BYTES)
    media_type = media.sniff(head)
    problem = media.mislabel(media.claimed_media_type(upload.filename, upload.content_type), media_type)
    if problem:
        raise InvalidInput(problem + " Upload the original file.")
    return media_type


@dataclass(frozen=True)
class SignedEntry:
    """A statement signed with the active key and appended to the transparency log."""

    statement: dict[str, Any]
    body: bytes
    signature: bytes
    key_id: str
    index: int
    at: datetime


def append_signed(
    session: Session, key_dir: Path, entry_type: str, build: Callable[[str, datetime], dict[str, Any]]
) -> SignedEntry:
    """Sign `build(key_id, at)` and append it to the log, then publish a checkpoint.

    The statement is built and timestamped inside the log's append, once its index is taken, so no entry
    claims a time earlier than the entry before it.
    """
    signed: dict[str, Any] = {}

    def build_leaf() -> bytes:
        # Chosen under the log's lock, like the time: a key rotation (which holds appends) cannot fall between
        # them, so every statement's time lies inside its key's published validity window.
        signer = keys.active_signer(session, key_dir)
        at = utcnow()
        statement = build(signer.key_id, at)
        body, signature = signing.sign_statement(signer.private_key, statement)
        signed.update(signer=signer, statement=statement, body=body, signature=signature, at=at)
        return body

    appended = log.append(session, entry_type, build_leaf)
    signer = signed.pop("signer")
    log.publish_checkpoint(session, signer)
    return SignedEntry(key_id=signer.key_id, index=appended.index, **signed)


def published_keys_document(
    session: Session, authority: Authority | None = None, witnesses: WitnessPolicy | None = None
) -> dict[str, Any]:
    """/.well-known/ipx/keys: every key IPX has signed with, current and retired, with its validity window — what
    every evidence bundle is checked against — the time-stamping authority whose tokens the bundles carry, and the
    witnesses whose cosignatures their checkpoints need."""
    origin = log.origin(session)
    return {
        **({"timestamp_authority": {"url": authority.url, "root_certificates_pem": authority.roots_pem.decode()}}
           if authority else {}),
        **({"witnesses": witnesses.document()} if witnesses else {}),
        "log_origin": origin,
        "keys": [
            {
                "key_id": key.key_id,
                "algorithm": key.algorithm,
                "public_key_pem": key.public_key_pem,
                "note_verifier_key": NoteVerifier(origin, signing.load_public_key_pem(key.public_key_pem)).vkey,
                "valid_from": key.valid_from,
                "valid_until": key.valid_until,
                "status": "active" if key.valid_until is None else "retired",
            }
            for key in keys.all_keys(session)
        ],
    }


def unstamped_entries(session: Session, *, limit: int) -> list[tuple[int, bytes]]:
    """Log entries (index, statement) that have no outside timestamp yet, oldest first, at most `limit`."""
    rows = session.execute(
        select(LogLeaf.index, LogLeaf.data).outerjoin(LogTimestamp, LogTimestamp.index == LogLeaf.index)
        .where(LogTimestamp.index.is_(None)).order_by(LogLeaf.index).limit(limit)
    )
    return [(index, statement) for index, statement in rows]


def keep_timestamp(session: Session, index: int, authority_url: str, response: bytes, at: datetime) -> bool:
    """Store a verified token for a log entry, unless one is there already (another run's); True when stored."""
    if session.get(LogTimestamp, index) is not None:
        return False
    session.add(LogTimestamp(index=index, authority_url=authority_url, response=response, stamped_at=at))
    session.flush()
    return True


def rotate_key(session: Session, key_dir: Path) -> SigningKey:
    """Retire the active key and sign with a new one from now on, starting with the log's current checkpoint.

    Appends are held meanwhile, so no statement signed by the old key is dated after its retirement.
    """
    log.hold_appends(session)
    key = keys.rotate(session, key_dir)
    log.publish_checkpoint(session, keys.active_signer(session, key_dir))
    return key


def _refuse_second_registration(session: Session, owner: Principal, sha256: str, ctx: RegistryContext) -> None:
    existing = session.scalar(select(Work).where(Work.owner_id == owner.id, Work.sha256 == sha256))
    if existing is not None:
        raise Conflict(
            f"You already registered this exact file as “{existing.title}” on {rfc3339(existing.registered_at)}.",
            work_id=existing.id, work_url=f"{ctx.public_url}/api/v1/works/{existing.id}",
        )


def register(
    session: Session, *, owner: Principal, upload: Upload, form: RegistrationForm, ctx: RegistryContext
) -> Registration:
    media_type = _reject_bad_upload(upload)
    # Fingerprint before the first database statement: on SQLite that statement takes the write lock.
    computed = ctx.fingerprints.compute(upload.path.read_bytes(), media_type)
    preview = None if computed.picture is None else previews.preview_jpeg(computed.picture)
    _refuse_second_registration(session, owner, upload.sha256, ctx)
    prior = _prior_similar(session, owner, upload.sha256, computed, ctx)

    ctx.blobs.put_file(upload.sha256, upload.path)
    work_id = str(uuid.uuid4())
    work_type = form.work_type or media.work_type_for(media_type)
    entry = append_signed(session, ctx.key_dir, evidence.REGISTRATION_TYPE, lambda key_id, registered_at: _statement(
        work_id=work_id, upload=upload, media_type=media_type, work_type=work_type, form=form, owner=owner,
        fingerprints=computed.public, registered_at=registered_at, key_id=key_id,
    ))
    prior = _with_copies_registered_meanwhile(session, owner, upload.sha256, prior)
    statement = entry.statement
    work = Work(
        id=work_id, owner_id=owner.id, sha256=upload.sha256, size=upload.size, media_type=media_type,
        original_filename=(upload.filename or "")[:255] or None, title=form.title, work_type=work_type,
        details={k: statement[k] for k in ("creators", "publication", "description", "year_created") if k in statement},
        statement=entry.body, signature=entry.signature, key_id=entry.key_id,
        log_index=entry.index, registered_at=entry.at,
    )
    try:
        with session.begin_nested():
            session.add(work)
    except IntegrityError:  # the same owner's same file, sent twice at once, committed first by the other request
        _refuse_second_registration(session, owner, upload.sha256, ctx)
        raise
    for match in prior:
        session.add(PriorMatch(
            work_id=work_id, prior_work_id=match.work.id, method=match.method, distance=match.distance,
            similarity=match.similarity, region_in_work=_listed(match.region),
            region_in_prior_work=_listed(match.registered_region),
        ))
    for kind, data in computed.stored.items():
        session.add(WorkFingerprint(work_id=work_id, kind=kind, data=data, seq=entry.index))
    if preview is not None:
        previews.keep_preview(session, work_id, preview)
    audit_service.record(
        session, action="work.registered", subject_type="work", subject_id=work_id, actor_id=owner.id,
        details={"sha256": upload.sha256, "log_index": entry.index, "prior_similar": len(prior)},
    )
    if computed.parsed:
        engine = ctx.fingerprints
        session.info.setdefault("after_commit", []).append(lambda: engine.add_computed(work_id, computed))
    if prior:
        from ipx.complaints.review import alert_prior_owners  # imported on use: complaints builds on the registry

        alert_prior_owners(session, work_id)
    return Registration(work, owner, prior, computed)


def _with_copies_registered_meanwhile(
    session: Session, owner: Principal, sha256: str, prior: list[SimilarWork]
) -> list[SimilarWork]:
    """`prior`, plus other accounts' registrations of the same file that committed while this one waited for the
    log's lock. PostgreSQL runs two registrations side by side up to the append, so each looked before the other
    existed and neither was flagged; under the lock (held to commit) the earlier one is visible. Exact copies only:
    a perceptual search under the lock would make every registration wait for it."""
    flagged = {match.work.id for match in prior}
    meanwhile = [
        SimilarWork(work, "sha256", 0.0, 1.0)
        for work in session.scalars(
            select(Work).where(Work.sha256 == sha256, Work.owner_id != owner.id).order_by(Work.registered_at)
        )
        if work.id not in flagged
    ]
    return meanwhile + prior


def _listed(region: Frame | None) -> list[float] | None:
    return None if region is None else list(region)


def _prior_similar(
    session: Session, owner: Principal, sha256: str, computed: ComputedFingerprints, ctx: RegistryContext
) -> list[SimilarWork]:
    """Earlier works of other accounts that this upload matches exactly or perceptually, best first."""
    return [m for m in find_matches(session, sha256, computed, ctx) if m.work.owner_id != owner.id]


def find_matches(
    session: Session, sha256: str, computed: ComputedFingerprints, ctx: RegistryContext
) -> list[SimilarWork]:
    """Registered works equal to, or perceptually like, an upload: exact first, then best similarity."""
    found: dict[str, SimilarWork] = {}
    for work in session.scalars(select(Work).where(Work.sha256 == sha256).order_by(Work.registered_at)):
        found[work.id] = SimilarWork(work, "sha256", 0.0, 1.0)
    if computed.parsed:
        ctx.fingerprints.catch_up(session)
        similar = ctx.fingerprints.similar(computed, session)
        by_id = works_by_id(session, {match.work_id for match in similar} - found.keys())  # each shown with its owner
        for match in similar:
            if (work := by_id.get(match.work_id)) is not None and match.work_id not in found:
                found[match.work_id] = SimilarWork(
                    work, match.method, match.distance, match.similarity, match.passages, match.region,
                    match.registered_region,
                )
    return sorted(found.values(), key=lambda m: (-m.similarity, m.distance, m.work.registered_at))


@dataclass(frozen=True)
class UploadMatches:
    media_type: str
    detection: ComputedFingerprints
    exact: list[SimilarWork]
    similar: list[SimilarWork]


def match_upload(
    session: Session, upload: Upload, ctx: RegistryContext, *, exact_only_because: str | None = None
) -> UploadMatches:
    """Public verification of a file: which registered works it is, or resembles. Nothing is stored.

    With `exact_only_because` the file is not read for fingerprints (a folder scan's file too big to hold in
    memory): only its SHA-256 is looked up, and the reason is reported as the detection note.
    """
    media_type = _reject_bad_upload(upload)
    if exact_only_because is None:
        computed = ctx.fingerprints.compute(upload.path.read_bytes(), media_type)
    else:
        computed = ComputedFingerprints(note=exact_only_because)
    matches = find_matches(session, upload.sha256, computed, ctx)
    return UploadMatches(
        media_type, computed, [m for m in matches if m.method == "sha256"], [m for m in matches if m.method != "sha256"]
    )


@dataclass(frozen=True)
class RefingerprintReport:
    updated: list[str]
    unchanged: int
    failed: list[tuple[str, str]]  # (work id, why)


def refingerprint_works(session: Session, ctx: RegistryContext) -> RefingerprintReport:
    """Recompute every work's stored index fingerprints from its file, in registration order.

    For after a change to the fingerprint algorithms (trimming, say): a copy is fingerprinted the new way,
    so the registered originals must be too. Workers rebuild their indexes from these rows at start-up, so
    restart them afterwards. The signed statements are not touched: the hashes they hold were computed from
    the file at registration and stay true of it.
    """
    updated: list[str] = []
    unchanged = 0
    failed: list[tuple[str, str]] = []
    for work in session.scalars(select(Work).order_by(Work.log_index)):
        try:
            computed = ctx.fingerprints.compute(ctx.blobs.read(work.sha256), work.media_type)
        except FileNotFoundError:
            failed.append((work.id, "its file is not in the blob store"))
            continue
        except IPXError as exc:
            failed.append((work.id, exc.detail))
            continue
        rows = session.scalars(select(WorkFingerprint).where(WorkFingerprint.work_id == work.id))
        stored = {row.kind: row for row in rows}
        if {kind: row.data for kind, row in stored.items()} == computed.stored:
            unchanged += 1
            continue
        for kind, row in stored.items():
            if kind not in computed.stored:
                session.delete(row)
        for kind, data in computed.stored.items():
            if kind in stored:
                stored[kind].data = data
            else:
                session.add(WorkFingerprint(work_id=work.id, kind=kind, data=data, seq=work.log_index))
        updated.append(work.id)
    return RefingerprintReport(updated, unchanged, failed)


def get_work(session: Session, work_id: str, *, for_update: bool = False) -> Work:
    """A work; `for_update` locks its row until the transaction ends (re-read, so it is current)."""
    work = session.get(Work, work_id, with_for_update=for_update, populate_existing=for_update)
    if work is None:
        raise NotFound(f"No registered work has the id {work_id}.")
    return work


@dataclass(frozen=True)
class StoredFile:
    """A registered file as it is handed out: the stored bytes' name, and what to call them on the way."""

    sha256: str
    size: int
    media_type: str
    filename: str


def stored_file(work: Work) -> StoredFile:
    """The work's file under the name it was uploaded with, made safe to save (no folders, no control characters);
    a work uploaded without a name is called after its id, with its type's usual extension."""
    name = PurePosixPath((work.original_filename or "").replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".")
    if not name:
        name = f"ipx-work-{work.id}{mimetypes.guess_extension(work.media_type) or ''}"
    return StoredFile(work.sha256, work.size, work.media_type, name)


def own_file(session: Session, work_id: str, caller: Principal) -> StoredFile:
    """The registered file, for the account that registered it (and staff, who judge complaints about it).

    Buyers get the file through their license instead, which checks that the license still stands."""
    work = get_work(session, work_id)
    if caller.id != work.owner_id and not caller.is_staff:
        raise Forbidden("Only the account that registered this work can download its file here; a buyer downloads "
                        "it from the page of their license.")
    return stored_file(work)


def owner_of(session: Session, work: Work) -> User:
    user = session.get(User, work.owner_id)  # no query when the work's page of search results loaded it
    if user is None:
        raise NotFound("The owner of this work no longer exists.")
    return user


def works_by_id(session: Session, work_ids: Collection[str]) -> dict[str, Work]:
    """These works with their registrants, in two queries (lists that show each work's owner)."""
    query = select(Work).where(Work.id.in_(list(work_ids))).options(selectinload(Work.owner))
    return {work.id: work for work in session.scalars(query)}


def statement_of(work: Work) -> dict[str, Any]:
    return json.loads(work.statement)


MAX_LISTED_OWNERS = 500  # a name search matching more accounts is given to the database as a subquery


def search_works(
    session: Session, *, sha256: str | None, q: str | None, owner_id: str | None, page: int, page_size: int,
    oldest_first: bool = False,
) -> tuple[list[Work], int]:
    """Works by exact hash, title or creator text, or owner; newest first, or oldest first (who registered a file
    first is what a look-up by hash is for)."""
    query = select(Work)
    if sha256:
        query = query.where(Work.sha256 == sha256.lower())
    if owner_id:
        query = query.where(Work.owner_id == owner_id)
    if q:
        # PostgreSQL finds a rare word through the trigram indexes (10 ms at 100,000 works) only when it knows which
        # accounts' names match; asked with a subquery, it walks every work newest first, hoping to fill a page early
        # (115 ms). So those accounts are read first, when they are few.
        pattern = contains_pattern(q.strip().lower())
        named = select(User.id).where(func.lower(User.display_name).like(pattern, escape="\\"))
        owners = session.scalars(named.limit(MAX_LISTED_OWNERS + 1)).all()
        owned = Work.owner_id.in_(owners if len(owners) <= MAX_LISTED_OWNERS else named)
        query = query.where(or_(func.lower(Work.title).like(pattern, escape="\\"), owned))
    # every hit shows its registrant: one query for the page, not one a work
    return page_of(
        session, query.options(selectinload(Work.owner)),
        Work.registered_at.asc() if oldest_first else Work.registered_at.desc(), page=page, page_size=page_size,
    )


def registrant_name(session: Session, account_id: str) -> str | None:
    """The display name of an account that has registered works, which every one of its records shows; None for an
    account that has registered nothing (a buyer's name is not the registry's to publish) or does not exist."""
    registered = exists().where(Work.owner_id == User.id)
    return session.scalar(select(User.display_name).where(User.id == account_id, registered))


def works_of(session: Session, owner_id: str) -> list[Work]:
    """Every work an account registered, oldest first."""
    return list(session.scalars(select(Work).where(Work.owner_id == owner_id).order_by(Work.log_index)))


def prior_matches_of(session: Session, work_id: str) -> list[SimilarWork]:
    rows = session.scalars(select(PriorMatch).where(PriorMatch.work_id == work_id).order_by(PriorMatch.id))
    return [SimilarWork(get_work(session, r.prior_work_id), r.method, r.distance, r.similarity) for r in rows]


def evidence_bundle(
    session: Session, *, statement: bytes, signature: bytes, key_id: str, index: int, witnesses: Collection[str]
) -> dict[str, Any]:
    """The offline bundle for any signed log entry, proven against the checkpoint most of `witnesses` cosigned (the
    latest when none is), with the outside authority's timestamp where the entry has one."""
    checkpoint = log.best_witnessed_checkpoint(session, index, witnesses)
    statement_key = keys.get_key(session, key_id)
    checkpoint_key = keys.get_key(session, checkpoint.key_id)
    stamp = session.get(LogTimestamp, index)
    return evidence.build_bundle(
        statement=json.loads(statement), signature=signature, key_id=key_id,
        public_key_pem=statement_key.public_key_pem, origin=log.origin(session), index=index,
        tree_size=checkpoint.tree_size, leaf_hash=log.leaf(session, index).leaf_hash,
        inclusion_proof=log.inclusion_proof(session, index, checkpoint.tree_size),
        checkpoint=log.cosigned_note(session, checkpoint),
        checkpoint_key={"key_id": checkpoint_key.key_id, "public_key_pem": checkpoint_key.public_key_pem},
        timestamp=None if stamp is None else {"authority": stamp.authority_url, "time": rfc3339(stamp.stamped_at),
                                              "response": base64.b64encode(stamp.response).decode()},
    )


def work_evidence(session: Session, work: Work, witnesses: Collection[str]) -> dict[str, Any]:
    return evidence_bundle(
        session, statement=work.statement, signature=work.signature, key_id=work.key_id, index=work.log_index,
        witnesses=witnesses,
    )


def verify_work(session: Session, work: Work, ctx: RegistryContext) -> evidence.VerificationReport:
    """Re-check everything an outside verifier would, plus that the stored file is intact (as read back within the
    last few minutes: see RecentDigests)."""
    trusted = {key.key_id: evidence.TrustedKey(key.valid_from, key.valid_until) for key in keys.all_keys(session)}
    bundle = work_evidence(session, work, ctx.witness_names)
    authority = ctx.timestamp_authority
    report = evidence.verify_bundle(bundle, None, trusted, authority.roots if authority else ())
    signed_sha256 = evidence.work_sha256(bundle["statement"])  # what the signature covers, not the work row
    stored = ctx.stored_digests.digest(work.sha256)
    if stored is None:
        report.add("stored file", False, "the registered file is missing from the blob store")
    else:
        report.add("file hash", stored == signed_sha256, "the file's SHA-256 matches the registered work"
                   if stored == signed_sha256 else f"the stored file's SHA-256 is {stored}: the file was damaged")
    return report

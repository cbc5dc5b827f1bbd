"""Registry routes: register, look up, search, evidence, verification, the log and the keys."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ipx.accounts.service import Principal
from ipx.config import Settings
from ipx.deps import (
    AppSettings,
    Caller,
    Creator,
    DbSession,
    Page,
    Registry,
    StoredInteger,
    receive_upload,
    require_file,
)
from ipx.errors import InvalidInput
from ipx.fingerprint.engine import ComputedFingerprints
from ipx.fingerprint.pixels import Frame
from ipx.notifications.service import relay_after_commit, relay_for
from ipx.openapi import BUSY_RESPONSES, FILE_RESPONSES, form_requires
from ipx.registry import log, service
from ipx.registry.downloads import file_download
from ipx.registry.media import WORK_TYPES
from ipx.registry.models import Work
from ipx.registry.schemas import (
    CreatorRef,
    Detection,
    Match,
    Region,
    RegistrationForm,
    RegistrationRead,
    VerifyRead,
    WorkPage,
    WorkRead,
)
from ipx.routing import IPXRoute

router = APIRouter(tags=["registry"], route_class=IPXRoute)
well_known = APIRouter(tags=["registry"], route_class=IPXRoute)

def work_read(work: Work, display_name: str, public_url: str) -> dict[str, Any]:
    statement = service.statement_of(work)
    return {
        "work_id": work.id,
        "title": work.title,
        "work_type": work.work_type,
        "description": statement.get("description"),
        "creators": statement["creators"],
        "year_created": statement.get("year_created"),
        "publication": statement["publication"],
        "sha256": work.sha256,
        "size": work.size,
        "media_type": work.media_type,
        "fingerprints": statement["fingerprints"],
        "registered_at": work.registered_at,
        "log_index": work.log_index,
        "key_id": work.key_id,
        "status": work.status,
        "creator": CreatorRef(account_id=work.owner_id, display_name=display_name),
        "evidence_url": f"{public_url}/api/v1/works/{work.id}/evidence",
        "certificate_url": f"{public_url}/works/{work.id}",
    }


def form_errors(exc: ValidationError) -> InvalidInput:
    """One sentence naming every bad field, plus the field-level list for clients and forms."""
    errors = [
        {"loc": ["body", *map(str, e["loc"])], "msg": e["msg"].removeprefix("Value error, ")} for e in exc.errors()
    ]
    where = "; ".join(f"{'.'.join(e['loc'][1:]) or 'form'}: {e['msg']}" for e in errors)
    return InvalidInput(f"The registration form has errors — {where}.", errors=errors)


def match_read(match: service.SimilarWork, public_url: str) -> Match:
    return Match(
        work_id=match.work.id, title=match.work.title, registered_at=match.work.registered_at, method=match.method,
        distance=match.distance, similarity=round(match.similarity, 4),
        certificate_url=f"{public_url}/works/{match.work.id}", passages=match.passages,
        region=region_read(match.region), registered_region=region_read(match.registered_region),
    )


def region_read(frame: Frame | None) -> Region | None:
    return None if frame is None else Region(**{side: round(value, 4) for side, value in frame._asdict().items()})


def detection_read(computed: ComputedFingerprints) -> Detection:
    return Detection(methods=computed.methods, note=computed.note)


async def register_upload(
    session: Session, caller: Principal, settings: Settings, registry: service.RegistryContext,
    file: UploadFile | None, form: RegistrationForm,
) -> service.Registration:
    """Spool, hash and register an upload; shared by POST /works and the registration page."""
    upload = await receive_upload(require_file(file), settings, settings.data_dir / "tmp")
    try:
        # Off the event loop: register waits for the log lock, which another request of this worker may
        # hold until its commit, and that commit needs the event loop (a deadlock if we block it here).
        registration = await run_in_threadpool(
            service.register, session, owner=caller, upload=upload, form=form, ctx=registry
        )
    finally:
        upload.path.unlink(missing_ok=True)
    if registration.prior_similar:  # the earlier owners' alerts go out as soon as this commits
        relay_after_commit(session, relay_for(settings))
    return registration


async def match_uploaded_file(
    session: Session, settings: Settings, registry: service.RegistryContext, file: UploadFile | None
) -> tuple[service.Upload, service.UploadMatches]:
    """Spool, hash and match an upload; shared by POST /verify and the verify page."""
    upload = await receive_upload(require_file(file), settings, settings.data_dir / "tmp")
    try:
        found = await run_in_threadpool(service.match_upload, session, upload, registry)  # off the event loop
        return upload, found
    finally:
        upload.path.unlink(missing_ok=True)


@router.post(
    "/works", status_code=201, response_model=RegistrationRead, responses=BUSY_RESPONSES,
    openapi_extra=form_requires("file", "title"),
)
async def create_work(
    request: Request,
    caller: Creator,
    session: DbSession,
    settings: AppSettings,
    registry: Registry,
    file: Annotated[UploadFile | None, File(description="The work itself")] = None,
    title: Annotated[str | None, Form()] = None,
    work_type: Annotated[str | None, Form(json_schema_extra={"enum": [*WORK_TYPES, None]})] = None,
    description: Annotated[str | None, Form()] = None,
    creators: Annotated[str | None, Form(description='JSON: [{"name": "Ada", "share": 50}, ...]')] = None,
    year_created: Annotated[int | None, Form()] = None,
    published: Annotated[bool, Form()] = False,
    published_where: Annotated[str | None, Form()] = None,
) -> RegistrationRead:
    """Register a work (any logged-in account): stored, signed, logged, checked for prior copies."""
    try:
        form = RegistrationForm(
            title=title or "", work_type=work_type, description=description or None, creators=creators or [],
            year_created=year_created, published=published, published_where=published_where or None,
        )
    except ValidationError as exc:
        raise form_errors(exc) from exc
    registration = await register_upload(session, caller, settings, registry, file, form)
    body = work_read(registration.work, caller.display_name, settings.public_url)
    body["prior_similar"] = [match_read(m, settings.public_url) for m in registration.prior_similar]
    body["detection"] = detection_read(registration.detection)
    return RegistrationRead(**body)


@router.post("/verify", response_model=VerifyRead, responses=BUSY_RESPONSES, openapi_extra=form_requires("file"))
async def verify_upload(
    session: DbSession,
    settings: AppSettings,
    registry: Registry,
    file: Annotated[UploadFile | None, File(description="The file to look up")] = None,
) -> VerifyRead:
    """Which registered works this file is, exactly or perceptually (anyone; nothing is stored)."""
    upload, found = await match_uploaded_file(session, settings, registry, file)
    return VerifyRead(
        sha256=upload.sha256, size=upload.size, media_type=found.media_type, detection=detection_read(found.detection),
        exact_matches=[match_read(m, settings.public_url) for m in found.exact],
        similar_matches=[match_read(m, settings.public_url) for m in found.similar],
    )


@router.get("/works", response_model=WorkPage)
def search_works(
    session: DbSession,
    settings: AppSettings,
    sha256: Annotated[str | None, Query(pattern="^[0-9a-fA-F]{64}$")] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    creator: Annotated[uuid.UUID | None, Query(description="account id")] = None,
    page: Page = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> WorkPage:
    """Search registrations by exact SHA-256, title or creator name (anyone)."""
    works, total = service.search_works(
        session, sha256=sha256, q=q, owner_id=str(creator) if creator else None, page=page, page_size=page_size
    )
    items = [WorkRead(**work_read(w, service.owner_of(session, w).display_name, settings.public_url)) for w in works]
    return WorkPage(items=items, total=total, page=page, page_size=page_size)


@router.get("/works/{work_id}", response_model=WorkRead)
def get_work(work_id: uuid.UUID, session: DbSession, settings: AppSettings) -> WorkRead:
    """The public registration record (anyone)."""
    work = service.get_work(session, str(work_id))
    return WorkRead(**work_read(work, service.owner_of(session, work).display_name, settings.public_url))


@router.get("/works/{work_id}/evidence")
def get_work_evidence(work_id: uuid.UUID, session: DbSession, registry: Registry) -> dict[str, Any]:
    """The offline evidence bundle: statement, signature, key, inclusion proof, checkpoint (anyone)."""
    return service.work_evidence(session, service.get_work(session, str(work_id)), registry.witness_names)


@router.get("/works/{work_id}/file", response_class=StreamingResponse, responses=FILE_RESPONSES)
def download_work_file(work_id: uuid.UUID, caller: Caller, session: DbSession, registry: Registry) -> StreamingResponse:
    """The registered file itself (the account that registered it, and staff; buyers use their license's)."""
    return file_download(registry.blobs, service.own_file(session, str(work_id), caller))


@router.get("/verify/{work_id}")
def verify_registration(work_id: uuid.UUID, session: DbSession, registry: Registry) -> dict[str, Any]:
    """Re-verify a registration's signature, log inclusion and stored file, server-side (anyone)."""
    work = service.get_work(session, str(work_id))
    report = service.verify_work(session, work, registry)
    return {"work_id": work.id, "sha256": work.sha256, "log_index": work.log_index, **report.as_dict()}


@router.get("/log/checkpoint", response_class=PlainTextResponse)
def get_checkpoint(session: DbSession) -> str:
    """The latest signed checkpoint as a C2SP signed note, with the witnesses' cosignatures it has so far (anyone)."""
    return log.cosigned_note(session, log.latest_checkpoint(session))


@router.get("/log/checkpoints/{tree_size}", response_class=PlainTextResponse)
def get_checkpoint_at(tree_size: StoredInteger, session: DbSession) -> str:
    """The checkpoint published at a given tree size, with its witnesses' cosignatures, for auditors (anyone)."""
    return log.cosigned_note(session, log.checkpoint_at(session, tree_size))


@router.get("/log/proof/inclusion")
def get_inclusion_proof(
    session: DbSession, index: Annotated[int, Query(ge=0)], size: Annotated[int, Query(ge=1)]
) -> dict[str, Any]:
    """RFC 9162 inclusion proof of entry `index` in the tree of `size` entries (anyone)."""
    hashes = log.inclusion_proof(session, index, size)
    return {
        "index": index, "tree_size": size, "leaf_hash": log.b64(log.leaf(session, index).leaf_hash),
        "hashes": [log.b64(h) for h in hashes],
    }


@router.get("/log/proof/consistency")
def get_consistency_proof(
    session: DbSession, first: Annotated[int, Query(ge=1)], second: Annotated[int, Query(ge=1)]
) -> dict[str, Any]:
    """RFC 9162 consistency proof between two tree sizes (anyone)."""
    hashes = log.consistency_proof(session, first, second)
    return {"first": first, "second": second, "hashes": [log.b64(h) for h in hashes]}


@router.get("/log/entries")
def get_log_entries(
    session: DbSession, start: Annotated[int, Query(ge=0)] = 0, end: Annotated[int | None, Query(ge=1)] = None
) -> dict[str, Any]:
    """Raw leaves [start, end), at most 1000 per call, so anyone can mirror and audit the log (anyone)."""
    rows = log.entries(session, start, end if end is not None else start + log.MAX_ENTRIES_PER_PAGE)
    return {
        "tree_size": log.size(session),
        "entries": [
            {"index": r.index, "type": r.entry_type, "leaf": log.b64(r.data), "leaf_hash": log.b64(r.leaf_hash)}
            for r in rows
        ],
    }


@well_known.get("/.well-known/ipx/keys")
def get_keys(session: DbSession, registry: Registry) -> dict[str, Any]:
    """Every key IPX has signed with, current and retired, with its validity window, and the time-stamping authority
    and witnesses whose signatures bundles carry, where configured (anyone)."""
    return service.published_keys_document(session, registry.timestamp_authority, registry.witness_policy)

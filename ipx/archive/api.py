"""The evidence archive, for programs (GET /api/v1/me/archive) and people (GET /me/archive.zip)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from ipx.accounts.service import Principal
from ipx.archive import service
from ipx.archive.zipstream import zip_stream
from ipx.deps import Caller, DbSession, Registry
from ipx.registry.downloads import attachment_disposition
from ipx.registry.service import RegistryContext
from ipx.routing import IPXRoute

router = APIRouter(tags=["archive"], route_class=IPXRoute)

ARCHIVE_RESPONSES = {
    200: {
        "description": "A ZIP of every registered file with its evidence bundle, the licenses held (with their "
        "files while they deliver them), IPX's published keys, the log's checkpoint and a README on checking it all "
        "offline. Streamed as it is made; a stored file found damaged cuts it off",
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def archive_response(session: Session, account: Principal, registry: RegistryContext) -> StreamingResponse:
    archive = service.evidence_archive(session, account, registry)
    return StreamingResponse(
        zip_stream(archive.members, made_at=archive.made_at),
        media_type="application/zip",
        headers={"Content-Disposition": attachment_disposition(archive.filename), "Cache-Control": "private, no-store"},
    )


@router.get("/me/archive", response_class=StreamingResponse, responses=ARCHIVE_RESPONSES)
def download_archive(caller: Caller, session: DbSession, registry: Registry) -> StreamingResponse:
    """Everything the caller holds at IPX, as one ZIP to keep and check offline (logged in)."""
    return archive_response(session, caller, registry)

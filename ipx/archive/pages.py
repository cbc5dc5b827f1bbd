"""The evidence archive as a link on the pages (My works, Your account)."""

from __future__ import annotations

from fastapi.responses import StreamingResponse

from ipx.archive.api import archive_response
from ipx.deps import DbSession, Registry
from ipx.web.pages import Member, page_router

router = page_router()


@router.get("/me/archive.zip")
def download_archive(caller: Member, session: DbSession, registry: Registry) -> StreamingResponse:
    """Everything the visitor holds at IPX, as one ZIP (as GET /api/v1/me/archive)."""
    return archive_response(session, caller, registry)

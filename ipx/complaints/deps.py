"""Request-scoped pieces the complaint routes and pages share: the case context and notice parsing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile  # what request.form() yields (FastAPI's is a subclass)

from ipx.complaints.matching import RegistryMatcher
from ipx.complaints.schemas import NoticeIn
from ipx.complaints.service import MAX_CASE_AGE_DAYS, ComplaintsContext
from ipx.config import Settings
from ipx.db import utcnow
from ipx.deps import AppSettings, Registry, SendsMail, receive_upload
from ipx.errors import InvalidInput, plain_message
from ipx.registry.service import Upload

CaseAgeDays = Annotated[int | None, Query(ge=0, le=MAX_CASE_AGE_DAYS, description="days since the notice arrived")]


def complaints_context(
    request: Request, settings: AppSettings, registry: Registry, _relay: Annotated[None, SendsMail]
) -> ComplaintsContext:
    """`app.state.clock`, when set (tests, simulations), replaces the wall clock for every case decision."""
    return ComplaintsContext(
        restore_business_days=settings.complaint_restore_business_days,
        now=getattr(request.app.state, "clock", utcnow),
        matchers=[RegistryMatcher(registry)],
    )


CaseContext = Annotated[ComplaintsContext, Depends(complaints_context)]


# what a missing sworn statement means, instead of pydantic's "Input should be True"
AFFIRMATIONS = {
    "good_faith": "Affirm your good-faith belief that the use is not authorized.",
    "accuracy": "Affirm, under penalty of perjury, that the notice is accurate and that you may act for the owner.",
    "consent_to_jurisdiction": "A counter-notice needs your consent to the court's jurisdiction.",
}


def field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": ["body", *map(str, e["loc"])],
         "msg": AFFIRMATIONS.get(str(e["loc"][-1]) if e["loc"] else "", plain_message(e))}
        for e in exc.errors()
    ]


def parse_notice(data: Any) -> NoticeIn:
    """Validate a notice, reporting every missing or wrong element at once with its location."""
    if not isinstance(data, dict):
        raise InvalidInput("The notice must be a JSON object with the elements of a notice, not a "
                           f"{type(data).__name__.replace('NoneType', 'null')}.")
    try:
        return NoticeIn.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        where = "; ".join(f"{'.'.join(e['loc'][1:])}: {e['msg']}" for e in errors)
        raise InvalidInput(f"The notice is incomplete or invalid — {where}", errors=errors) from exc


COPY_FIELDS = ("work_file", "infringing_file")  # a copy of the complainant's work; a copy of the infringing file


@asynccontextmanager
async def spooled_copies(form: FormData, settings: Settings) -> AsyncIterator[dict[str, Upload]]:
    """The notice's uploaded copies, hashed into temporary files that are removed when the notice is handled."""
    copies: dict[str, Upload] = {}
    try:
        for name in COPY_FIELDS:
            part = form.get(name)
            if isinstance(part, UploadFile) and part.filename:
                copies[name] = await receive_upload(part, settings, settings.data_dir / "tmp")  # type: ignore[arg-type]
        yield copies
    finally:
        for copy in copies.values():
            copy.path.unlink(missing_ok=True)

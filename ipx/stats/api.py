"""Public quarterly statistics, as JSON or CSV."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from ipx.db import utcnow
from ipx.deps import DbSession
from ipx.routing import IPXRoute
from ipx.stats import service
from ipx.stats.quarters import Quarter

router = APIRouter(tags=["stats"], route_class=IPXRoute)


def quarter_or_current(text: str | None) -> Quarter:
    """The quarter asked for, or the current one when none was (an empty `quarter=` is asked, and refused)."""
    return Quarter.parse(text) if text is not None else Quarter.containing(utcnow())


CSV_RESPONSE = {
    200: {
        "description": "The figures: JSON, or with format=csv one `quarter,section,key,value` row per figure",
        "content": {"application/json": {"schema": {"type": "object"}}, "text/csv": {"schema": {"type": "string"}}},
    }
}


@router.get("/stats/quarterly", response_model=None, responses=CSV_RESPONSE)
def quarterly(
    session: DbSession,
    quarter: Annotated[str | None, Query(description="like 2026Q3; default: the current quarter")] = None,
    output: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> dict[str, Any] | PlainTextResponse:
    """Registrations, creators, listings, sales, refunds, complaints and detection alerts for one quarter (anyone)."""
    figures = service.quarterly(session, quarter_or_current(quarter))
    if output == "csv":
        return PlainTextResponse(
            service.as_csv(figures), media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="ipx-stats-{figures["quarter"]}.csv"'},
        )
    return figures

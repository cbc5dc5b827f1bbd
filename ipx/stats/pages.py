"""The public statistics page: figures, comparison with the previous quarter, and SVG charts (no JavaScript)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ipx.deps import DbSession
from ipx.errors import IPXError
from ipx.marketplace.terms import TEMPLATES, format_amount, format_money
from ipx.routing import IPXRoute
from ipx.stats import charts, service
from ipx.stats.api import quarter_or_current
from ipx.web.pages import Visitor
from ipx.web.templating import templates

router = APIRouter(include_in_schema=False, route_class=IPXRoute)


@router.get("/stats", response_class=HTMLResponse)
def stats_page(request: Request, session: DbSession, caller: Visitor, quarter: str = "") -> Response:
    try:
        period = quarter_or_current(quarter or None)
    except IPXError as error:
        return templates.TemplateResponse(
            request, "stats/quarterly.html", {"caller": caller, "error": error, "quarter": quarter},
            status_code=error.status_code,
        )
    figures = service.quarterly(session, period)
    context = {
        "caller": caller, "figures": figures, "quarter": str(period), "previous_quarter": str(period.previous()),
        "next_quarter": str(period.next()), "charts": _charts(figures),
        "headlines": [{**row, "label": _label(row["metric"])} for row in figures["comparison"]["metrics"]],
        "previous_quarter_link": period.has_previous, "next_quarter_link": period.has_next,
        "sales_by_currency": [  # currency, gross, refunds, net: net_sales names every currency either of the others has
            [currency, *(format_amount(figures[section]["by_currency"].get(currency, 0), currency)
                         for section in ("sales", "refunds", "net_sales"))]
            for currency in figures["net_sales"]["by_currency"]
        ],
        "sales_by_license": [
            (TEMPLATES[template].label if template in TEMPLATES else template, entry["count"],
             ", ".join(format_money(amount, currency) for currency, amount in sorted(entry["by_currency"].items())))
            for template, entry in sorted(figures["sales"]["by_license_type"].items())
        ],
    }
    return templates.TemplateResponse(request, "stats/quarterly.html", context)


def _charts(figures: dict[str, Any]) -> list[Any]:
    current, previous = figures["quarter"], figures["comparison"]["previous_quarter"]
    types = sorted(set(figures["registrations"]["by_type"]) | set(figures["previous"]["registrations"]["by_type"]))
    registrations = [
        (_label(work_type), figures["registrations"]["by_type"].get(work_type, 0),
         figures["previous"]["registrations"]["by_type"].get(work_type, 0))
        for work_type in types
    ]
    headline = [(_label(row["metric"]), row["current"], row["previous"]) for row in figures["comparison"]["metrics"]]
    return [
        charts.comparison_bars("Registrations by work type", registrations, current, previous),
        charts.comparison_bars("Activity", headline, current, previous),
    ]


def _label(name: str) -> str:
    """A metric or work type as people read it: "complaints received" -> "Complaints received" (the JSON, CSV and
    API keep the lowercase names)."""
    return name[:1].upper() + name[1:]

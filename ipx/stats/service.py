"""Quarterly figures, computed from the records themselves so they can be recomputed and checked at any time."""

from __future__ import annotations

import csv
import io
import statistics
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ipx.accounts.models import User
from ipx.complaints.models import CLOSED_STATUSES, Complaint
from ipx.marketplace import service as marketplace_service
from ipx.registry.models import PriorMatch, Work
from ipx.stats.quarters import Quarter

HEADLINES = (
    ("registrations", ("registrations", "total")),
    ("new creators", ("creators", "new")),
    ("new accounts", ("accounts", "new")),
    ("new listings", ("listings", "new")),
    ("sales", ("sales", "count")),
    ("refunds", ("refunds", "count")),
    ("partial refunds", ("refunds", "partial")),
    ("complaints received", ("complaints", "received")),
    ("complaints resolved", ("complaints", "resolved")),
    ("detection alerts", ("detection", "alerts")),
)
# Headlines where a rise is bad news: the page colours a change by whether it is good, not by its direction.
FEWER_IS_BETTER = frozenset({"refunds", "partial refunds", "complaints received", "detection alerts"})


def quarterly(session: Session, quarter: Quarter) -> dict[str, Any]:
    """The quarter's figures plus the same headline figures for the previous quarter, for comparison."""
    current = _figures(session, quarter)
    previous = _figures(session, quarter.previous())
    current["comparison"] = {
        "previous_quarter": str(quarter.previous()),
        "metrics": [
            {"metric": name, "current": _dig(current, path), "previous": _dig(previous, path),
             "higher_is_better": name not in FEWER_IS_BETTER}
            for name, path in HEADLINES
        ],
    }
    current["previous"] = {
        key: previous[key] for key in ("registrations", "sales", "refunds", "net_sales", "complaints")
    }
    return current


def _figures(session: Session, quarter: Quarter) -> dict[str, Any]:
    start, end = quarter.start, quarter.end
    sales = marketplace_service.sales_summary(session, start, end)
    refunds = marketplace_service.refunds_summary(session, start, end)
    return {
        "quarter": str(quarter),
        "period": {"start": start.isoformat().replace("+00:00", "Z"), "end": end.isoformat().replace("+00:00", "Z")},
        "registrations": _registrations(session, start, end),
        "creators": {"new": _new_creators(session, start, end)},
        "accounts": {"new": _new_accounts(session, start, end)},
        "listings": {"new": sales["listings_created"]},
        "sales": {  # amounts in minor units of each currency
            "count": sales["count"], "by_currency": sales["by_currency"], "by_license_type": sales["by_license_type"],
        },
        "refunds": refunds,  # counted in the quarter of the refund, whichever quarter the sale was in
        "net_sales": {"by_currency": _net(sales["by_currency"], refunds["by_currency"])},
        "complaints": _complaints(session, start, end),
        "detection": _detection(session, start, end),
    }


def _count(session: Session, query: Any) -> int:
    return session.scalar(query) or 0


def _registrations(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    rows = session.execute(
        select(Work.work_type, func.count())
        .where(Work.registered_at >= start, Work.registered_at < end)
        .group_by(Work.work_type)
        .order_by(Work.work_type)
    )
    by_type = {work_type: count for work_type, count in rows}
    return {"total": sum(by_type.values()), "by_type": by_type}


def _new_accounts(session: Session, start: datetime, end: datetime) -> int:
    return _count(session, select(func.count()).where(User.created_at >= start, User.created_at < end))


def _new_creators(session: Session, start: datetime, end: datetime) -> int:
    """Accounts whose first registration falls in the quarter (signing up alone does not make a creator)."""
    first = select(func.min(Work.registered_at).label("first")).group_by(Work.owner_id).subquery()
    return _count(session, select(func.count()).where(first.c.first >= start, first.c.first < end))


def _complaints(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    """Cases received, and cases resolved: closed (dismissed, restored, cleared) in the quarter, timed to closure.

    A takedown decides nothing for good: the case stays open while the owner may still counter, so counting
    decisions reported open cases as resolved and timed them to their first step.
    """
    received = _count(
        session, select(func.count()).where(Complaint.received_at >= start, Complaint.received_at < end)
    )
    closed = session.execute(
        select(Complaint.received_at, Complaint.closed_at).where(
            Complaint.status.in_(CLOSED_STATUSES), Complaint.closed_at >= start, Complaint.closed_at < end
        )
    ).all()
    hours = [(closed_at - received_at).total_seconds() / 3600 for received_at, closed_at in closed]
    return {
        "received": received,
        "resolved": len(closed),
        "median_resolution_hours": round(statistics.median(hours), 1) if hours else None,
    }


def _detection(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    rows = session.execute(
        select(PriorMatch.method, func.count())
        .where(PriorMatch.found_at >= start, PriorMatch.found_at < end)
        .group_by(PriorMatch.method)
        .order_by(PriorMatch.method)
    )
    by_method = {method: count for method, count in rows}
    return {"alerts": sum(by_method.values()), "by_method": by_method}


def _net(gross: dict[str, int], refunded: dict[str, int]) -> dict[str, int]:
    """Gross minus refunded per currency; negative when a quarter returned more than it sold (refunds of earlier
    sales), which is the point: the quarter's figures must not look better than the money it kept."""
    return {currency: gross.get(currency, 0) - refunded.get(currency, 0) for currency in sorted(gross | refunded)}


def _dig(figures: dict[str, Any], path: tuple[str, str]) -> Any:
    return figures[path[0]][path[1]]


def as_csv(figures: dict[str, Any]) -> str:
    """One row per figure (section, key, value): easy to load in a spreadsheet and to diff between quarters."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["quarter", "section", "key", "value"])
    sections = ("registrations", "creators", "accounts", "listings", "sales", "refunds", "net_sales", "complaints",
                "detection")
    for section in sections:
        for key, value in _flatten(figures[section]):
            writer.writerow([figures["quarter"], section, key, "" if value is None else value])
    return out.getvalue()


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, f"{name}."))
        else:
            rows.append((name, value))
    return rows

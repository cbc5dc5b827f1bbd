"""`ipx stats --quarter 2026Q3`: the quarterly figures on the terminal, as JSON or CSV."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def stats(
    quarter: Annotated[str | None, typer.Option(help="like 2026Q3; default: the current quarter")] = None,
    csv: Annotated[bool, typer.Option("--csv", help="CSV instead of JSON")] = False,
) -> None:
    """Quarterly statistics (the same figures as GET /api/v1/stats/quarterly)."""
    from ipx.config import get_settings
    from ipx.db import make_engine, make_session_factory, transaction
    from ipx.errors import IPXError
    from ipx.stats import service
    from ipx.stats.api import quarter_or_current

    try:
        period = quarter_or_current(quarter)
    except IPXError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    factory = make_session_factory(make_engine(get_settings().resolved_database_url))
    with transaction(factory) as session:
        figures = service.quarterly(session, period)
    typer.echo(service.as_csv(figures) if csv else json.dumps(figures, indent=2, default=str), nl=not csv)

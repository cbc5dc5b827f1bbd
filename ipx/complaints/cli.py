"""`ipx complaints tick`: the periodic job (cron or a systemd timer) that runs the restoration clock."""

from __future__ import annotations

import typer

app = typer.Typer(help="Infringement complaints.", no_args_is_help=True)


@app.command("tick")
def tick() -> None:
    """Restore content whose counter-notice period ended, then send queued notifications."""
    from ipx.complaints.service import process_due_restorations
    from ipx.config import get_settings
    from ipx.db import make_engine, make_session_factory, transaction, utcnow
    from ipx.notifications.service import deliver_pending, relay_for

    settings = get_settings()
    factory = make_session_factory(make_engine(settings.resolved_database_url))
    with transaction(factory) as session:
        restored = process_due_restorations(session, utcnow())
    with transaction(factory) as session:
        sent = deliver_pending(session, relay_for(settings))
    for complaint in restored:
        typer.echo(f"restored content of case {complaint.case_number}")
    typer.echo(f"{len(restored)} case(s) restored, {sent} notification(s) sent")

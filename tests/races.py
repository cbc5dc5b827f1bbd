"""Two transactions at the closest they can come on PostgreSQL, for the tests of row locks."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker


def interleave(
    factory: sessionmaker[Session], first: Callable[[Session], None], second: Callable[[Session], None]
) -> None:
    """Run `first` without committing, start `second` in another transaction, wait until it is blocked on a lock
    `first` holds, then commit `first` and let `second` finish and commit: the closest two requests can come."""
    holder, racer = factory(), factory()
    failures: list[BaseException] = []
    try:
        first(holder)
        backend = racer.scalar(text("SELECT pg_backend_pid()"))

        def race() -> None:
            try:
                second(racer)
                racer.commit()
            except BaseException as exc:  # re-raised below: a thread's exception would only be a warning
                failures.append(exc)

        thread = threading.Thread(target=race)
        thread.start()
        with factory() as observer:
            while thread.is_alive() and not observer.scalar(text(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"), {"pid": backend}
            ):
                observer.rollback()
        holder.commit()
        thread.join()
    finally:
        holder.close()
        racer.close()
    if failures:
        raise failures[0]

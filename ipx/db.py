"""Engine and sessions: one transaction per request, committed only after the handler succeeds."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import DateTime, Engine, Index, Select, create_engine, event, func, literal_column, select
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

logger = logging.getLogger(__name__)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; IPX stores UTC-aware times only")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _serialize_sqlite_writers(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # No server-side prepared statements (psycopg prepares a query run five times): PostgreSQL then plans it once for
    # any parameters, and a LIKE search planned for no pattern in particular walked every work instead of using the
    # trigram indexes (70 ms instead of 25 at 100,000 works, bench/registry_search.py). Poolers in transaction mode
    # (PgBouncer) need them off anyway.
    unprepared = {"prepare_threshold": None}
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=unprepared)


def _serialize_sqlite_writers(engine: Engine) -> None:
    """Take SQLite's write lock at BEGIN (BEGIN IMMEDIATE).

    A deferred transaction that reads and then writes can fail with "database is locked" when
    another writer got in between, which busy_timeout cannot fix. Requests are short and SQLite is
    the single-node default, so serializing transactions is the honest trade; PostgreSQL is the
    production database.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()
        # SQLite's own lower() folds ASCII only, so "élan" never found "Élan"; PostgreSQL's folds all of Unicode.
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _unicode_lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def contains_pattern(text: str) -> str:
    """A LIKE pattern (escape character backslash) matching values that contain `text` literally: the % and _
    a person types are characters to find, not wildcards. The text is taken in NFC, the form keyboards and forms
    send, so "Café" typed with a combining accent (as macOS files name it) finds the "Café" a title holds."""
    text = unicodedata.normalize("NFC", text)
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def trigram_index(name: str, column: str, *, lowered: bool = True) -> Index:
    """A GIN index of lower(`column`)'s trigrams (pg_trgm): it serves contains_pattern searches, which no B-tree can
    (LIKE '%q%'), for texts of three characters or more. `lowered=False` indexes a column already kept in lower case
    as it is. PostgreSQL only (migrations 0012 and 0013); SQLite scans."""
    if lowered:
        indexed = func.lower(literal_column(column)).label(f"{column}_lowered")
        index = Index(name, indexed, postgresql_using="gin", postgresql_ops={indexed.name: "gin_trgm_ops"})
    else:
        index = Index(name, column, postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"})
    return index.ddl_if(dialect="postgresql")


Row = TypeVar("Row")


def page_of(
    session: Session, query: Select[Row], *order_by: ColumnElement[Any], page: int, page_size: int
) -> tuple[list[Row], int]:
    """One page of `query`'s rows in `order_by` order, and how many rows it has in all (a pager shows both)."""
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(*order_by).offset((page - 1) * page_size).limit(page_size))
    return list(rows), total


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit if the block succeeds, roll back if it raises.

    Side effects that must not happen for a rolled-back change (updating in-memory indexes, sending
    mail) are queued in session.info["after_commit"] and run only after a successful commit.
    """
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    for effect in session.info.pop("after_commit", []):
        try:
            effect()
        except Exception:  # the change is committed: a failed follow-up is logged, never turned into an error
            logger.exception("an after-commit step failed; the committed change stands")

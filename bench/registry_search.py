"""Registry search benchmark: what the public registry page (/works) and GET /api/v1/works cost as the registry grows.

Usage: .venv/bin/python bench/registry_search.py [--works 10000,100000] [--repeats 21]

The search is a case-insensitive substring match on titles and creators' names (LIKE '%q%', with LIKE's wildcards
escaped), with a count of all matches for the pager. No B-tree serves it: PostgreSQL answers from pg_trgm indexes
(migration 0012) when a word is rare and scans when it is common (the count must see every match); SQLite scans.

Printed per database and registry size, median of --repeats (ms): the newest page with no search (the page's floor,
the peer every other line is divided by), a search by a rare title word, by a common one, by a creator's name, one
account's works, and a deep page (offset) of the whole registry.

Synthetic rows (one account per 50 works, titles from a small vocabulary) inserted straight into freshly migrated
databases; PostgreSQL from IPX_TEST_PG_URL, as in the tests, dropped at the end.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _synthetic import SYNTHETIC_STATEMENT  # noqa: E402
from registry import postgres  # noqa: E402

from ipx.accounts.models import User  # noqa: E402
from ipx.db import make_engine, make_session_factory, transaction  # noqa: E402
from ipx.migrations import upgrade  # noqa: E402
from ipx.registry.models import SigningKey, Work  # noqa: E402
from ipx.registry.service import search_works  # noqa: E402

WORKS_PER_ACCOUNT = 50
BATCH = 5000
WORDS = ["harbour", "dusk", "engine", "loom", "portrait", "river", "study", "night", "garden", "score", "chapter"]
RARE_WORD = "nightjar"  # in one title of every 10,000
PAGE_SIZE = 24


def fill(database_url: str, works: int, rng: random.Random) -> str:
    """Insert `works` synthetic works; returns the id of an account holding WORKS_PER_ACCOUNT of them."""
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    accounts = [str(uuid.uuid4()) for _ in range(max(1, works // WORKS_PER_ACCOUNT))]
    with transaction(factory) as session:
        session.add(SigningKey(key_id="bench", public_key_pem="-", valid_from=start))  # statements are not read here
        session.execute(insert(User), [
            {"id": account, "email": f"creator{n}@example.org", "display_name": f"Creator {n} {rng.choice(WORDS)}",
             "password_hash": "-", "role": "creator", "created_at": start}
            for n, account in enumerate(accounts)
        ])  # fmt: skip
    for first in range(0, works, BATCH):
        rows = []
        for number in range(first, min(works, first + BATCH)):
            title = " ".join(rng.choice(WORDS) for _ in range(3)) + (f" {RARE_WORD}" if number % 10_000 == 7 else "")
            rows.append({
                "id": str(uuid.uuid4()), "owner_id": accounts[number % len(accounts)], "sha256": f"{number:064x}",
                "size": 1, "media_type": "image/png", "title": title, "work_type": "image", "details": {},
                "statement": SYNTHETIC_STATEMENT, "signature": b"", "key_id": "bench", "log_index": number,
                "registered_at": start + timedelta(seconds=number), "status": "registered",
            })  # fmt: skip
        with transaction(factory) as session:
            session.execute(insert(Work), rows)
    with engine.connect() as connection:  # planner statistics, as a live database's autovacuum keeps them
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    engine.dispose()
    return accounts[0]


def median_ms(database_url: str, repeats: int, **search: object) -> float:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    seconds = []
    try:
        for _ in range(repeats):
            with transaction(factory) as session:
                started = time.perf_counter()
                search_works(session, **{"sha256": None, "q": None, "owner_id": None, "page": 1,
                                         "page_size": PAGE_SIZE, **search})  # type: ignore[arg-type]
                seconds.append(time.perf_counter() - started)
    finally:
        engine.dispose()
    return statistics.median(seconds) * 1000


def report(name: str, database_url: str, works: int, repeats: int) -> None:
    account = fill(database_url, works, random.Random(works))
    shapes = {
        "rare title word": {"q": RARE_WORD},
        "common title word": {"q": "harbour"},
        "creator's name": {"q": "creator 1"},
        "one account's works": {"owner_id": account},
        f"page {works // PAGE_SIZE // 2:,} of all": {"page": works // PAGE_SIZE // 2},
    }
    floor = median_ms(database_url, repeats)
    print(f"{name}, {works:,} works: newest page, no search {floor:.1f} ms (the floor)")
    for shape, search in shapes.items():
        took = median_ms(database_url, repeats, **search)
        print(f"  {shape:<24} {took:8.1f} ms  ({took / floor:.1f} x the floor)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--works", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ipx-bench-") as temp, postgres() as databases:
        for works in (int(size) for size in args.works.split(",")):
            sqlite_url = f"sqlite:///{Path(temp) / f'search-{works}.db'}"
            upgrade(sqlite_url)
            report("SQLite", sqlite_url, works, args.repeats)
            if databases is not None:
                postgres_url = databases.new()
                upgrade(postgres_url)
                report("PostgreSQL", postgres_url, works, args.repeats)


if __name__ == "__main__":
    main()

"""Marketplace benchmark: orders per second end to end, and search latency over 100k listings.

Usage: .venv/bin/python bench/marketplace.py [--orders N] [--clients N] [--listings N] [--runs N]
       (--orders 0 or --listings 0 skips that part)

Prints figures, no pass/fail thresholds:
1. Orders per second with the offline provider through the real HTTP API: a uvicorn process with two
   workers on SQLite and on PostgreSQL; each client is a buyer placing an order (POST /orders with an
   Idempotency-Key) and confirming it (POST /orders/{id}/confirm), which signs a license, appends it
   to the transparency log, publishes a checkpoint and posts a ledger journal. Latency is per order
   (both requests). The ledger is checked to balance afterwards.
2. GET /listings latency (in-process ASGI client, so HTTP parsing is included but not the network)
   on 100k synthetic listings bulk-inserted next to 1000 sellers, then ANALYZEd, for typical queries.
   Totals above 10,000 are reported as "10,000+" (the search stops counting there).

PostgreSQL comes from IPX_TEST_PG_URL (as in the tests); throwaway databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert, select, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")  # tests.conftest imports it

from _synthetic import SYNTHETIC_STATEMENT  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from ipx.accounts.models import User  # noqa: E402
from ipx.accounts.service import create_user, issue_token  # noqa: E402
from ipx.app import create_app  # noqa: E402
from ipx.config import Settings  # noqa: E402
from ipx.db import transaction, utcnow  # noqa: E402
from ipx.marketplace import ledger, terms  # noqa: E402
from ipx.marketplace.models import Listing, Offer  # noqa: E402
from ipx.migrations import upgrade  # noqa: E402
from ipx.registry.models import SigningKey, Work  # noqa: E402
from tests.conftest import ApiUser, PostgresDatabases, postgres_reachable  # noqa: E402
from tests.marketplace.builders import offer  # noqa: E402
from tests.marketplace.conftest import noise_png  # noqa: E402
from tests.marketplace.servers import ipx_server  # noqa: E402

WORDS = [
    "harbour", "dawn", "river", "forest", "city", "night", "portrait", "studio", "glass", "winter", "market",
    "mountain", "desert", "neon", "garden", "ocean", "bridge", "festival", "archive", "street",
]
TEMPLATES = ("standard", "extended", "editorial", "cc-by", "cc-by-nc")
CURRENCIES = ("EUR", "USD", "GBP")
BATCH = 5000


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextmanager
def databases() -> Iterator[list[tuple[str, str]]]:
    """A migrated SQLite file and, when reachable, a PostgreSQL database: [(name, url)]."""
    with tempfile.TemporaryDirectory(prefix="ipx-bench-") as tmp:
        sqlite_path = Path(tmp) / "bench.db"
        upgrade(f"sqlite:///{sqlite_path}")
        found = [("SQLite", f"sqlite:///{sqlite_path}")]
        pg = PostgresDatabases() if postgres_reachable() else None
        try:
            if pg is not None:
                found.append(("PostgreSQL", pg.new()))
            yield found
        finally:
            if pg is not None:
                pg.drop_all()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --------------------------------------------------------------------------------------- 1. orders/s


def prepare_shop(settings: Settings, buyers: int) -> tuple[str, list[str]]:
    """One seller with a standard (non-exclusive) offer, and buyer tokens."""
    with TestClient(create_app(settings)) as client:
        seller = ApiUser(client, "seller@example.org", "Seller")
        work = seller.register(noise_png(1), title="Benchmark work").json()
        listing = client.post("/api/v1/listings", headers=seller.headers,
                              json={"work_id": work["work_id"], "offers": [offer()]}).json()
        with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
            first = create_user(session, email="buyer0@example.org", password="buyer password", display_name="B0")
            users = [first] + [User(email=f"buyer{n}@example.org", display_name=f"Buyer {n}",
                                    password_hash=first.password_hash) for n in range(1, buyers)]
            session.add_all(users)
            session.flush()
            tokens = [issue_token(session, user, 3600)[0] for user in users]
    return listing["offers"][0]["offer_id"], tokens


def order_throughput(name: str, url: str, tmp: Path, orders: int, clients: int) -> None:
    settings = Settings(data_dir=tmp / "data", database_url=url, public_url="http://bench")
    offer_id, tokens = prepare_shop(settings, clients)
    remaining = iter(range(orders))
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []

    def buyer(token: str, base: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=60) as http:
            while True:
                with lock:
                    if next(remaining, None) is None:
                        return
                started = time.perf_counter()
                placed = http.post("/api/v1/orders", json={"offer_id": offer_id},
                                   headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
                done = placed.status_code == 201 and http.post(
                    f"/api/v1/orders/{placed.json()['order_id']}/confirm", headers=headers
                ).status_code == 200
                with lock:
                    (latencies.append(time.perf_counter() - started) if done else failures.append(placed.text))

    env = {"IPX_DATABASE_URL": url, "IPX_DATA_DIR": str(settings.data_dir)}
    with ipx_server(env, tmp, workers=2) as base:
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda token: buyer(token, base), tokens))
        elapsed = time.perf_counter() - started
    with transaction(create_app(settings).state.session_factory) as session:
        summary = ledger.summary(session)
    print(f"  {name:<10} {len(latencies) / elapsed:7.1f} orders/s  ({len(latencies)} orders, {clients} clients, "
          f"{elapsed:.1f} s; per order p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms; failed {len(failures)}; "
          f"ledger: {summary['transactions']} journals, {summary['unbalanced']} unbalanced)")


# ------------------------------------------------------------------------------------------ 2. search


def bulk_listings(settings: Settings, count: int) -> None:
    """Synthetic sellers, works, listings and offers, inserted in batches (no signing, no log)."""
    rng = random.Random(42)
    factory = create_app(settings).state.session_factory
    with transaction(factory) as session:
        key_id = session.scalars(select(SigningKey.key_id)).first()
        sellers = [{"id": str(uuid.uuid4()), "email": f"seller{n}@bench.example", "display_name":
                    f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {n}", "password_hash": "x",
                    "role": "creator", "created_at": utcnow()} for n in range(1000)]
        session.execute(insert(User), sellers)
    created = utcnow() - timedelta(days=365)
    for start in range(0, count, BATCH):
        works, listings, offers = [], [], []
        for n in range(start, min(count, start + BATCH)):
            seller = sellers[n % len(sellers)]
            title = " ".join(rng.sample(WORDS, 3)) + f" {n}"
            work_type = ("image", "text", "audio", "video")[n % 4]
            tags = rng.sample(WORDS, 2)
            at = created + timedelta(seconds=n * 300)
            work_id, listing_id = str(uuid.uuid4()), str(uuid.uuid4())
            works.append({"id": work_id, "owner_id": seller["id"], "sha256": f"{rng.getrandbits(256):064x}",
                          "size": 1000, "media_type": "image/png", "title": title, "work_type": work_type,
                          "details": {}, "statement": SYNTHETIC_STATEMENT, "signature": b"", "key_id": key_id,
                          "log_index": 10_000_000 + n, "registered_at": at, "status": "registered"})
            listings.append({"id": listing_id, "work_id": work_id, "seller_id": seller["id"], "tags": tags,
                             "search_text": " ".join([title, seller["display_name"], work_type, *tags]).lower(),
                             "status": "active", "created_at": at, "description": None})
            for _ in range(1 + (n % 3 == 0)):
                template = rng.choice(TEMPLATES)
                overrides = {"cc-by": {"derivatives": True}, "cc-by-nc": {"derivatives": True, "commercial": False},
                             "editorial": {"commercial": False}}.get(template, {})
                amount, currency = rng.randrange(100, 100_000), rng.choice(CURRENCIES)
                data = terms.to_data(terms.LicenseTerms.model_validate(
                    offer(template=template, price={"amount": amount, "currency": currency}, **overrides)))
                offers.append({"id": str(uuid.uuid4()), "listing_id": listing_id, "work_id": work_id,
                               "template": template, "exclusive": False, "terms": data, "price_amount": amount,
                               "currency": currency, "status": "active", "created_at": at})
        with transaction(factory) as session:
            session.execute(insert(Work), works)
            session.execute(insert(Listing), listings)
            session.execute(insert(Offer), offers)


QUERIES = {
    "newest, no filter": {},
    "q=harbour (common word)": {"q": "harbour"},
    "q=two words + creator": {"q": "neon archive"},
    "q=rare title number": {"q": "99999"},
    "license=cc-by": {"license": "cc-by"},
    "EUR 10.00-50.00": {"currency": "EUR", "min_price": 1000, "max_price": 5000},
    "q + license + price": {"q": "river", "license": "standard", "currency": "USD", "max_price": 20000},
    "page 500 (deep)": {"page": 500},
}


def search_latency(name: str, url: str, tmp: Path, count: int, runs: int) -> None:
    settings = Settings(data_dir=tmp / "data", database_url=url, public_url="http://bench")
    with TestClient(create_app(settings)):
        pass  # bootstrap: signing key and log origin
    started = time.perf_counter()
    bulk_listings(settings, count)
    with transaction(create_app(settings).state.session_factory) as session:
        session.execute(text("ANALYZE"))  # planner statistics, as autovacuum (PG) or PRAGMA optimize would keep
    progress(f"{name}: {count} listings inserted and analyzed in {time.perf_counter() - started:.0f} s")
    with TestClient(create_app(settings)) as client:
        for label, params in QUERIES.items():
            client.get("/api/v1/listings", params=params)  # warm caches and plans
            timings, total = [], 0
            for _ in range(runs):
                began = time.perf_counter()
                response = client.get("/api/v1/listings", params=params)
                timings.append(time.perf_counter() - began)
                body = response.json()
                total = f"{body['total']:,}{'' if body['total_exact'] else '+'}"
            print(f"  {name:<10} {label:<26} p50 {statistics.median(timings) * 1000:7.1f} ms  "
                  f"p95 {percentile(timings, 0.95) * 1000:7.1f} ms  ({total} matches)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--listings", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    if args.orders:
        print("1. Orders per second, offline provider, uvicorn with 2 workers (place + confirm + license + ledger)")
        with databases() as found, tempfile.TemporaryDirectory(prefix="ipx-bench-orders-") as tmp:
            for name, url in found:
                progress(f"orders on {name}")
                order_throughput(name, url, Path(tmp) / name, args.orders, args.clients)
    if args.listings:
        print(f"2. GET /listings latency over {args.listings:,} listings ({args.runs} runs per query)")
        with databases() as found, tempfile.TemporaryDirectory(prefix="ipx-bench-search-") as tmp:
            for name, url in found:
                search_latency(name, url, Path(tmp) / name, args.listings, args.runs)


if __name__ == "__main__":
    main()

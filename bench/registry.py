"""Registry benchmark: registrations per second over HTTP, proof cost against log size, checkpoint signing.

Usage: .venv/bin/python bench/registry.py [--registrations N] [--clients N] [--sizes 10000,100000,1000000]
                                          [--db-max N] [--proofs N]

Prints figures, no pass/fail thresholds:
1. Registrations per second of ~1 MB noise JPEGs through the real HTTP API: a real uvicorn process with
   two workers (as `ipx serve --workers 2`) on SQLite and on PostgreSQL, N parallel clients.
2. Inclusion-proof time at each log size, from the perfect-subtree nodes the log stores (`LogNode`),
   read from a dict and from a real PostgreSQL `log_nodes` table (migrated by `ipx.migrations.upgrade`,
   filled by COPY), next to recomputing the root naively from every leaf (`merkle.root_of_leaves`).
   The table grows in stages, so each size is measured on a table holding exactly that log's nodes.
3. Checkpoint signing: `note.sign_note` alone, and the whole `log.publish_checkpoint` on the largest
   table (root from stored nodes + sign + insert; rolled back so every round does the full work).

PostgreSQL comes from IPX_TEST_PG_URL (as in the tests); throwaway databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import numpy as np
import psycopg
from PIL import Image
from sqlalchemy import update

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")  # tests.conftest imports it

from ipx.db import make_engine, make_session_factory, transaction  # noqa: E402
from ipx.migrations import upgrade  # noqa: E402
from ipx.registry import keys, log, merkle, signing  # noqa: E402
from ipx.registry.models import LogState  # noqa: E402
from ipx.registry.note import Checkpoint, sign_note  # noqa: E402
from tests.conftest import PostgresDatabases, postgres_reachable  # noqa: E402
from tests.integration.live import ipx_server, register_in_parallel, sign_up  # noqa: E402

JPEG_SHAPE = (900, 1200, 3)  # random noise barely compresses: ~1 MB at quality 90
BENCH_ORIGIN = "bench.ipx.example/ipx-log"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def noise_jpegs(count: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        out = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, JPEG_SHAPE, dtype=np.uint8)).save(out, "JPEG", quality=90)
        images.append(out.getvalue())
    return images


@dataclass(frozen=True)
class Throughput:
    backend: str
    registrations: int
    seconds: float
    megabytes: float

    def row(self) -> str:
        rate = self.registrations / self.seconds
        return (f"{self.backend:<11} {self.registrations:>6} {self.seconds:>9.2f} {rate:>10.2f} "
                f"{self.megabytes / self.seconds:>8.2f}")


def registration_throughput(backend: str, database_url: str, workdir: Path, count: int, clients: int) -> Throughput:
    progress(f"registrations on {backend}")
    server = ipx_server(database_url, workdir / backend, workers=2)
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=120) as http:
            accounts = sign_up(http, clients, f"bench-{backend}-")
            assert accounts[0].register(noise_jpegs(1, seed=0)[0], filename="warm.jpg").status_code == 201
            payloads = noise_jpegs(count, seed=1)
            started = time.perf_counter()
            outcomes = register_in_parallel(accounts, payloads, threads=clients, filename="work.jpg")
            seconds = time.perf_counter() - started
    finally:
        server.stop()
    failed = [o.status for o in outcomes if not o.acknowledged]
    if failed:
        raise RuntimeError(f"{len(failed)} registrations failed on {backend}: statuses {set(failed)}")
    return Throughput(backend, count, seconds, sum(map(len, payloads)) / 1e6)


def mean_seconds(function: Callable[[int], object], arguments: Sequence[int]) -> float:
    started = time.perf_counter()
    for argument in arguments:
        function(argument)
    return (time.perf_counter() - started) / len(arguments)


@dataclass(frozen=True)
class ProofFigures:
    size: int
    memory_proof: float
    db_proof: float | None
    naive_root: float
    db_fill: float | None

    def row(self) -> str:
        db = f"{self.db_proof * 1e3:>10.3f}" if self.db_proof is not None else f"{'-':>10}"
        fill = f"{self.db_fill:>9.1f}" if self.db_fill is not None else f"{'-':>9}"
        slowest = self.db_proof if self.db_proof is not None else self.memory_proof
        return (f"{self.size:>9,} {self.memory_proof * 1e3:>11.4f} {db} {self.naive_root * 1e3:>11.1f} "
                f"{self.naive_root / self.memory_proof:>10,.1f} {self.naive_root / slowest:>9,.1f} {fill}")


class NodeTable:
    """A real `log_nodes` table in a migrated PostgreSQL database, filled by COPY as the log grows."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)

    def append(self, nodes: list[tuple[int, int, bytes]], size: int) -> float:
        started = time.perf_counter()
        with psycopg.connect(self.url) as conn:
            with conn.cursor() as cursor, cursor.copy('COPY log_nodes (level, "index", hash) FROM STDIN') as copy:
                for node in nodes:
                    copy.write_row(node)
            conn.execute("ANALYZE log_nodes")
        with transaction(self.sessions) as session:
            session.execute(update(LogState).where(LogState.id == log.LOG_STATE_ID).values(size=size))
        return time.perf_counter() - started

    def proof(self, index: int, size: int) -> list[bytes]:
        """The production path (`log.inclusion_proof`), in a fresh session so no node comes from a cache."""
        with transaction(self.sessions) as session:
            return log.inclusion_proof(session, index, size)


def proof_figures(sizes: list[int], db_max: int, proofs: int, table: NodeTable | None) -> list[ProofFigures]:
    nodes: dict[tuple[int, int], bytes] = {}
    read: merkle.NodeReader = lambda level, index: nodes[(level, index)]  # noqa: E731
    leaves: list[bytes] = []
    pending: list[tuple[int, int, bytes]] = []
    rng = random.Random(7)
    figures = []
    for size in sorted(sizes):
        progress(f"log of {size:,} leaves")
        for index in range(len(leaves), size):
            leaf = merkle.leaf_hash(index.to_bytes(8, "big"))
            leaves.append(leaf)
            for level, position, value in merkle.completed_nodes(index, leaf, read):
                nodes[(level, position)] = value
                pending.append((level, position, value))
        indexes = [rng.randrange(size) for _ in range(proofs)]
        memory = mean_seconds(partial(merkle.inclusion_proof, size=size, read=read), indexes)
        started = time.perf_counter()
        root = merkle.root_of_leaves(leaves)
        naive = time.perf_counter() - started
        assert root == merkle.root_hash(size, read)
        db_proof = fill = None
        if table is not None and size <= db_max:
            fill = table.append(pending, size)
            pending = []
            for index in indexes[:20]:  # the database serves the very proof the dict does, and it verifies
                proof = table.proof(index, size)
                assert proof == merkle.inclusion_proof(index, size, read)
                merkle.verify_inclusion(index, size, leaves[index], proof, root)
            db_proof = mean_seconds(partial(table.proof, size=size), indexes)
        figures.append(ProofFigures(size, memory, db_proof, naive, fill))
    return figures


def signing_figures(table: NodeTable | None, key_dir: Path) -> list[tuple[str, float]]:
    private_key = signing.generate_private_key()
    body = Checkpoint(BENCH_ORIGIN, 1_000_000, merkle.leaf_hash(b"root")).body()
    sign = mean_seconds(lambda _: sign_note(body, BENCH_ORIGIN, private_key), range(2000))
    figures = [("note.sign_note (Ed25519, checkpoint body)", sign)]
    if table is None:
        return figures
    with transaction(table.sessions) as session:
        keys.ensure_active_key(session, key_dir)
        log.ensure_origin(session, BENCH_ORIGIN)
    with transaction(table.sessions) as session:
        signer = keys.active_signer(session, key_dir)
        tree_size = log.size(session)

    def publish(_: int) -> None:
        session = table.sessions()
        try:
            log.publish_checkpoint(session, signer)
        finally:
            session.rollback()
            session.close()

    figures.append((f"log.publish_checkpoint at {tree_size:,} leaves (PostgreSQL)", mean_seconds(publish, range(50))))
    return figures


@contextmanager
def postgres() -> Iterator[PostgresDatabases | None]:
    if not postgres_reachable():
        print("PostgreSQL is not reachable: its figures are skipped.")
        yield None
        return
    databases = PostgresDatabases()
    try:
        yield databases
    finally:
        databases.drop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registrations", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--db-max", type=int, default=1_000_000, help="largest log size filled into the database")
    parser.add_argument("--proofs", type=int, default=200, help="random proofs timed per size")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    total = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="ipx-bench-") as temp, postgres() as databases:
        workdir = Path(temp)
        backends = {"sqlite": f"sqlite:///{workdir / 'bench.db'}"}
        upgrade(backends["sqlite"])
        if databases is not None:
            backends["postgresql"] = databases.new()
        throughput = [
            registration_throughput(name, url, workdir, args.registrations, args.clients)
            for name, url in backends.items()
        ]
        table = NodeTable(databases.new()) if databases is not None else None
        try:
            proofs = proof_figures(sizes, args.db_max, args.proofs, table)
            signing = signing_figures(table, workdir / "keys")
        finally:
            if table is not None:
                table.engine.dispose()

    print(f"\n1. Registrations of ~1 MB JPEGs through HTTP (uvicorn, 2 workers, {args.clients} parallel clients)")
    print(f"{'backend':<11} {'count':>6} {'seconds':>9} {'per sec':>10} {'MB/s':>8}")
    for figure in throughput:
        print(figure.row())
    print(f"\n2. Inclusion proof vs naive root recomputation (mean of {args.proofs} random leaves per size)")
    print(f"{'leaves':>9} {'proof dict':>11} {'proof DB':>10} {'naive root':>11} {'naive/dict':>10} "
          f"{'naive/DB':>9} {'DB fill s':>9}")
    print(f"{'':>9} {'ms':>11} {'ms':>10} {'ms':>11}")
    for figure in proofs:
        print(figure.row())
    if any(figure.db_proof is None for figure in proofs):
        print(f"   (sizes above --db-max={args.db_max:,} or without PostgreSQL: dict only; naive/DB shows naive/dict)")
    print("\n3. Checkpoint signing (mean per call)")
    for name, seconds in signing:
        print(f"{name:<58} {seconds * 1e3:>9.3f} ms")
    print(f"\ntotal benchmark time {time.perf_counter() - total:.0f} s")


if __name__ == "__main__":
    main()

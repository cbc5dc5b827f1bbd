"""Log monitor benchmark: what one `ipx log monitor` run costs, against rebuilding the tree from every entry.

Usage: .venv/bin/python bench/log_monitor.py [--entries 1000000] [--new 1000] [--served 20000]

1. Auditing new entries (`--entries`): the monitor keeps the tree's compact range (one hash per 1-bit of its size) and
   only hashes what was added since its last run; the plain baseline rebuilds the root from all the leaf hashes
   (merkle.root_of_leaves), as a monitor without saved state must. Both give the same root (checked).
2. A whole run against a real server (uvicorn, one worker, SQLite in a temporary directory) over loopback HTTP:
   checkpoint, consistency proof, then `--served` entries downloaded in pages of 1,000, hashed and checked against
   the signed root. Filling the log by registering works through the API would take minutes (about 8 a second), so
   its entries are appended straight to the database with ipx.registry.log.append, the server's own append.
Prints milliseconds; no pass/fail thresholds.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipx.app import bootstrap, create_app
from ipx.config import Settings
from ipx.db import transaction
from ipx.migrations import upgrade
from ipx.registry import keys, log, merkle
from ipx.registry.monitor import RemoteLog, SeenLog, append_leaves, checkpoint_verifiers, observe, root_of_frontier
from tests.integration.live import ipx_server

ROUNDS = 5


def median_ms(action: object, rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def bench_audit(entries: int, new: int) -> None:
    leaves = [hashlib.sha256(n.to_bytes(8, "big")).digest() for n in range(entries)]
    before = entries - new
    frontier = append_leaves(0, (), leaves[:before])
    incremental = median_ms(lambda: root_of_frontier(entries, append_leaves(before, frontier, leaves[before:])))
    rebuilt = median_ms(lambda: merkle.root_of_leaves(leaves), rounds=1)
    same = root_of_frontier(entries, append_leaves(before, frontier, leaves[before:])) == merkle.root_of_leaves(leaves)
    print(f"{new:,} new of {entries:,} entries: compact range {incremental:.2f} ms, rebuild from every leaf "
          f"{rebuilt:.0f} ms, ratio {incremental / rebuilt:.5f} (same root: {same})")


def bench_live_run(served: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        database_url = f"sqlite:///{Path(work) / 'ipx.db'}"
        upgrade(database_url)
        settings = Settings(database_url=database_url, data_dir=Path(work) / "data")  # type: ignore[call-arg]
        app = create_app(settings)
        bootstrap(app.state, settings)
        with transaction(app.state.session_factory) as session:
            for n in range(served):
                log.append(session, "bench", lambda n=n: f'{{"type":"bench","n":{n}}}'.encode())
            log.publish_checkpoint(session, keys.active_signer(session, settings.resolved_key_dir))
        app.state.engine.dispose()
        server = ipx_server(database_url, Path(work) / "data", workers=1)
        server.start()
        try:
            remote = RemoteLog(server.url)
            verifiers = checkpoint_verifiers(remote.client.get(f"{server.url}/.well-known/ipx/keys").json())
            first = observe(remote, None, verifiers, audit=True)
            seen = SeenLog.from_json(first.seen.to_json(), verifiers)
            full = median_ms(lambda: observe(remote, None, verifiers, audit=True))
            again = median_ms(lambda: observe(remote, seen, verifiers, audit=True))
        finally:
            server.stop()
    print(f"a run against a live server holding {first.seen.size:,} entries: first run, downloading and hashing all of "
          f"them, {full:.0f} ms; a later run with nothing new {again:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=1_000)
    parser.add_argument("--served", type=int, default=20_000)
    arguments = parser.parse_args()
    bench_audit(arguments.entries, arguments.new)
    bench_live_run(arguments.served)


if __name__ == "__main__":
    main()

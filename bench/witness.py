"""Witness cosigning benchmark: what a witness's answer, a log's witnessing run and a bundle's checkpoint choice cost.

Usage: .venv/bin/python bench/witness.py [--requests 200] [--entries 20000] [--rounds 20]

1. An IPX witness (uvicorn, one worker, SQLite in a temporary directory) answering add-checkpoint over loopback HTTP
   for a synthetic log growing by 10 entries a request: p50/p99, against the plain baseline of the work the spec
   makes every witness do, in this process and without HTTP or a database (open the note, verify the consistency
   proof, cosign), measured in the same run.
2. `ipx log witness` against that witness (collect_cosignatures, as the command runs it) for a real IPX log of
   --entries entries, 100 new entries before each of --rounds rounds: read the checkpoint, build the consistency
   proof from the database's nodes, post, verify the cosignature, store it.
3. The checkpoint a bundle is proven against: best_witnessed_checkpoint (the most cosigned checkpoint including
   the entry) for the oldest entry (every cosignature row qualifies) and a recent one, against the plain baseline
   latest_checkpoint, with a cosigned checkpoint every 100 entries.
The log's entries are appended straight to the database with ipx.registry.log.append, the server's own append
(registering through the API runs at about 8 works a second). Prints milliseconds; no pass/fail thresholds.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipx.app import bootstrap, create_app
from ipx.config import Settings
from ipx.db import transaction
from ipx.migrations import upgrade
from ipx.registry import keys, log, merkle
from ipx.registry.note import NoteVerifier, cosign, open_checkpoint
from ipx.registry.witnesses import Witness, WitnessPolicy, collect_cosignatures
from ipx.witness.keys import witness_verifier
from ipx.witness.protocol import parse_request
from tests.integration.live import ServerProcess, ipx_server
from tests.witness_log import SyntheticLog

WITNESS_NAME = "bench.example/witness"
COSIGNED_EVERY = 100


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def percentiles(seconds: list[float]) -> str:
    return f"p50 {np.percentile(seconds, 50) * 1000:.2f} ms, p99 {np.percentile(seconds, 99) * 1000:.2f} ms"


def start_witness(work: Path, log_vkey: str) -> ServerProcess:
    database_url = f"sqlite:///{work / 'witness.db'}"
    upgrade(database_url)
    server = ipx_server(database_url, work / "witness", workers=1, witness_logs=[log_vkey], witness_name=WITNESS_NAME)
    server.start()
    return server


def bench_witness_answers(requests: int) -> None:
    synthetic = SyntheticLog("bench.example/log")
    sizes = [1000 + 10 * n for n in range(requests + 1)]
    bodies = [synthetic.request(0, sizes[0])] + [synthetic.request(old, new) for old, new in itertools.pairwise(sizes)]
    with tempfile.TemporaryDirectory() as folder:
        server = start_witness(Path(folder), synthetic.vkey)
        try:
            with httpx.Client(base_url=server.url) as client:
                def post(body: bytes) -> None:
                    response = client.post("/witness/add-checkpoint", content=body)
                    assert response.status_code == 200, response.text

                post(bodies[0])
                answers = [timed(lambda body=body: post(body)) for body in bodies[1:]]
        finally:
            server.stop()
    verifier, key = NoteVerifier(synthetic.origin, synthetic.key.public_key()), Ed25519PrivateKey.generate()
    stored_roots = {size: synthetic.root(size) for size in sizes}
    floor = [timed(lambda body=body: spec_work(verifier, body, stored_roots, key)) for body in bodies[1:]]
    print(f"witness answering add-checkpoint over HTTP, {requests} requests (log of {sizes[0]:,} to {sizes[-1]:,} "
          f"entries): {percentiles(answers)}; the spec's work alone (note, proof, cosignature) {percentiles(floor)}; "
          f"ratio p50 {statistics.median(answers) / statistics.median(floor):.1f}")


def spec_work(verifier: NoteVerifier, body: bytes, stored_roots: dict[int, bytes], key: Ed25519PrivateKey) -> None:
    """What every witness must do for a request, whatever it is written in: the floor the HTTP answer is compared to."""
    request = parse_request(body)
    checkpoint = open_checkpoint(request.note, [verifier])
    merkle.verify_consistency(request.old_size, checkpoint.size, stored_roots[request.old_size], checkpoint.root_hash,
                              request.proof)
    cosign(checkpoint.body(), WITNESS_NAME, key, int(time.time()))


def bench_log_side(entries: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        database_url = f"sqlite:///{work / 'ipx.db'}"
        upgrade(database_url)
        settings = Settings(database_url=database_url, data_dir=work / "data")  # type: ignore[call-arg]
        app = create_app(settings)
        bootstrap(app.state, settings)
        sessions = app.state.session_factory
        signer_dir = settings.resolved_key_dir

        def append(count: int) -> None:
            with transaction(sessions) as session:
                start = log.size(session)
                for n in range(start, start + count):
                    log.append(session, "bench", lambda n=n: f'{{"type":"bench","n":{n}}}'.encode())
                    if (n + 1) % COSIGNED_EVERY == 0:
                        log.publish_checkpoint(session, keys.active_signer(session, signer_dir))
                log.publish_checkpoint(session, keys.active_signer(session, signer_dir))

        append(entries)
        with transaction(sessions) as session:
            log_vkey = NoteVerifier(log.origin(session), keys.active_signer(session, signer_dir).private_key
                                    .public_key()).vkey
        server = start_witness(work, log_vkey)
        try:
            verifier = witness_verifier(work / "witness" / "keys", WITNESS_NAME)
            policy = WitnessPolicy((Witness(verifier, f"{server.url}/witness"),), 1)
            with httpx.Client(timeout=30) as client:
                collect_cosignatures(sessions, client, policy)  # the first sighting: no proof yet
                seconds = []
                for _ in range(rounds):
                    append(COSIGNED_EVERY)
                    seconds.append(timed(lambda: collect_cosignatures(sessions, client, policy)))
        finally:
            server.stop()
        print(f"`ipx log witness` round, one witness, log of {entries:,}+ entries, {COSIGNED_EVERY} new each round, "
              f"{rounds} rounds: {percentiles(seconds)}")
        bench_checkpoint_choice(sessions, entries)
        app.state.engine.dispose()


def bench_checkpoint_choice(sessions: object, entries: int) -> None:
    """Cosignature rows for every published checkpoint of a multiple of COSIGNED_EVERY, as regular runs leave."""
    now = datetime.now(UTC)
    with transaction(sessions) as session:  # type: ignore[arg-type]
        for size in range(COSIGNED_EVERY, entries + 1, COSIGNED_EVERY):
            log.keep_cosignature(session, size, WITNESS_NAME, f"\u2014 {WITNESS_NAME} x\n", now)
        latest = log.latest_checkpoint(session).tree_size

        def median_ms(action: Callable[[], object]) -> float:
            return statistics.median(timed(action) for _ in range(50)) * 1000

        baseline = median_ms(lambda: log.latest_checkpoint(session))
        oldest = median_ms(lambda: log.best_witnessed_checkpoint(session, 0, [WITNESS_NAME]))
        recent = median_ms(lambda: log.best_witnessed_checkpoint(session, latest - COSIGNED_EVERY // 2, [WITNESS_NAME]))
    rows = entries // COSIGNED_EVERY
    print(f"bundle checkpoint choice, {latest:,} checkpoints, {rows:,} cosigned: oldest entry {oldest:.2f} ms, recent "
          f"entry {recent:.2f} ms; latest_checkpoint (baseline) {baseline:.2f} ms; ratio oldest "
          f"{oldest / baseline:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=20)
    arguments = parser.parse_args()
    bench_witness_answers(arguments.requests)
    bench_log_side(arguments.entries, arguments.rounds)


if __name__ == "__main__":
    main()

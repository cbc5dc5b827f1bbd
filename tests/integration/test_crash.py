"""kill -9 the server during parallel registrations: everything acknowledged survives, nothing is half-written."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from ipx.blobs import open_blob_store
from ipx.db import make_engine, make_session_factory, transaction
from ipx.registry import merkle
from ipx.registry.evidence import REGISTRATION_TYPE, verify_bundle
from ipx.registry.models import LogCheckpoint, LogLeaf, LogState, Work
from ipx.registry.note import NoteVerifier, open_checkpoint
from ipx.storage import sweep_orphan_blobs
from tests.conftest import ipx_keys, png_bytes
from tests.integration.independent import tlog
from tests.integration.live import Outcome, ServerProcess, register_in_parallel, sign_up

pytestmark = pytest.mark.slow

BEFORE_CRASH = 5
ATTEMPTS = 300
KILL_AFTER_ACKNOWLEDGED = 40
ACK_WAIT_SECONDS = 300


def latest_checkpoint(http: httpx.Client) -> tuple[int, bytes]:
    keys = http.get("/.well-known/ipx/keys").json()["keys"]
    verifiers = [NoteVerifier.from_vkey(key["note_verifier_key"]) for key in keys]
    checkpoint = open_checkpoint(http.get("/api/v1/log/checkpoint").text, verifiers)
    return checkpoint.size, checkpoint.root_hash


def crash_during_registrations(server: ServerProcess, http: httpx.Client) -> list[Outcome]:
    """Register from 16 clients and SIGKILL the server group once some registrations were acknowledged."""
    accounts = sign_up(http, 4, "crash")
    acknowledged = 0
    enough = threading.Event()
    lock = threading.Lock()

    def count(outcome: Outcome) -> None:
        nonlocal acknowledged
        with lock:
            acknowledged += outcome.acknowledged
            if acknowledged >= KILL_AFTER_ACKNOWLEDGED:
                enough.set()

    def kill_when_enough() -> None:
        enough.wait(ACK_WAIT_SECONDS)
        server.crash()

    killer = threading.Thread(target=kill_when_enough, daemon=True)
    killer.start()
    payloads = [png_bytes(BEFORE_CRASH + n) for n in range(ATTEMPTS)]
    outcomes = register_in_parallel(accounts, payloads, threads=16, on_done=count)
    killer.join()
    assert enough.is_set(), f"only {acknowledged} registrations were acknowledged before the kill"
    return outcomes


def test_acknowledged_registrations_survive_kill_9(
    database_url: str,  # SQLite and PostgreSQL, fresh and migrated
    tmp_path: Path,
    launch_ipx: Callable[..., ServerProcess],
    http_client: Callable[[ServerProcess], httpx.Client],
) -> None:
    server = launch_ipx(database_url, workers=2)
    http = http_client(server)
    early = sign_up(http, 1, "early")[0]
    for seed in range(BEFORE_CRASH):
        assert early.register(png_bytes(seed), title=f"Before the crash {seed}").status_code == 201
    size_before, root_before = latest_checkpoint(http)
    assert size_before == BEFORE_CRASH

    outcomes = crash_during_registrations(server, http)
    acknowledged = [o for o in outcomes if o.acknowledged]
    assert len(acknowledged) < ATTEMPTS, "the kill came after every registration had finished"
    assert all(o.status in (201, None) for o in outcomes), {o.status for o in outcomes}

    server.start()  # same database, same data directory, same port
    for outcome in acknowledged:
        assert outcome.body is not None
        work_id = outcome.body["work_id"]
        bundle = http.get(f"/api/v1/works/{work_id}/evidence")
        assert bundle.status_code == 200, f"acknowledged work {work_id} is gone after the crash"
        report = verify_bundle(bundle.json(), outcome.data, ipx_keys(http))
        assert report.ok, report.as_dict()
        assert http.get(f"/api/v1/verify/{work_id}").json()["valid"] is True

    engine = make_engine(database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            leaves = {leaf.index: leaf for leaf in session.scalars(select(LogLeaf))}
            works = {work.log_index: work for work in session.scalars(select(Work))}
            state_size = session.get(LogState, 1).size  # type: ignore[union-attr]
            assert sorted(leaves) == list(range(state_size)), "the log has a gap or a leaf past its size"
            registration_leaves = {i for i, leaf in leaves.items() if leaf.entry_type == REGISTRATION_TYPE}
            assert registration_leaves == set(works), "a registration leaf without its work, or the reverse"
            assert all(works[i].statement == leaves[i].data for i in works)
            assert state_size == len(works) == session.scalar(select(func.count()).select_from(Work))
            assert session.get(LogCheckpoint, state_size) is not None, "the last append has no checkpoint"
            assert len(works) >= BEFORE_CRASH + len(acknowledged)

            # blobs of registrations that never committed are orphans; the sweep keeps every owned file
            blobs = open_blob_store(f"file://{tmp_path / 'data' / 'blobs'}")
            sweep_orphan_blobs(session, blobs, grace_seconds=0)
            assert {blob.sha256 for blob in blobs.list()} == {work.sha256 for work in works.values()}
    finally:
        engine.dispose()

    size_after, root_after = latest_checkpoint(http)
    assert size_after == state_size
    hashes = [base64.b64decode(h) for h in http.get(
        "/api/v1/log/proof/consistency", params={"first": size_before, "second": size_after}
    ).json()["hashes"]]
    assert tlog.verify_consistency(size_before, size_after, root_before, root_after, hashes)
    merkle.verify_consistency(size_before, size_after, root_before, root_after, hashes)

    after = early.register(png_bytes(BEFORE_CRASH + ATTEMPTS), title="After the restart")
    assert after.status_code == 201 and after.json()["log_index"] == size_after

"""The log asks witnesses to cosign its checkpoints (`ipx log witness`), bundles carry the cosignatures, and verifiers
require a quorum of them. The witness is a real IPX witness (docs/witness.md) in its own uvicorn process, with its
own database, over HTTP."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from fastapi.testclient import TestClient
from sqlalchemy import delete

from ipx.app import create_app
from ipx.config import PROJECT_ROOT, Settings
from ipx.db import make_engine, make_session_factory, transaction
from ipx.migrations import upgrade
from ipx.registry import log
from ipx.registry import witnesses as witnesses_module
from ipx.registry.evidence import published_keys, published_witness_policy, verify_bundle
from ipx.registry.models import CheckpointCosignature
from ipx.registry.note import CosignatureVerifier, open_note
from ipx.registry.witnesses import Outcome, Witness, WitnessPolicy, collect_cosignatures
from ipx.witness.keys import witness_verifier
from tests.conftest import ApiUser, png_bytes
from tests.integration.independent import tlog
from tests.integration.live import ServerProcess, free_port, ipx_server

WITNESS_NAME = "witness.test/w1"


@dataclass
class Witnessed:
    log: TestClient
    settings: Settings
    witness: ServerProcess
    verifier: CosignatureVerifier

    @property
    def policy(self) -> WitnessPolicy:
        assert self.settings.witness_policy is not None
        return self.settings.witness_policy

    def collect(self, policy: WitnessPolicy | None = None) -> list[Outcome]:
        engine = make_engine(self.settings.resolved_database_url)
        try:
            with httpx.Client(timeout=30) as http:
                return collect_cosignatures(make_session_factory(engine), http, policy or self.policy)
        finally:
            engine.dispose()

    def bundle(self, work_id: str) -> dict:
        response = self.log.get(f"/api/v1/works/{work_id}/evidence")
        assert response.status_code == 200, response.text
        return response.json()

    def verify(self, bundle: dict, policy: WitnessPolicy | None = None):  # type: ignore[no-untyped-def]
        keys = self.log.get("/.well-known/ipx/keys").json()
        return verify_bundle(bundle, None, published_keys(keys), (), policy or published_witness_policy(keys))


def start_witness(directory: Path, log_vkeys: list[str]) -> ServerProcess:
    directory.mkdir(parents=True)
    database_url = f"sqlite:///{directory / 'witness.db'}"
    upgrade(database_url)
    server = ipx_server(database_url, directory / "data", workers=1, witness_logs=log_vkeys, witness_name=WITNESS_NAME)
    server.start()
    return server


@pytest.fixture
def witnessed(make_settings, tmp_path: Path) -> Iterator[Witnessed]:
    with TestClient(create_app(make_settings())) as first_start:  # the log's key and origin
        log_vkey = first_start.get("/.well-known/ipx/keys").json()["keys"][0]["note_verifier_key"]
    server = start_witness(tmp_path / "witness", [log_vkey])
    try:
        verifier = witness_verifier(tmp_path / "witness" / "data" / "keys", WITNESS_NAME)
        settings = make_settings(log_witnesses=[f"{verifier.vkey} {server.url}/witness"])
        with TestClient(create_app(settings)) as log:
            yield Witnessed(log, settings, server, verifier)
    finally:
        server.stop()


def register(client: TestClient, seed: int) -> str:
    return ApiUser(client, f"w{seed}@example.org", f"Wit {seed}").register(png_bytes(seed), title=f"W{seed}").json()[
        "work_id"]


def test_cosigned_checkpoints_make_bundles_pass_a_quorum_and_new_entries_wait_for_the_next_run(
    witnessed: Witnessed,
) -> None:
    first = register(witnessed.log, 1)
    published = witnessed.log.get("/.well-known/ipx/keys").json()["witnesses"]
    assert published == {"quorum": 1, "cosigners": [
        {"name": WITNESS_NAME, "vkey": witnessed.verifier.vkey, "url": f"{witnessed.witness.url}/witness"}]}
    unwitnessed = witnessed.verify(witnessed.bundle(first))
    assert not unwitnessed.ok
    assert "cosigned by 0 of the 1 witnesses required" in unwitnessed.checks[-1].detail
    assert "download it again later" in unwitnessed.checks[-1].detail
    assert "<dt>Witnessed</dt><dd>not cosigned by a witness yet</dd>" in witnessed.log.get("/").text

    [outcome] = witnessed.collect()

    assert outcome == Outcome(WITNESS_NAME, 1, stored=True)
    bundle = witnessed.bundle(first)
    report = witnessed.verify(bundle)
    assert report.ok, report.checks
    assert report.witnessed is not None and report.witnessed.startswith(f"cosigned by {WITNESS_NAME} (")
    assert open_note(bundle["log"]["checkpoint"], [witnessed.verifier]).cosigned_at[0][0] == WITNESS_NAME
    independent = tlog.verify_note(bundle["log"]["checkpoint"],  # a verifier that knows no witness ignores its line
                                   [tlog.raw_public_key(bundle["log"]["checkpoint_key"]["public_key_pem"])])
    assert independent["size"] == 1 and independent["signers"] == [bundle["log"]["origin"]]
    checkpoint = witnessed.log.get("/api/v1/log/checkpoint").text
    assert checkpoint == bundle["log"]["checkpoint"] and checkpoint.count("\u2014 ") == 2
    home = witnessed.log.get("/").text
    assert f'tree size 1, cosigned by <span class="one-line mono" title="{WITNESS_NAME}">{WITNESS_NAME}</span>' in home

    second = register(witnessed.log, 2)
    assert witnessed.bundle(first)["log"]["tree_size"] == 1  # still proven against the cosigned checkpoint
    assert not witnessed.verify(witnessed.bundle(second)).ok  # no cosigned checkpoint includes it yet
    assert witnessed.collect() == [Outcome(WITNESS_NAME, 2, stored=True)]  # with a consistency proof from 1
    assert witnessed.verify(witnessed.bundle(second)).ok
    assert witnessed.verify(witnessed.bundle(first)).ok
    assert witnessed.collect() == [Outcome(WITNESS_NAME, 2, stored=False)]  # the same size again: already kept


def test_a_lost_answer_is_resynchronised_from_the_size_the_witness_holds(witnessed: Witnessed) -> None:
    register(witnessed.log, 3)
    witnessed.collect()
    register(witnessed.log, 4)
    engine = make_engine(witnessed.settings.resolved_database_url)
    with transaction(make_session_factory(engine)) as session:  # as if the witness's answer never arrived
        session.execute(delete(CheckpointCosignature))
    engine.dispose()

    assert witnessed.collect() == [Outcome(WITNESS_NAME, 2, stored=True)]  # 409 "size 1", then a proof from 1


def test_without_the_witness_nothing_is_stored_and_the_command_says_why(witnessed: Witnessed) -> None:
    register(witnessed.log, 5)
    gone = f"http://127.0.0.1:{free_port()}"
    policy = WitnessPolicy((Witness(witnessed.verifier, gone),), 1)
    [outcome] = witnessed.collect(policy)
    assert not outcome.stored and outcome.problem is not None and "cannot be reached" in outcome.problem

    ran = run_witness_command(witnessed.settings, [f"{witnessed.verifier.vkey} {gone}"])
    assert ran.returncode == 1
    assert "cannot be reached" in ran.stderr and "0 of the 1 cosignatures required" in ran.stderr

    ran = run_witness_command(witnessed.settings, witnessed.settings.log_witnesses)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == f"{WITNESS_NAME} cosigned size 1"


def test_a_witness_that_does_not_know_the_log_or_its_key_refuses(witnessed: Witnessed, tmp_path: Path) -> None:
    register(witnessed.log, 6)
    other = start_witness(tmp_path / "other", [])  # witnesses no log
    try:
        verifier = witness_verifier(tmp_path / "other" / "data" / "keys", WITNESS_NAME)
        [outcome] = witnessed.collect(WitnessPolicy((Witness(verifier, f"{other.url}/witness"),), 1))
    finally:
        other.stop()
    assert outcome.problem is not None and "does not witness this log" in outcome.problem
    impostor = CosignatureVerifier(WITNESS_NAME, witness_verifier(tmp_path / "impostor", "x").public_key)
    [outcome] = witnessed.collect(WitnessPolicy((Witness(impostor, f"{witnessed.witness.url}/witness"),), 1))
    assert outcome.problem is not None and "no valid cosignature" in outcome.problem  # signed by another key


def run_witness_command(settings: Settings, witnesses: list[str]) -> subprocess.CompletedProcess[str]:
    """`ipx log witness`, as cron runs it, on the test's database."""
    env = {**os.environ, "IPX_DATA_DIR": str(settings.data_dir), "IPX_DATABASE_URL": settings.resolved_database_url,
           "IPX_LOG_WITNESSES": json.dumps(witnesses)}
    return subprocess.run([sys.executable, "-m", "ipx.cli", "log", "witness"], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env=env)


def _sqlite_site(directory: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{directory / 'ipx.db'}", data_dir=directory / "data",
                    public_url="http://testserver")


def test_a_second_history_signed_with_the_same_key_is_refused_by_the_witness(tmp_path: Path) -> None:
    """A copy of the log's database and key that goes on with other entries (a fork shown to someone else): the
    witness that cosigned the real log refuses the copy's checkpoints, whatever size they reach."""
    real_dir, fork_dir = tmp_path / "real", tmp_path / "fork"
    real_dir.mkdir()
    upgrade(f"sqlite:///{real_dir / 'ipx.db'}")
    with TestClient(create_app(_sqlite_site(real_dir))) as log:
        log_vkey = log.get("/.well-known/ipx/keys").json()["keys"][0]["note_verifier_key"]
        register(log, 7)
    shutil.copytree(real_dir / "data", fork_dir / "data")
    with sqlite3.connect(real_dir / "ipx.db") as live, sqlite3.connect(fork_dir / "ipx.db") as copy:
        live.backup(copy)
    server = start_witness(tmp_path / "witness", [log_vkey])
    try:
        verifier = witness_verifier(tmp_path / "witness" / "data" / "keys", WITNESS_NAME)
        entry = f"{verifier.vkey} {server.url}/witness"
        real = Witnessed(TestClient(create_app(_sqlite_site(real_dir))), _sqlite_site(real_dir), server, verifier)
        real.settings = real.settings.model_copy(update={"log_witnesses": [entry]})
        with real.log:
            register(real.log, 8)
            assert real.collect()[0].problem is None  # the real log at size 2
        fork_settings = _sqlite_site(fork_dir).model_copy(update={"log_witnesses": [entry]})
        fork = Witnessed(TestClient(create_app(fork_settings)), fork_settings, server, verifier)
        with fork.log:
            register(fork.log, 9)  # size 2, another root
            [same_size] = fork.collect()
            register(fork.log, 10)  # size 3, no proof from the real size-2 tree
            [larger] = fork.collect()
    finally:
        server.stop()
    assert same_size.problem is not None and "another history" in same_size.problem
    assert larger.problem is not None and "another history" in larger.problem


def test_ipx_verify_requires_the_published_quorum_or_the_verifiers_own_witnesses(
    witnessed: Witnessed, tmp_path: Path
) -> None:
    work = register(witnessed.log, 11)
    witnessed.collect()
    bundle, keys = tmp_path / "bundle.json", tmp_path / "ipx-keys.json"
    bundle.write_text(json.dumps(witnessed.bundle(work)))
    keys.write_text(json.dumps(witnessed.log.get("/.well-known/ipx/keys").json()))

    def verify(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ipx.cli", "verify", str(bundle), "--keys", str(keys), *options],
                              capture_output=True, text=True, cwd=PROJECT_ROOT)

    published = verify()
    assert published.returncode == 0, published.stdout
    assert f"WITNESSED: the checkpoint is cosigned by {WITNESS_NAME} (" in published.stdout
    stranger = CosignatureVerifier("stranger.example/w", witness_verifier(tmp_path / "stranger", "s").public_key)
    own = verify("--witness", stranger.vkey)
    assert own.returncode == 1 and "cosigned by 0 of the 1 witnesses required" in own.stdout
    assert verify("--witness", stranger.vkey, "--witness", witnessed.verifier.vkey).returncode == 0
    more = verify("--quorum", "2")
    assert more.returncode == 2 and "a quorum of 2 needs between 1 and 1" in more.stderr
    assert verify("--witness", "not-a-key").returncode == 2


def test_the_documented_cosignature_check_accepts_the_witness_and_catches_a_forged_time(witnessed: Witnessed) -> None:
    """docs/verify.md's few lines for checking a cosignature by hand, run as written."""
    document = (PROJECT_ROOT / "docs" / "verify.md").read_text()
    section = document[document.index("## Witnesses"):]
    start = section.index("```python\n") + len("```python\n")
    snippet = section[start:section.index("\n```", start)]
    work = register(witnessed.log, 12)
    witnessed.collect()
    note = witnessed.bundle(work)["log"]["checkpoint"]
    printed: list[str] = []
    exec(snippet, {"note": note, "witness_vkey": witnessed.verifier.vkey, "print": printed.append})
    assert printed and printed[0].startswith(f"cosigned by {WITNESS_NAME} at ")
    line = note.splitlines()[-1]
    name, blob = line[2:].rsplit(" ", 1)
    raw = base64.b64decode(blob)
    forged_time = raw[:4] + (int.from_bytes(raw[4:12], "big") - 3600).to_bytes(8, "big") + raw[12:]
    forged = note.replace(line, f"\u2014 {name} {base64.b64encode(forged_time).decode()}")
    with pytest.raises(InvalidSignature):
        exec(snippet, {"note": forged, "witness_vkey": witnessed.verifier.vkey, "print": printed.append})


def test_two_runs_at_once_keep_one_cosignature(witnessed: Witnessed, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cron overlapping a manual run: both get a cosignature of the same size and store it at the same moment (on
    PostgreSQL both inserts race; SQLite lets one writer in at a time); neither run fails."""
    register(witnessed.log, 13)
    both_answered = threading.Barrier(2, timeout=60)
    ask = witnesses_module.request_cosignature

    def answered_together(*args, **kwargs):  # type: ignore[no-untyped-def]
        cosignature = ask(*args, **kwargs)
        both_answered.wait()
        return cosignature

    monkeypatch.setattr(witnesses_module, "request_cosignature", answered_together)
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(witnessed.collect) for _ in range(2)]
        outcomes = [outcome for run in runs for outcome in run.result()]

    assert all(outcome.problem is None and outcome.tree_size == 1 for outcome in outcomes)
    assert sorted(outcome.stored for outcome in outcomes) == [False, True]


def test_retired_witnesses_cosignatures_do_not_choose_the_bundles_checkpoint(witnessed: Witnessed) -> None:
    """Two witnesses the log no longer asks cosigned size 1; the one it asks now cosigns size 2: a bundle for the
    first entry is proven against size 2, which a verifier of the current policy accepts."""
    first = register(witnessed.log, 14)
    engine = make_engine(witnessed.settings.resolved_database_url)
    with transaction(make_session_factory(engine)) as session:
        for retired in ("retired.example/a", "retired.example/b"):
            line = f"\u2014 {retired} {base64.b64encode(os.urandom(76)).decode()}\n"
            log.keep_cosignature(session, 1, retired, line, datetime.now(UTC))
    engine.dispose()
    register(witnessed.log, 15)
    assert witnessed.collect() == [Outcome(WITNESS_NAME, 2, stored=True)]

    bundle = witnessed.bundle(first)
    assert bundle["log"]["tree_size"] == 2
    assert witnessed.verify(bundle).ok


def test_a_witness_answer_is_quoted_without_its_control_characters(witnessed: Witnessed) -> None:
    """`ipx log witness` prints part of a refusing witness's answer: escapes in it must not reach the terminal."""

    class Hostile(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b"bad\x1b[2J\x1b]0;owned\x07 request")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        register(witnessed.log, 16)
        ran = run_witness_command(witnessed.settings,
                                  [f"{witnessed.verifier.vkey} http://127.0.0.1:{server.server_port}"])
    finally:
        server.shutdown()
    assert ran.returncode == 1
    assert "\x1b" not in ran.stderr and "\x07" not in ran.stderr
    assert "says the request is malformed (bad\\x1b[2J\\x1b]0;owned\\x07 request)" in ran.stderr

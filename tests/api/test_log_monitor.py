"""`ipx log monitor`: a log that only grows passes; a fork, a rollback or tampered entries are caught with evidence."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from ipx.app import create_app
from ipx.config import Settings
from ipx.db import transaction
from ipx.migrations import upgrade
from ipx.registry import merkle
from ipx.registry.monitor import (
    LogInconsistent,
    MonitorError,
    RemoteLog,
    SeenLog,
    append_leaves,
    checkpoint_verifiers,
    observe,
    root_of_frontier,
)
from ipx.registry.note import NoteVerifier
from ipx.registry.service import rotate_key
from tests.conftest import ApiUser, png_bytes
from tests.integration.live import ipx_server

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_the_frontier_rebuilds_every_tree_size_however_the_leaves_arrive() -> None:
    chunks = random.Random(7)
    leaves = [merkle.leaf_hash(f"entry {n}".encode()) for n in range(70)]
    size, frontier = 0, ()
    while size < len(leaves):
        step = chunks.randint(1, 9)
        frontier = append_leaves(size, frontier, leaves[size:size + step])
        size = min(size + step, len(leaves))
        assert root_of_frontier(size, frontier) == merkle.root_of_leaves(leaves[:size])
    assert root_of_frontier(0, ()) == merkle.root_of_leaves([])
    with pytest.raises(MonitorError, match="has 3 subtrees, not 2"):
        root_of_frontier(7, frontier[:2])


def _site(directory: Path) -> TestClient:
    return TestClient(create_app(Settings(  # type: ignore[call-arg]
        database_url=f"sqlite:///{directory / 'ipx.db'}", data_dir=directory / "data", public_url="http://testserver",
    )))


@pytest.fixture
def site_a(tmp_path: Path) -> Iterator[TestClient]:
    (tmp_path / "a").mkdir()
    upgrade(f"sqlite:///{tmp_path / 'a' / 'ipx.db'}")
    with _site(tmp_path / "a") as client:
        yield client


def _verifiers(client: httpx.Client) -> list[NoteVerifier]:
    return checkpoint_verifiers(client.get("/.well-known/ipx/keys").json())


def _watch(client: httpx.Client, seen: SeenLog | None, *, audit: bool = True):  # type: ignore[no-untyped-def]
    return observe(RemoteLog("http://testserver", client), seen, _verifiers(client), audit=audit)


def _copy_site(source: Path, target: Path) -> None:
    """The same database and key elsewhere: a second history that starts from the first one's past."""
    target.mkdir()
    shutil.copytree(source / "data", target / "data")
    with sqlite3.connect(source / "ipx.db") as live, sqlite3.connect(target / "ipx.db") as copy:
        live.backup(copy)


def test_a_growing_log_is_accepted_and_its_new_entries_listed(site_a: TestClient) -> None:
    creator = ApiUser(site_a, "ada@example.org", "Ada")
    first = _watch(site_a, None)
    assert first.status == "first seen" and first.previous_size is None
    assert [index for index, _ in first.entries] == list(range(first.seen.size))

    assert creator.register(png_bytes(1), title="Harbour at dawn").status_code == 201
    assert creator.register(png_bytes(2), title="Harbour at dusk").status_code == 201
    saved = SeenLog.from_json(first.seen.to_json(), _verifiers(site_a))
    grown = _watch(site_a, saved)
    assert (grown.status, grown.previous_size, grown.seen.size) == ("grown", first.seen.size, first.seen.size + 2)
    assert [statement["title"] for _, statement in grown.entries] == ["Harbour at dawn", "Harbour at dusk"]
    assert _watch(site_a, grown.seen).status == "unchanged"
    without_entries = _watch(site_a, SeenLog(first.seen.checkpoint, first.seen.origin, first.seen.size,
                                             first.seen.root_hash), audit=False)
    assert without_entries.status == "grown" and without_entries.seen.frontier is None


def test_a_second_history_signed_with_the_same_key_is_caught(site_a: TestClient, tmp_path: Path) -> None:
    creator = ApiUser(site_a, "ada@example.org", "Ada")
    assert creator.register(png_bytes(1)).status_code == 201
    _copy_site(tmp_path / "a", tmp_path / "b")
    assert creator.register(png_bytes(2), title="Shown to everyone").status_code == 201
    seen_on_a = _watch(site_a, None).seen
    with _site(tmp_path / "b") as site_b:
        split = ApiUser(site_b, "eve@example.org", "Eve")
        assert split.register(png_bytes(3), title="Shown to some").status_code == 201
        assert split.register(png_bytes(4), title="Shown to some, too").status_code == 201
        assert _watch(site_b, None, audit=False).seen.size > seen_on_a.size
        with pytest.raises(LogInconsistent, match="not consistent with the tree") as caught:
            _watch(site_b, seen_on_a, audit=False)
    assert caught.value.checkpoints[0] == seen_on_a.checkpoint
    assert caught.value.evidence().count("as IPX served it") == 2


def test_a_log_that_went_back_is_caught_before_and_after_it_diverges(site_a: TestClient, tmp_path: Path) -> None:
    creator = ApiUser(site_a, "ada@example.org", "Ada")
    assert creator.register(png_bytes(1)).status_code == 201
    _copy_site(tmp_path / "a", tmp_path / "b")
    assert creator.register(png_bytes(2)).status_code == 201
    seen_on_a = _watch(site_a, None).seen
    with _site(tmp_path / "b") as restored_from_backup:
        with pytest.raises(LogInconsistent, match="cannot prove the smaller part of the larger"):
            _watch(restored_from_backup, seen_on_a)
        newcomer = ApiUser(restored_from_backup, "bob@example.org", "Bob")
        for seed in (3, 4, 5):
            assert newcomer.register(png_bytes(seed)).status_code == 201
        with pytest.raises(LogInconsistent, match="not consistent with the tree"):
            _watch(restored_from_backup, seen_on_a)


class CachedRemoteLog(RemoteLog):
    """A site behind a cache that still serves an earlier checkpoint (a real one, as IPX signed it)."""

    def __init__(self, client: httpx.Client, cached_size: int) -> None:
        super().__init__("http://testserver", client)
        self.cached_size = cached_size

    def checkpoint(self) -> str:
        return self.client.get(f"{self.site}/api/v1/log/checkpoints/{self.cached_size}").text


def test_an_older_checkpoint_proven_part_of_the_seen_tree_is_only_stale(site_a: TestClient) -> None:
    creator = ApiUser(site_a, "ada@example.org", "Ada")
    assert creator.register(png_bytes(1)).status_code == 201
    earlier = _watch(site_a, None).seen.size
    assert creator.register(png_bytes(2)).status_code == 201
    seen = _watch(site_a, None).seen
    stale = observe(CachedRemoteLog(site_a, earlier), seen, _verifiers(site_a), audit=True)
    assert (stale.status, stale.previous_size, stale.seen, stale.entries) == ("older", seen.size, seen, [])


def _rewrite_leaves(database: Path, old: bytes, new: bytes) -> None:
    """What an operator with write access to the database could do: change a logged statement in place."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute('SELECT "index", data FROM log_leaves').fetchall()
        changed = [(data.replace(old, new), index) for index, data in rows if old in data]
        assert changed
        connection.executemany('UPDATE log_leaves SET data = ? WHERE "index" = ?', changed)


def test_entries_that_do_not_add_up_to_the_signed_tree_are_caught(site_a: TestClient, tmp_path: Path) -> None:
    creator = ApiUser(site_a, "ada@example.org", "Ada")
    assert creator.register(png_bytes(1), title="Original").status_code == 201
    _rewrite_leaves(tmp_path / "a" / "ipx.db", b"Original", b"Rewrite!")
    assert _watch(site_a, None, audit=False).status == "first seen"  # the checkpoint alone cannot tell
    with pytest.raises(LogInconsistent, match="do not add up to the tree"):
        _watch(site_a, None)


def test_a_checkpoint_signed_by_another_key_or_a_tampered_state_is_refused(site_a: TestClient, tmp_path: Path) -> None:
    seen = _watch(site_a, None).seen
    origin, size, *rest = seen.checkpoint.split("\n")
    forged = json.loads(seen.to_json()) | {"checkpoint": "\n".join([origin, str(int(size) + 1), *rest])}
    with pytest.raises(MonitorError, match="saved state cannot be used"):
        SeenLog.from_json(json.dumps(forged), _verifiers(site_a))
    (tmp_path / "other").mkdir()
    upgrade(f"sqlite:///{tmp_path / 'other' / 'ipx.db'}")
    with _site(tmp_path / "other") as other, pytest.raises(MonitorError, match="not signed by a key in use"):
        observe(RemoteLog("http://testserver", site_a), None, _verifiers(other), audit=False)
    with pytest.raises(MonitorError, match="lists no key in use"):
        checkpoint_verifiers({"log_origin": seen.origin, "keys": []})


def test_a_key_rotation_keeps_the_saved_state_good(site_a: TestClient) -> None:
    assert ApiUser(site_a, "ada@example.org", "Ada").register(png_bytes(1)).status_code == 201
    seen = _watch(site_a, None).seen
    signed_by_the_retired_key = CachedRemoteLog(site_a, seen.size - 1)
    with transaction(site_a.app.state.session_factory) as session:  # type: ignore[attr-defined]
        rotate_key(session, site_a.app.state.settings.resolved_key_dir)  # type: ignore[attr-defined]
    keys_now = site_a.get("/.well-known/ipx/keys").json()
    saved = SeenLog.from_json(seen.to_json(), checkpoint_verifiers(keys_now, retired_too=True))
    with pytest.raises(MonitorError, match="cannot be used"):
        SeenLog.from_json(seen.to_json(), checkpoint_verifiers(keys_now))
    after = observe(RemoteLog("http://testserver", site_a), saved, checkpoint_verifiers(keys_now), audit=True)
    assert (after.status, after.seen.size) == ("unchanged", seen.size)
    assert after.seen.checkpoint != seen.checkpoint  # re-signed with the new key at rotation
    assert signed_by_the_retired_key.checkpoint().startswith(seen.origin)
    with pytest.raises(MonitorError, match="not signed by a key in use"):
        observe(signed_by_the_retired_key, saved, checkpoint_verifiers(keys_now), audit=False)


def _monitor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ipx.cli", "log", "monitor", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=120)


def test_the_command_against_a_running_site(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'ipx.db'}"
    upgrade(database_url)
    server = ipx_server(database_url, tmp_path / "data", workers=1)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            keys, state = tmp_path / "keys.json", tmp_path / "monitor.json"
            keys.write_text(client.get("/.well-known/ipx/keys").text)
            args = (server.url, "--keys", str(keys), "--state", str(state))
            first = _monitor(*args)
            assert first.returncode == 0 and first.stdout.startswith("FIRST SEEN"), first.stderr
            creator = ApiUser(client, "ada@example.org", "Ada")  # type: ignore[arg-type]
            assert creator.register(png_bytes(1), title="Lighthouse").status_code == 201
            grown = _monitor(*args, "--entries")
            assert grown.returncode == 0, grown.stderr
            assert "CONSISTENT: the log grew from" in grown.stdout and "Lighthouse" in grown.stdout
            assert "UNCHANGED" in _monitor(*args).stdout
            report = json.loads(_monitor(*args, "--json", "--entries").stdout)
            assert (report["status"], report["entries"]) == ("unchanged", [])
            assert report["tree_size"] == report["previous_size"] > 0

            _rewrite_leaves(tmp_path / "ipx.db", b"Lighthouse", b"Lightship")
            kept = state.read_text()
            audit = _monitor(server.url, "--keys", str(keys), "--state", str(tmp_path / "fresh.json"), "--entries")
            assert audit.returncode == 1 and audit.stdout.startswith("INCONSISTENT"), audit.stdout + audit.stderr
            assert "Lightship" not in audit.stdout and (tmp_path / "fresh.json.conflict").exists()
            assert not (tmp_path / "fresh.json").exists() and state.read_text() == kept

            state.write_text("{}")
            assert _monitor(*args).returncode == 2
        server.stop()
        down = _monitor(server.url, "--keys", str(keys), "--state", str(tmp_path / "fresh.json"))
        assert down.returncode == 3 and "cannot reach" in down.stderr
    finally:
        server.stop()

"""`ipx log monitor`: a log that only grows passes; a fork, a rollback or tampered entries are caught with evidence."""

from __future__ import annotations

import base64
import json
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
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
    Refused,
    RemoteLog,
    SeenLog,
    UnusableLocalFile,
    append_leaves,
    checkpoint_verifiers,
    observe,
    root_of_frontier,
)
from ipx.registry.note import NoteVerifier
from ipx.registry.service import rotate_key
from tests.conftest import ApiUser, png_bytes
from tests.integration.live import free_port, ipx_server

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
    assert creator.register(png_bytes(1), title="Harbour at noon").status_code == 201
    first = _watch(site_a, None)
    assert (first.status, first.previous_size, first.seen.size) == ("first seen", None, 1)
    assert [statement["title"] for _, statement in first.entries] == ["Harbour at noon"]

    for seed, title in ((2, "Harbour at dawn"), (3, "Harbour at dusk"), (4, "Harbour at night")):
        assert creator.register(png_bytes(seed), title=title).status_code == 201
    saved = SeenLog.from_json(first.seen.to_json(), _verifiers(site_a))
    grown = _watch(site_a, saved)  # a real proof from 1 to 4 entries, and leaves added to a kept frontier
    assert (grown.status, grown.previous_size, grown.served_size) == ("grown", 1, 4)
    assert [index for index, _ in grown.entries] == [1, 2, 3]
    assert [statement["title"] for _, statement in grown.entries][-1] == "Harbour at night"
    assert creator.register(png_bytes(5)).status_code == 201
    assert _watch(site_a, grown.seen, audit=False).status == "grown"  # 4 to 5: another real proof

    unchanged = _watch(site_a, _watch(site_a, None).seen, audit=False)
    assert unchanged.status == "unchanged" and unchanged.seen.frontier is not None  # kept for the next audit
    without_frontier = SeenLog(first.seen.checkpoint, first.seen.origin, first.seen.size, first.seen.root_hash)
    assert _watch(site_a, without_frontier, audit=False).seen.frontier is None  # grown: the old one no longer fits
    rebuilt = _watch(site_a, without_frontier)  # no frontier kept: the whole log again, only the new ones listed
    assert [index for index, _ in rebuilt.entries] == [1, 2, 3, 4]


@pytest.mark.parametrize("extra_on_b", [1, 2], ids=["same size", "larger"])
def test_a_second_history_signed_with_the_same_key_is_caught(
    site_a: TestClient, tmp_path: Path, extra_on_b: int
) -> None:
    creator = ApiUser(site_a, "ada@example.org", "Ada")
    assert creator.register(png_bytes(1)).status_code == 201
    _copy_site(tmp_path / "a", tmp_path / "b")  # the same key and first entry: a second history from here
    assert creator.register(png_bytes(2), title="Shown to everyone").status_code == 201
    seen_on_a = _watch(site_a, None).seen
    with _site(tmp_path / "b") as site_b:
        split = ApiUser(site_b, "eve@example.org", "Eve")
        for seed in range(3, 3 + extra_on_b):
            assert split.register(png_bytes(seed), title="Shown to some").status_code == 201
        assert _watch(site_b, None, audit=False).served_size == seen_on_a.size + extra_on_b - 1
        with pytest.raises(LogInconsistent, match="cannot both be true") as caught:
            _watch(site_b, seen_on_a, audit=False)
    assert caught.value.checkpoints[0] == seen_on_a.checkpoint
    evidence = caught.value.evidence()
    assert evidence.count("as IPX served it") == 2 and "consistency proof from" in evidence


def test_a_log_that_went_back_is_caught_before_and_after_it_diverges(site_a: TestClient, tmp_path: Path) -> None:
    _copy_site(tmp_path / "a", tmp_path / "empty_copy")  # the same key and log before any entry
    creator = ApiUser(site_a, "ada@example.org", "Ada")
    assert creator.register(png_bytes(1)).status_code == 201
    _copy_site(tmp_path / "a", tmp_path / "b")
    assert creator.register(png_bytes(2)).status_code == 201
    seen_on_a = _watch(site_a, None).seen
    with _site(tmp_path / "empty_copy") as emptied, pytest.raises(LogInconsistent, match="now serves an empty log"):
        _watch(emptied, seen_on_a)
    with _site(tmp_path / "b") as restored_from_backup:
        with pytest.raises(LogInconsistent, match=r"went back.*refuses to prove"):
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


class UnreachableProofs(CachedRemoteLog):
    """The cache answers, the site behind it does not."""

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        return RemoteLog(f"http://127.0.0.1:{free_port()}").consistency_proof(first, second)


class GarbledProofs(RemoteLog):
    """A site (or something between) that damages the proofs it passes on."""

    def __init__(self, client: httpx.Client, damage: Callable[[list[bytes]], list[bytes]]) -> None:
        super().__init__("http://testserver", client)
        self.damage = damage

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        return self.damage(super().consistency_proof(first, second))


def test_an_older_checkpoint_is_stale_only_when_proven_and_a_glitch_is_no_fork(site_a: TestClient) -> None:
    creator = ApiUser(site_a, "ada@example.org", "Ada")
    for seed in (1, 2, 3):
        assert creator.register(png_bytes(seed)).status_code == 201
    earlier = _watch(site_a, None).seen.size
    for seed in (4, 5):
        assert creator.register(png_bytes(seed)).status_code == 201
    seen = _watch(site_a, None).seen
    stale = observe(CachedRemoteLog(site_a, earlier), seen, _verifiers(site_a), audit=True)
    assert (stale.status, stale.previous_size, stale.served_size, stale.seen) == ("older", seen.size, earlier, seen)
    with pytest.raises(MonitorError, match="cannot reach") as unreachable:
        observe(UnreachableProofs(site_a, earlier), seen, _verifiers(site_a), audit=False)
    assert not isinstance(unreachable.value, Refused)
    before = SeenLog.from_json(_watch(site_a, None).seen.to_json(), _verifiers(site_a))
    assert creator.register(png_bytes(6)).status_code == 201
    for damage in (lambda proof: [node[:31] for node in proof], lambda proof: proof[:-1], lambda proof: []):
        with pytest.raises(MonitorError, match="malformed consistency proof"):
            observe(GarbledProofs(site_a, damage), before, _verifiers(site_a), audit=False)
    flipped = GarbledProofs(site_a, lambda proof: [bytes(32), *proof[1:]])
    with pytest.raises(LogInconsistent):  # well-formed and wrong: that is evidence
        observe(flipped, before, _verifiers(site_a), audit=False)


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
    with pytest.raises(LogInconsistent, match="do not add up to the tree") as caught:
        _watch(site_a, None)
    assert "Anyone can download entries 0 to 0" in caught.value.evidence()


def test_a_checkpoint_signed_by_another_key_or_a_tampered_state_is_refused(site_a: TestClient, tmp_path: Path) -> None:
    seen = _watch(site_a, None).seen
    origin, size, *rest = seen.checkpoint.split("\n")
    forged = json.loads(seen.to_json()) | {"checkpoint": "\n".join([origin, str(int(size) + 1), *rest])}
    short_node = json.loads(seen.to_json()) | {"frontier": [base64.b64encode(bytes(31)).decode()]}
    for damaged in (forged, short_node, {"version": 1, "checkpoint": ["\n"]}):
        with pytest.raises(UnusableLocalFile, match="saved state cannot be used"):
            SeenLog.from_json(json.dumps(damaged), _verifiers(site_a))
    with pytest.raises(UnusableLocalFile, match="not IPX's published keys"):
        checkpoint_verifiers({"log_origin": 5, "keys": []})
    (tmp_path / "other").mkdir()
    upgrade(f"sqlite:///{tmp_path / 'other' / 'ipx.db'}")
    with _site(tmp_path / "other") as other, pytest.raises(UnusableLocalFile, match="not signed by a key in use"):
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
    with pytest.raises(UnusableLocalFile, match="not signed by a key in use"):
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
            forging = "Nice\u202e  99: “Forged” was registered by Mallory"  # line breaks are refused; overrides not
            assert creator.register(png_bytes(2), title=forging).status_code == 201
            grown = _monitor(*args, "--entries")
            assert grown.returncode == 0, grown.stderr
            assert "CONSISTENT: the log grew from 0 to 2" in grown.stdout and "“Lighthouse”" in grown.stdout
            assert "\u202e" not in grown.stdout and "Nice\\u202e  99:" in grown.stdout
            assert "UNCHANGED" in _monitor(*args).stdout
            report = json.loads(_monitor(*args, "--json", "--entries").stdout)
            assert (report["status"], report["entries"], report["tree_size"], report["previous_size"]) == (
                "unchanged", [], 2, 2)

            assert creator.register(png_bytes(3), title="Lighthouse, later").status_code == 201
            _rewrite_leaves(tmp_path / "ipx.db", b"Lighthouse, later", b"Lightship, later")
            kept = state.read_text()
            audit = _monitor(*args, "--entries")
            assert audit.returncode == 1 and audit.stdout.startswith("INCONSISTENT"), audit.stdout + audit.stderr
            assert "entries 2 to 2 the site served do not add up" in audit.stdout
            assert state.read_text() == kept and "IPX served it" in Path(f"{state}.conflict").read_text()

            state.write_text("{}")
            not_a_state = _monitor(*args)
            assert not_a_state.returncode == 2 and "saved state cannot be used" in not_a_state.stderr
            (tmp_path / "bad-keys.json").write_text(json.dumps({"log_origin": 5, "keys": []}))
            bad_keys = _monitor(server.url, "--keys", str(tmp_path / "bad-keys.json"), "--state", str(state))
            assert bad_keys.returncode == 2 and "not IPX's published keys" in bad_keys.stderr
            nowhere = _monitor(server.url, "--keys", str(keys), "--state", str(tmp_path / "missing" / "state.json"))
            assert nowhere.returncode == 2 and "cannot be saved" in nowhere.stderr
            malformed = _monitor("http://[::1", "--keys", str(keys), "--state", str(tmp_path / "fresh.json"))
            assert malformed.returncode == 3 and "Traceback" not in malformed.stderr
        server.stop()
        down = _monitor(server.url, "--keys", str(keys), "--state", str(tmp_path / "fresh.json"))
        assert down.returncode == 3 and "cannot reach" in down.stderr
    finally:
        server.stop()

"""200 parallel registrations against two uvicorn workers on PostgreSQL: one gap-free, provable log.

Every checkpoint and proof is checked twice: by the independent verifier of the shared conformance
kit and by `ipx.registry.merkle`, so neither can pass by agreeing with a bug of its own.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ipx.registry import merkle
from ipx.registry.note import NoteVerifier, open_checkpoint
from tests.conftest import PostgresDatabases, png_bytes
from tests.integration.independent import tlog
from tests.integration.live import ServerProcess, register_in_parallel, sign_up

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REGISTRATIONS = 200
ACCOUNTS = 8
THREADS = 16


def b64(value: str) -> bytes:
    return base64.b64decode(value)


def published_keys(http: httpx.Client) -> tuple[list[bytes], list[NoteVerifier]]:
    keys = http.get("/.well-known/ipx/keys").json()["keys"]
    raw = [tlog.raw_public_key(key["public_key_pem"]) for key in keys]
    return raw, [NoteVerifier.from_vkey(key["note_verifier_key"]) for key in keys]


def all_entries(http: httpx.Client, size: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    while len(entries) < size:
        page = http.get("/api/v1/log/entries", params={"start": len(entries), "end": size})
        assert page.status_code == 200, page.text
        entries += page.json()["entries"]
    return entries


def test_parallel_registrations_form_one_consistent_log(
    pg_databases: PostgresDatabases,
    launch_ipx: Callable[..., ServerProcess],
    http_client: Callable[[ServerProcess], httpx.Client],
) -> None:
    # Twice (stops 28 and 29) a request of the checkpoint loop below got no answer, the connection closed, with no
    # worker dying in server.log: the access log says whether such a request reached the server at all.
    server = launch_ipx(pg_databases.new(), workers=2, access_log=True)
    http = http_client(server)
    accounts = sign_up(http, ACCOUNTS, "parallel")
    payloads = [png_bytes(seed) for seed in range(REGISTRATIONS)]
    assert len(set(payloads)) == REGISTRATIONS

    outcomes = register_in_parallel(accounts, payloads, threads=THREADS)

    assert [o.status for o in outcomes] == [201] * REGISTRATIONS, [o.body for o in outcomes if o.status != 201][:3]
    works = {o.body["log_index"]: o.body for o in outcomes if o.body}
    assert sorted(works) == list(range(REGISTRATIONS)), "log indexes have a gap or a duplicate"

    raw_keys, verifiers = published_keys(http)
    checkpoints: dict[int, bytes] = {}
    for size in range(1, REGISTRATIONS + 1):
        response = http.get(f"/api/v1/log/checkpoints/{size}")
        assert response.status_code == 200, f"no checkpoint was published at size {size}"
        independent = tlog.verify_note(response.text, raw_keys)
        ours = open_checkpoint(response.text, verifiers)
        assert independent["size"] == ours.size == size
        assert independent["root"] == ours.root_hash
        checkpoints[size] = ours.root_hash
    latest = open_checkpoint(http.get("/api/v1/log/checkpoint").text, verifiers)
    assert (latest.size, latest.root_hash) == (REGISTRATIONS, checkpoints[REGISTRATIONS])

    # each checkpoint commits exactly the first `size` leaves of the log as it stands now
    entries = all_entries(http, REGISTRATIONS)
    leaf_hashes = [tlog.leaf_hash(b64(entry["leaf"])) for entry in entries]
    assert leaf_hashes == [b64(entry["leaf_hash"]) for entry in entries]
    for size, root in checkpoints.items():
        assert merkle.root_of_leaves(leaf_hashes[:size]) == root, f"checkpoint {size} does not commit the log prefix"

    last = REGISTRATIONS
    for size in range(1, last):
        hashes = [b64(h) for h in http.get("/api/v1/log/proof/consistency", params={"first": size, "second": last})
                  .json()["hashes"]]
        assert tlog.verify_consistency(size, last, checkpoints[size], checkpoints[last], hashes), size
        merkle.verify_consistency(size, last, checkpoints[size], checkpoints[last], hashes)

    registered_at = []
    for index, entry in enumerate(entries):
        statement = json.loads(b64(entry["leaf"]))
        work = works[index]
        assert entry["type"] == "ipx.registration/v1"
        assert (statement["work_id"], statement["sha256"]) == (work["work_id"], work["sha256"])
        proof = http.get("/api/v1/log/proof/inclusion", params={"index": index, "size": last}).json()
        hashes = [b64(h) for h in proof["hashes"]]
        assert b64(proof["leaf_hash"]) == leaf_hashes[index]
        assert tlog.verify_inclusion(index, last, leaf_hashes[index], hashes, checkpoints[last]), index
        merkle.verify_inclusion(index, last, leaf_hashes[index], hashes, checkpoints[last])
        registered_at.append(statement["registered_at"])
    # the timestamp is taken under the append lock, so time order is log order even across workers
    assert registered_at == sorted(registered_at)


def test_the_same_file_sent_twice_at_once_is_registered_once(
    pg_databases: PostgresDatabases,
    launch_ipx: Callable[..., ServerProcess],
    http_client: Callable[[ServerProcess], httpx.Client],
) -> None:
    """A double-clicked upload: both requests pass the "already registered?" check before either commits. The loser
    used to reach the unique index and answer a bare 500; it is a 409 naming the work, and the log holds one entry."""
    server = launch_ipx(pg_databases.new(), workers=2)
    http = http_client(server)
    [account] = sign_up(http, 1, "twice")
    attempts = 6
    outcomes = register_in_parallel([account], [png_bytes(seed) for seed in range(attempts) for _ in (1, 2)],
                                    threads=2)
    for first, second in zip(outcomes[::2], outcomes[1::2], strict=True):
        assert sorted([first.status, second.status]) == [201, 409], (first.body, second.body)
        created, refused = (first, second) if first.status == 201 else (second, first)
        assert refused.body is not None and refused.body["work_id"] == created.body["work_id"]  # type: ignore[index]
    assert open_checkpoint(http.get("/api/v1/log/checkpoint").text, published_keys(http)[1]).size == attempts

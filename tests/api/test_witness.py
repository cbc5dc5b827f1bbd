"""POST /witness/add-checkpoint (C2SP tlog-witness): every answer the spec names, on SQLite and PostgreSQL, with
checkpoints of a synthetic log whose roots and consistency proofs are real."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from httpx import Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from ipx.app import create_app
from ipx.audit import service as audit_service
from ipx.audit.models import AuditEvent
from ipx.cli import app as cli_app
from ipx.config import Settings
from ipx.db import transaction
from ipx.registry.note import Checkpoint, CosignatureVerifier, NoteVerifier, add_signatures, open_note, sign_note
from ipx.witness import keys, service
from ipx.witness.models import WitnessedLog
from ipx.witness.protocol import SIZE_MEDIA_TYPE, parse_request, parse_size, render_request
from tests.races import interleave
from tests.witness_log import SyntheticLog

ORIGIN = "log.example/ipx-log"


@pytest.fixture
def log() -> SyntheticLog:
    return SyntheticLog(ORIGIN)


@pytest.fixture
def witness(make_settings: Callable[..., Settings], log: SyntheticLog) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(witness_logs=[log.vkey]))) as client:
        yield client


def submit(client: TestClient, body: bytes) -> Response:
    return client.post("/witness/add-checkpoint", content=body)


def witness_verifier(client: TestClient) -> CosignatureVerifier:
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    return keys.witness_verifier(settings.resolved_key_dir, settings.resolved_witness_name)


def stored(client: TestClient) -> WitnessedLog | None:
    with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        return session.get(WitnessedLog, ORIGIN)


def evidence(client: TestClient, body: bytes) -> list[dict[str, object]]:
    with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        note = parse_request(body).note
        text = note[: note.rfind("\n\n") + 1]  # kept once per checkpoint, whatever the proof or other signatures
        events = audit_service.for_subject(session, "checkpoint", hashlib.sha256(text.encode()).hexdigest())
        return [event.details for event in events if event.action == service.INCONSISTENT_ACTION]


def test_a_first_checkpoint_is_cosigned_and_kept(witness: TestClient, log: SyntheticLog) -> None:
    answer = submit(witness, log.request(0, 5))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.text.startswith("\u2014 ") and answer.text.endswith("\n")
    cosigned = open_note(add_signatures(log.checkpoint(5), [answer.text]),
                         [NoteVerifier.from_vkey(log.vkey), witness_verifier(witness)])
    assert [name for name, _ in cosigned.cosigned_at] == ["testserver/witness"]
    row = stored(witness)
    assert row is not None and (row.tree_size, row.root_hash, row.note) == (5, log.root(5), log.checkpoint(5))


def test_a_checkpoint_extending_the_cosigned_one_is_cosigned(witness: TestClient, log: SyntheticLog) -> None:
    assert submit(witness, log.request(0, 3)).status_code == 200
    for old, new in ((3, 8), (8, 13), (13, 16)):
        answer = submit(witness, log.request(old, new))
        assert answer.status_code == 200, answer.text
    row = stored(witness)
    assert row is not None and (row.tree_size, row.root_hash) == (16, log.root(16))


def test_the_same_checkpoint_again_gets_a_fresh_cosignature(witness: TestClient, log: SyntheticLog) -> None:
    assert submit(witness, log.request(0, 7)).status_code == 200
    again = submit(witness, log.request(7, 7))
    assert again.status_code == 200, again.text
    opened = open_note(add_signatures(log.checkpoint(7), [again.text]), [witness_verifier(witness)])
    assert opened.verified_by == ("testserver/witness",)


def test_a_stale_old_size_gets_the_cosigned_size(witness: TestClient, log: SyntheticLog) -> None:
    never_seen = submit(witness, log.request(4, 9))
    assert (never_seen.status_code, never_seen.text) == (409, "0\n")
    assert never_seen.headers["content-type"] == SIZE_MEDIA_TYPE
    assert submit(witness, log.request(0, 9)).status_code == 200
    stale = submit(witness, log.request(4, 12))
    assert (stale.status_code, stale.headers["content-type"]) == (409, SIZE_MEDIA_TYPE)
    assert parse_size(stale.content) == 9
    assert submit(witness, log.request(parse_size(stale.content), 12)).status_code == 200


@pytest.mark.parametrize("body", [
    b"",
    b"old 0\n",  # no empty line before the checkpoint
    b"new 0\n\n",
    b"old 01\n\n",
    b"old -1\n\n",
    b"old 9223372036854775808\n\n",
    b"old 0\nnot base64!\n\n",
    b"old 0\nAAAA\n\n",  # base64, but not a 32-byte hash
    b"old 0\n" + b"A" * 43 + b"=\n" * 64 + b"\n",  # 64 proof lines
    b"old 0\n\xff\n\n",
    b"old 0\n\nlog.example/ipx-log\x00\n1\n",
], ids=["empty", "no-blank-line", "no-old", "leading-zero", "negative", "too-large", "proof-not-base64",
        "proof-not-hash", "64-proof-lines", "not-utf8", "nul"])
def test_a_malformed_request_is_a_400(witness: TestClient, body: bytes) -> None:
    answer = submit(witness, body)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"].startswith("The request is malformed")


def test_a_malformed_checkpoint_is_a_400(witness: TestClient, log: SyntheticLog) -> None:
    no_signature_block = log.checkpoint(3).split("\n\n")[0] + "\n"
    assert submit(witness, render_request(0, [], no_signature_block)).status_code == 400
    bad_size = log.checkpoint(3).replace("\n3\n", "\nthree\n", 1)
    assert submit(witness, render_request(0, [], bad_size)).status_code == 400


def test_an_empty_tree_with_another_root_than_that_of_nothing_is_a_400(witness: TestClient, log: SyntheticLog) -> None:
    assert submit(witness, log.request(0, 0)).status_code == 200  # SHA-256 of nothing: cosigned
    body = Checkpoint(log.origin, 0, bytes(32)).body()
    answer = submit(witness, render_request(0, [], sign_note(body, log.origin, log.key)))
    assert answer.status_code == 400 and "SHA-256 of nothing" in answer.json()["detail"]


def test_an_old_size_beyond_the_checkpoint_is_a_400(witness: TestClient, log: SyntheticLog) -> None:
    answer = submit(witness, render_request(6, [], log.checkpoint(5)))
    assert answer.status_code == 400
    assert "larger than the checkpoint's size 5" in answer.json()["detail"]


def test_an_unknown_origin_is_a_404(witness: TestClient) -> None:
    answer = submit(witness, SyntheticLog("other.example/log").request(0, 2))
    assert answer.status_code == 404
    assert "'other.example/log'" in answer.json()["detail"]


def test_a_witness_of_no_logs_knows_no_origin(make_settings: Callable[..., Settings], log: SyntheticLog) -> None:
    with TestClient(create_app(make_settings())) as client:
        assert submit(client, log.request(0, 2)).status_code == 404


def test_a_checkpoint_not_signed_by_the_logs_key_is_a_403(witness: TestClient, log: SyntheticLog) -> None:
    impostor = submit(witness, render_request(0, [], log.checkpoint(4, key=Ed25519PrivateKey.generate())))
    assert impostor.status_code == 403, impostor.text
    assert "no valid signature by a trusted key" in impostor.json()["detail"]
    note = log.checkpoint(4)
    signature = note.split("\n\n")[1].split(" ")[-1]  # the known key's line, its signature bytes altered
    tampered = note.replace(signature, signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:])
    assert submit(witness, render_request(0, [], tampered)).status_code == 403
    assert stored(witness) is None


def test_signatures_by_unknown_keys_are_ignored(witness: TestClient, log: SyntheticLog) -> None:
    note = log.checkpoint(4)
    stranger = sign_note(note.split("\n\n")[0] + "\n", "stranger.example", Ed25519PrivateKey.generate())
    answer = submit(witness, render_request(0, [], add_signatures(note, [stranger.split("\n\n")[1]])))
    assert answer.status_code == 200, answer.text


def test_a_proof_from_another_history_is_a_422_and_kept(witness: TestClient, log: SyntheticLog) -> None:
    assert submit(witness, log.request(0, 6)).status_code == 200
    fork = log.forked()
    body = render_request(6, fork.proof(6, 11), fork.checkpoint(11))
    answer = submit(witness, body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "does not verify" in answer.json()["detail"]
    [kept] = evidence(witness, body)
    assert kept["submitted"] == body.decode() and kept["cosigned_note"] == log.checkpoint(6)
    assert submit(witness, body).status_code == 422
    assert len(evidence(witness, body)) == 1  # a replayed refusal is kept once
    row = stored(witness)
    assert row is not None and row.tree_size == 6


def test_made_up_proofs_for_one_checkpoint_are_kept_once(witness: TestClient, log: SyntheticLog) -> None:
    """The log's checkpoints are public: resending one with ever new made-up proofs must not grow the audit log."""
    assert submit(witness, log.request(0, 6)).status_code == 200
    bodies = [render_request(6, [bytes([n]) * 32], log.checkpoint(11)) for n in range(3)]
    assert [submit(witness, body).status_code for body in bodies] == [422] * 3
    with transaction(witness.app.state.session_factory) as session:  # type: ignore[attr-defined]
        kept = session.scalars(select(AuditEvent).where(AuditEvent.action == service.INCONSISTENT_ACTION)).all()
        assert [event.details["submitted"] for event in kept] == [bodies[0].decode()]


def test_a_proof_when_the_old_size_is_zero_is_a_422(witness: TestClient, log: SyntheticLog) -> None:
    body = render_request(0, log.proof(2, 5), log.checkpoint(5))
    assert submit(witness, body).status_code == 422
    assert evidence(witness, body) == []
    assert stored(witness) is None


def test_a_proof_between_equal_sizes_is_a_422(witness: TestClient, log: SyntheticLog) -> None:
    assert submit(witness, log.request(0, 5)).status_code == 200
    assert submit(witness, render_request(5, log.proof(2, 5), log.checkpoint(5))).status_code == 422


def test_the_same_size_with_another_root_is_a_409_and_kept(witness: TestClient, log: SyntheticLog) -> None:
    assert submit(witness, log.request(0, 9)).status_code == 200
    body = log.forked().request(9, 9)
    answer = submit(witness, body)
    assert answer.status_code == 409, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "forked" in answer.json()["detail"]
    [kept] = evidence(witness, body)
    assert kept["origin"] == ORIGIN and kept["cosigned_size"] == 9
    row = stored(witness)
    assert row is not None and row.root_hash == log.root(9)


def test_a_body_over_64_kib_is_a_413(witness: TestClient, log: SyntheticLog) -> None:
    answer = submit(witness, log.request(0, 3) + b"\n" * 65 * 1024)
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"


def test_two_submissions_from_one_size_cosign_only_one(witness: TestClient, log: SyntheticLog) -> None:
    assert submit(witness, log.request(0, 4)).status_code == 200
    start = threading.Barrier(2)
    answers: dict[int, int] = {}

    def send(size: int) -> None:
        start.wait()
        answers[size] = submit(witness, log.request(4, size)).status_code

    threads = [threading.Thread(target=send, args=(size,)) for size in (10, 20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers.values()) == [200, 409]
    winner = next(size for size, status in answers.items() if status == 200)
    row = stored(witness)
    assert row is not None and row.tree_size == winner


@pytest.mark.parametrize("first_sighting", [True, False], ids=["insert", "update"])
def test_the_later_of_two_interleaved_submissions_is_a_409(
    witness: TestClient, log: SyntheticLog, database_url: str, first_sighting: bool
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers at BEGIN, so two transactions cannot interleave there")
    old = 0 if first_sighting else 4
    if not first_sighting:
        assert submit(witness, log.request(0, old)).status_code == 200
    context = witness.app.state.witness  # type: ignore[attr-defined]

    def add(size: int) -> Callable[[Session], None]:
        return lambda session: service.add_checkpoint(session, log.request(old, size), witness=context) and None

    with pytest.raises(service.OldSizeMismatch) as refused:
        interleave(witness.app.state.session_factory, add(10), add(20))  # type: ignore[attr-defined]
    assert refused.value.size == 10
    row = stored(witness)
    assert row is not None and row.tree_size == 10


def test_one_checkpoint_submitted_twice_at_once_is_kept_once(
    witness: TestClient, log: SyntheticLog, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers at BEGIN, so two transactions cannot interleave there")
    assert submit(witness, log.request(0, 6)).status_code == 200
    context = witness.app.state.witness  # type: ignore[attr-defined]
    body = render_request(6, [b"\x01" * 32], log.checkpoint(11))

    def refuse(session: Session) -> None:
        with pytest.raises(service.InconsistentCheckpoint):  # refused, and kept as evidence when committed
            service.add_checkpoint(session, body, witness=context)

    interleave(witness.app.state.session_factory, refuse, refuse)  # type: ignore[attr-defined]
    assert len(evidence(witness, body)) == 1


def test_the_witness_key_is_created_once_and_private(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    first = keys.witness_verifier(key_dir, "w.example/witness")
    written = (key_dir / keys.KEY_FILE).read_bytes()
    assert os.stat(key_dir / keys.KEY_FILE).st_mode & 0o777 == 0o600
    keys._create(key_dir / keys.KEY_FILE)  # a second worker racing the first: it loses and changes nothing
    assert (key_dir / keys.KEY_FILE).read_bytes() == written
    assert sorted(p.name for p in key_dir.iterdir()) == [keys.KEY_FILE]
    assert keys.witness_verifier(key_dir, "w.example/witness").vkey == first.vkey


def test_racing_workers_create_one_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / keys.KEY_FILE
    start = threading.Barrier(8)
    written: list[bytes] = []

    def create() -> None:
        start.wait()
        keys._create(path)
        written.append(path.read_bytes())

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(written)) == 1 and written[0] == path.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == [keys.KEY_FILE]


def test_ipx_witness_key_prints_what_log_operators_configure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, witness: TestClient, log: SyntheticLog
) -> None:
    settings: Settings = witness.app.state.settings  # type: ignore[attr-defined]
    monkeypatch.setenv("IPX_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("IPX_PUBLIC_URL", settings.public_url)
    result = CliRunner().invoke(cli_app, ["witness", "key"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.output.splitlines())
    assert lines["witness name"] == "testserver/witness"
    assert lines["submission prefix"] == "http://testserver/witness"
    verifier = CosignatureVerifier.from_vkey(lines["cosignature key"])
    cosignature = submit(witness, log.request(0, 2)).text  # the served key is the printed one
    opened = open_note(add_signatures(log.checkpoint(2), [cosignature]), [verifier])
    assert opened.verified_by == ("testserver/witness",)


def test_an_invalid_log_key_fails_at_start_naming_the_setting(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValidationError, match="IPX_WITNESS_LOGS"):
        make_settings(witness_logs=["log.example+00000000+AAAA"])
    with pytest.raises(ValidationError, match="longer than 255"):
        make_settings(witness_logs=[SyntheticLog("x" * 256).vkey])
    with pytest.raises(ValidationError, match="IPX_WITNESS_NAME"):
        make_settings(witness_name="my witness")

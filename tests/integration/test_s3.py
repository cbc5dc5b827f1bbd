"""The S3 blob store against moto's S3 server running as a real process, alone and behind the API."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient

from ipx.app import create_app
from ipx.blobs import CHUNK_BYTES, RecentDigests, S3BlobStore, StoredBlob, open_blob_store
from ipx.config import Settings
from ipx.db import transaction
from ipx.storage import sweep_orphan_blobs
from tests.conftest import ApiUser, png_bytes
from tests.integration.live import moto_server

BUCKET = "ipx-blobs"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto_server on a free port with a bucket, and dummy AWS credentials boto3 will sign with."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "ipx-test-key")
        env.setenv("AWS_SECRET_ACCESS_KEY", "ipx-test-secret")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        server = moto_server(tmp_path_factory.mktemp("moto"))
        try:
            server.start()
            boto3.client("s3", endpoint_url=server.url, region_name=REGION).create_bucket(Bucket=BUCKET)
            yield server.url
        finally:
            server.stop()


@pytest.fixture
def prefix() -> str:
    """A key prefix of the shared bucket that no other test uses."""
    return f"blobs-{uuid.uuid4().hex[:12]}"


def write_file(directory: Path, data: bytes) -> tuple[str, Path]:
    path = directory / f"upload-{hashlib.sha256(data).hexdigest()[:8]}"
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest(), path


def test_put_read_exists_list_delete_round_trip(s3_endpoint: str, prefix: str, tmp_path: Path) -> None:
    store = open_blob_store(f"s3://{BUCKET}/{prefix}", endpoint_url=s3_endpoint)
    assert isinstance(store, S3BlobStore)
    first, first_path = write_file(tmp_path, b"first blob " * 1000)
    second, second_path = write_file(tmp_path, b"second blob")
    assert not store.exists(first) and list(store.list()) == []

    store.put_file(first, first_path)
    store.put_file(first, first_path)  # content-addressed: a second put of the same content is harmless
    store.put_file(second, second_path)
    assert store.exists(first) and store.exists(second)
    assert store.read(first) == first_path.read_bytes()
    assert store.read(second) == b"second blob"
    assert store.digest(first) == first and store.digest(second) == second  # read back as a stream
    listed = {blob.sha256: blob.modified_at for blob in store.list()}
    assert set(listed) == {first, second}
    assert all(moment.utcoffset() == timedelta(0) for moment in listed.values())  # aware UTC, as the sweeper needs

    store.delete(first)
    assert not store.exists(first) and store.exists(second)
    assert [blob.sha256 for blob in store.list()] == [second]
    with pytest.raises(FileNotFoundError):
        store.read(first)


def test_list_sees_only_its_own_prefix_and_content_names(s3_endpoint: str, prefix: str, tmp_path: Path) -> None:
    store = open_blob_store(f"s3://{BUCKET}/{prefix}/", endpoint_url=s3_endpoint)
    neighbour = open_blob_store(f"s3://{BUCKET}/{prefix}-other", endpoint_url=s3_endpoint)
    mine, mine_path = write_file(tmp_path, b"mine")
    theirs, theirs_path = write_file(tmp_path, b"theirs")
    store.put_file(mine, mine_path)
    neighbour.put_file(theirs, theirs_path)
    raw = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION)
    raw.put_object(Bucket=BUCKET, Key=f"{prefix}/README.txt", Body=b"not a blob")
    assert raw.get_object(Bucket=BUCKET, Key=f"{prefix}/{mine}")["Body"].read() == b"mine"

    assert [blob.sha256 for blob in store.list()] == [mine]
    assert [blob.sha256 for blob in neighbour.list()] == [theirs]
    assert not store.exists(theirs)
    with pytest.raises(ValueError, match="not a lowercase hex SHA-256"):
        store.exists("../" + mine[3:])


@pytest.fixture
def s3_client(make_settings: Callable[..., Settings], s3_endpoint: str, prefix: str) -> Iterator[TestClient]:
    settings = make_settings(blob_url=f"s3://{BUCKET}/{prefix}", s3_endpoint_url=s3_endpoint)
    with TestClient(create_app(settings)) as client:
        yield client


def test_registration_stores_the_file_in_s3_and_verifies(s3_client: TestClient, s3_endpoint: str, prefix: str) -> None:
    data = png_bytes(7)
    work = ApiUser(s3_client, "s3@example.org", "S3 Creator").register(data, title="Stored in S3").json()
    sha256 = hashlib.sha256(data).hexdigest()
    assert work["sha256"] == sha256
    raw = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION)
    assert raw.get_object(Bucket=BUCKET, Key=f"{prefix}/{sha256}")["Body"].read() == data

    verdict = s3_client.get(f"/api/v1/verify/{work['work_id']}").json()
    assert verdict["valid"] is True, verdict
    # "file hash" is only checked when the server could read the file back from S3
    assert "file hash" in {check["name"] for check in verdict["checks"] if check["ok"]}


def test_a_file_larger_than_one_piece_streams_back_from_s3(s3_client: TestClient, s3_endpoint: str,
                                                           prefix: str) -> None:
    owner = ApiUser(s3_client, "s3-file@example.org", "S3 Owner")
    data = os.urandom(CHUNK_BYTES * 2 + 12345)  # three pieces: the last one is held back until the digest matches
    work = owner.register(data, title="Three pieces", filename="tape.bin").json()

    delivered = s3_client.get(f"/api/v1/works/{work['work_id']}/file", headers=owner.headers)

    assert delivered.status_code == 200, delivered.text
    assert delivered.content == data
    raw = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION)
    raw.delete_object(Bucket=BUCKET, Key=f"{prefix}/{work['sha256']}")
    missing = s3_client.get(f"/api/v1/works/{work['work_id']}/file", headers=owner.headers)
    assert missing.status_code == 500
    assert "cannot find this work's stored file" in missing.json()["detail"]


def test_orphan_sweep_removes_unreferenced_blobs_only(s3_client: TestClient, tmp_path: Path) -> None:
    referenced = png_bytes(11)
    work = ApiUser(s3_client, "sweep@example.org", "Sweeper").register(referenced).json()
    orphan, orphan_path = write_file(tmp_path, b"uploaded, but its registration never committed")
    store = s3_client.app.state.registry.blobs  # type: ignore[attr-defined]
    store.put_file(orphan, orphan_path)

    with transaction(s3_client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        removed = sweep_orphan_blobs(session, store, grace_seconds=0)

    assert removed == [orphan]
    assert not store.exists(orphan) and store.exists(work["sha256"])
    assert s3_client.get(f"/api/v1/verify/{work['work_id']}").json()["valid"] is True


def test_grace_period_protects_uploads_in_flight(s3_client: TestClient, tmp_path: Path) -> None:
    in_flight, path = write_file(tmp_path, b"registration still running")
    store = s3_client.app.state.registry.blobs  # type: ignore[attr-defined]
    store.put_file(in_flight, path)
    with transaction(s3_client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        assert sweep_orphan_blobs(session, store, grace_seconds=3600) == []
    assert store.exists(in_flight)


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_storing_content_again_renews_its_age(kind: str, s3_endpoint: str, prefix: str, tmp_path: Path) -> None:
    """An orphan an interrupted registration left, whose bytes are registered again: the sweep's grace period must
    count from this registration, or the sweep deletes the file under it before it commits."""
    url = f"s3://{BUCKET}/{prefix}" if kind == "s3" else f"file://{tmp_path / 'blobs'}"
    store = open_blob_store(url, endpoint_url=s3_endpoint)
    sha256, path = write_file(tmp_path, b"left by a registration that crashed")
    store.put_file(sha256, path)
    if kind == "local":
        os.utime(tmp_path / "blobs" / sha256[:2] / sha256[2:4] / sha256, (0, 0))
    else:
        time.sleep(1.1)  # S3 keeps whole seconds
    [before] = [blob.modified_at for blob in store.list()]
    store.put_file(sha256, path)
    [after] = [blob.modified_at for blob in store.list()]
    assert after > before and store.read(sha256) == path.read_bytes()


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_the_sweep_spares_a_blob_stored_again_after_it_listed_it(
    kind: str, s3_client: TestClient, s3_endpoint: str, prefix: str, tmp_path: Path, monkeypatch
) -> None:
    """The sweep lists, then asks the database, then deletes: a registration re-storing an old orphan's bytes in
    between (not yet committed, so unseen) must keep its file."""
    store = open_blob_store(f"s3://{BUCKET}/{prefix}" if kind == "s3" else f"file://{tmp_path / 'blobs'}",
                            endpoint_url=s3_endpoint)
    sha256, path = write_file(tmp_path, b"an orphan's bytes, registered again")
    store.put_file(sha256, path)  # stored (or renewed) just now, after the sweep's listing below
    listed_long_ago = StoredBlob(sha256, datetime(2001, 1, 1, tzinfo=UTC))
    monkeypatch.setattr(store, "list", lambda: iter([listed_long_ago]))
    with transaction(s3_client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        assert sweep_orphan_blobs(session, store, grace_seconds=3600) == []
    assert store.exists(sha256)


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_stored_files_are_read_back_at_most_once_per_period(
    kind: str, s3_endpoint: str, prefix: str, tmp_path: Path
) -> None:
    """Every view of a work's public page re-checks its stored file: within the period the digest read back last
    answers, so page views cannot make the server re-read a large file again and again."""
    store = open_blob_store(f"s3://{BUCKET}/{prefix}" if kind == "s3" else f"file://{tmp_path / 'blobs'}",
                            endpoint_url=s3_endpoint)
    sha256, path = write_file(tmp_path, b"a registered work " * 10_000)
    store.put_file(sha256, path)
    recent = RecentDigests(store, seconds=3600)
    assert recent.digest(sha256) == sha256
    store.delete(sha256)
    assert recent.digest(sha256) == sha256  # read back within the period: not read again
    assert RecentDigests(store, seconds=0).digest(sha256) is None  # past it, the loss shows


def test_a_file_missing_from_s3_is_reported_not_a_server_error(s3_client: TestClient) -> None:
    data = png_bytes(13)
    work = ApiUser(s3_client, "lost@example.org", "Lost File").register(data).json()
    s3_client.app.state.registry.blobs.delete(work["sha256"])  # type: ignore[attr-defined]

    response = s3_client.get(f"/api/v1/verify/{work['work_id']}")
    assert response.status_code == 200, response.text
    verdict = response.json()
    assert verdict["valid"] is False
    assert [check["name"] for check in verdict["checks"] if not check["ok"]] == ["stored file"]

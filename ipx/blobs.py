"""Content-addressed blob store: a local directory (default) or S3 through boto3.

Blobs are keyed by their SHA-256, so writing the same content twice is harmless and a blob can be
checked against its name at any time. Writes happen before the database commit; a blob whose
registration never committed is an orphan, removed by `sweep_orphans` after a grace period.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlparse

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    modified_at: datetime


class BlobStore(Protocol):
    def put_file(self, sha256: str, path: Path) -> None:
        """Store the file under its SHA-256. Content that is already stored has its age renewed instead: it may be
        an orphan an interrupted registration left, which the sweep would otherwise delete under this one."""

    def read(self, sha256: str) -> bytes: ...
    def chunks(self, sha256: str) -> Iterator[bytes]:
        """The stored bytes in pieces, for sending a file of any size; FileNotFoundError, when the blob is missing,
        comes from this call itself rather than from the first piece, so an answer can still be a refusal."""
    def digest(self, sha256: str) -> str:
        """The SHA-256 of the stored bytes, read as a stream (FileNotFoundError when missing)."""
    def exists(self, sha256: str) -> bool: ...
    def modified_at(self, sha256: str) -> datetime | None:
        """When the blob was last stored or renewed; None when it is not there."""
    def delete(self, sha256: str) -> None: ...
    def list(self) -> Iterator[StoredBlob]: ...


def _check_name(sha256: str) -> str:
    if not SHA256_HEX.match(sha256):
        raise ValueError(f"blob name {sha256!r} is not a lowercase hex SHA-256")
    return sha256


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        _check_name(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put_file(self, sha256: str, path: Path) -> None:
        target = self._path(sha256)
        if target.exists():
            os.utime(target)  # renewed: see BlobStore.put_file
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write to a temporary name, fsync, then rename: a crash leaves either the whole blob or none.
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out, path.open("rb") as source:
                while chunk := source.read(CHUNK_BYTES):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def read(self, sha256: str) -> bytes:
        return self._path(sha256).read_bytes()

    def chunks(self, sha256: str) -> Iterator[bytes]:
        return _pieces_of(self._path(sha256).open("rb"))

    def digest(self, sha256: str) -> str:
        with self._path(sha256).open("rb") as stored:
            return hashlib.file_digest(stored, "sha256").hexdigest()

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def modified_at(self, sha256: str) -> datetime | None:
        try:
            return datetime.fromtimestamp(self._path(sha256).stat().st_mtime, UTC)
        except FileNotFoundError:
            return None

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def list(self) -> Iterator[StoredBlob]:
        for path in self.root.glob("??/??/*"):
            if SHA256_HEX.match(path.name):
                yield StoredBlob(path.name, datetime.fromtimestamp(path.stat().st_mtime, UTC))


class S3BlobStore:
    def __init__(self, bucket: str, prefix: str, *, endpoint_url: str | None, region: str) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def _key(self, sha256: str) -> str:
        return f"{self.prefix}{_check_name(sha256)}"

    def put_file(self, sha256: str, path: Path) -> None:
        if self.exists(sha256):  # renewed (see BlobStore.put_file) by a server-side copy onto itself
            key = self._key(sha256)
            self.client.copy_object(
                Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key}, MetadataDirective="REPLACE"
            )
            return
        self.client.upload_file(str(path), self.bucket, self._key(sha256))

    def _body(self, sha256: str) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(sha256))["Body"]
        except self.client.exceptions.NoSuchKey as exc:  # same contract as the local store
            raise FileNotFoundError(f"blob {sha256} is not in s3://{self.bucket}/{self.prefix}") from exc

    def read(self, sha256: str) -> bytes:
        return self._body(sha256).read()

    def chunks(self, sha256: str) -> Iterator[bytes]:
        return _pieces_of(self._body(sha256))

    def digest(self, sha256: str) -> str:
        hasher = hashlib.sha256()
        for chunk in self.chunks(sha256):
            hasher.update(chunk)
        return hasher.hexdigest()

    def modified_at(self, sha256: str) -> datetime | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(sha256))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head["LastModified"].astimezone(UTC)

    def exists(self, sha256: str) -> bool:
        return self.modified_at(sha256) is not None

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(sha256))

    def list(self) -> Iterator[StoredBlob]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                name = item["Key"][len(self.prefix) :]
                if SHA256_HEX.match(name):
                    yield StoredBlob(name, item["LastModified"].astimezone(UTC))


def _pieces_of(stream: BinaryIO) -> Iterator[bytes]:
    """A readable stream's bytes, CHUNK_BYTES at a time, closing it after the last piece or when abandoned."""
    with stream:
        while piece := stream.read(CHUNK_BYTES):
            yield piece


class RecentDigests:
    """Digests of stored blobs as read back within the last `seconds`, per process.

    Public pages re-check a work's stored file on every view; reading a 60 MB file back each time let anyone load
    the server's disk and CPU at will. A damaged or lost blob still shows within `seconds`.
    """

    def __init__(self, store: BlobStore, *, seconds: float = 300.0, capacity: int = 4096) -> None:
        self.store, self.seconds, self.capacity = store, seconds, capacity
        self._seen: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def digest(self, sha256: str) -> str | None:
        """The stored blob's SHA-256, None when it is missing or unreadable."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(sha256)
        if seen is not None and now - seen[0] < self.seconds:
            return seen[1]
        try:
            digest: str | None = self.store.digest(sha256)
        except OSError:
            digest = None
        with self._lock:
            if len(self._seen) >= self.capacity:
                self._seen.clear()
            self._seen[sha256] = (now, digest)
        return digest


def open_blob_store(url: str, *, endpoint_url: str | None = None, region: str = "us-east-1") -> BlobStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalBlobStore(Path(parsed.netloc + parsed.path))
    if parsed.scheme == "s3":
        return S3BlobStore(parsed.netloc, parsed.path, endpoint_url=endpoint_url, region=region)
    raise ValueError(f"unsupported blob store URL {url!r}: use file:///path or s3://bucket/prefix")

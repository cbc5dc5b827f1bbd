"""A folder of files checked against the registry (`ipx scan`), each file as public verification checks an upload.

A folder holds anything: multi-gigabyte videos, files that cannot be read or vanish mid-scan, files bigger than any
upload IPX accepts. Each file is hashed as a stream; only a file within the upload limit is read whole and
fingerprinted, so a scan answers for a file exactly as POST /api/v1/verify would, and a bigger one is still
looked up by its SHA-256. A file that cannot be checked gets its reason and the scan goes on.

Files are checked a few at a time: decoding a picture runs on one core, and another file's decode overlaps it.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from ipx.db import transaction
from ipx.errors import IPXError, over_upload_limit
from ipx.registry.service import RegistryContext, Upload, UploadMatches, match_upload

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True)
class ScannedFile:
    """One file's verdict: what it matched (`found`), or why it could not be checked (`problem`)."""

    path: Path
    sha256: str
    found: UploadMatches | None = None
    problem: str | None = None


def scan_file(path: Path, factory: sessionmaker[Session], ctx: RegistryContext, max_bytes: int) -> ScannedFile:
    """Match one file of a folder against the registry; never raises for a bad or unreadable file."""
    try:
        with path.open("rb") as source:
            sha256 = hashlib.file_digest(source, "sha256").hexdigest()
            size = source.tell()
    except OSError as exc:
        return ScannedFile(path, "", problem=_unreadable(exc))
    too_big = None
    if size > max_bytes:
        too_big = f"{over_upload_limit(max_bytes)} It was not read for fingerprints: exact SHA-256 only."
    upload = Upload(path, sha256, size, path.name, None)
    try:
        with transaction(factory) as session:
            return ScannedFile(path, sha256, match_upload(session, upload, ctx, exact_only_because=too_big))
    except IPXError as exc:
        return ScannedFile(path, sha256, problem=exc.detail)
    except OSError as exc:  # gone or unreadable since it was hashed
        return ScannedFile(path, sha256, problem=_unreadable(exc))


def _unreadable(exc: OSError) -> str:
    return f"The file could not be read ({exc.strerror or exc})."


def files_in(folder: Path, *, leaving_out: Path) -> tuple[list[Path], list[ScannedFile]]:
    """Every regular file below `folder`, sorted, and a verdict for each folder or entry that could not be read:
    a scan says what it did not check (rglob skipped an unreadable folder without a word)."""
    files: list[Path] = []
    unreadable: list[ScannedFile] = []

    def folder_unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else folder
        unreadable.append(ScannedFile(where, "", problem=f"The folder could not be read ({exc.strerror or exc})."))

    for root, _folders, names in os.walk(folder, onerror=folder_unreadable):
        for name in names:
            path = Path(root) / name
            try:
                if path.is_file() and not path.samefile(leaving_out):
                    files.append(path)
            except OSError as exc:
                unreadable.append(ScannedFile(path, "", problem=_unreadable(exc)))
    return sorted(files), unreadable


# A cell starting so is a formula to a spreadsheet (OWASP "CSV injection"); titles and file names come from others.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def report_row(cells: Iterable[object]) -> list[object]:
    """A row of the scan's CSV report with every text cell shown as text, never run: a leading ' neutralises it."""
    texts = (str(cell) if isinstance(cell, Path) else cell for cell in cells)
    return [f"'{cell}" if isinstance(cell, str) and cell.startswith(FORMULA_STARTS) else cell for cell in texts]


def in_order_on_threads(function: Callable[[Item], Result], items: Iterable[Item], threads: int) -> Iterator[Result]:
    """`function` of each item, yielded in the items' order, `threads` at a time.

    Unlike ThreadPoolExecutor.map, work is submitted only a little ahead of what has been yielded: an interrupted
    scan of a large folder stops after the files in hand instead of checking every remaining one first.
    """
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ipx-scan") as pool:
        pending: deque[Future[Result]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) > threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

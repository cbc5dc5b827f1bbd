"""A ZIP archive written as it is sent: members in, bytes out, nothing spooled to disk or held whole in memory.

`zipfile` writes to a stream it cannot seek by putting each member's sizes and CRC after its data (a data
descriptor), which every unzip tool reads; a member may run to any size (ZIP64 where needed).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

ZIP64_FROM = 0x7FFF_FFFF  # zipfile's own limit for a member written without ZIP64 extensions


@dataclass(frozen=True)
class Member:
    """One file of the archive: small ones carry their bytes, big ones come piece by piece (`size` in all)."""

    path: str
    data: bytes = b""
    size: int = 0
    pieces: Iterator[bytes] | None = None


class _Outbox(io.RawIOBase):
    """Collects what zipfile writes until the stream takes it."""

    def __init__(self) -> None:
        self._written: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._written.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        taken = b"".join(self._written)
        self._written.clear()
        return taken


def zip_stream(members: Iterable[Member], *, made_at: datetime) -> Iterator[bytes]:
    """The archive's bytes, a member's worth (or a piece of a big member's) at a time. `members` is read as the
    archive is written, so a big member's source is opened only when its turn comes."""
    outbox = _Outbox()
    stamp = made_at.timetuple()[:6]
    # Level 1 for the small members (JSON, CSV, README), which shrink several times even so.
    with zipfile.ZipFile(outbox, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for member in members:
            entry = zipfile.ZipInfo(member.path, date_time=stamp)
            entry.compress_type = zipfile.ZIP_DEFLATED
            if member.pieces is None:
                archive.writestr(entry, member.data)
            else:
                # stored files are pictures, sound, PDFs: compressed already, and deflating them made the archive
                # 7x slower to send (bench/download_speed.py)
                entry.compress_type = zipfile.ZIP_STORED
                with archive.open(entry, "w", force_zip64=member.size > ZIP64_FROM) as target:
                    for piece in member.pieces:
                        target.write(piece)
                        yield outbox.take()
            yield outbox.take()
    yield outbox.take()

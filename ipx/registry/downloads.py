"""Handing a registered file out over HTTP: to its owner, and to the holders of its licenses.

Uploaded files are anyone's bytes: an HTML or SVG "work" served from IPX's own origin would run its scripts with the
visitor's IPX session. So a file is always an attachment, never sniffed, and sandboxed should a browser render it
anyway. It is streamed (works run to the upload limit) and checked against its registered SHA-256 and size on the way:
what would complete the registered length is held back until the digest is known, so a file damaged in storage is
never delivered whole — the connection is cut instead, and the receiver's download fails rather than keeping a bad
copy.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterator
from urllib.parse import quote

from fastapi.responses import StreamingResponse

from ipx.blobs import BlobStore
from ipx.errors import InternalError
from ipx.registry.service import StoredFile

logger = logging.getLogger(__name__)


class DamagedFile(Exception):
    """The stored bytes are not the registered ones; raised mid-answer to cut the connection."""


def file_download(blobs: BlobStore, file: StoredFile) -> StreamingResponse:
    try:
        pieces = blobs.chunks(file.sha256)
    except FileNotFoundError as exc:
        logger.error("blob %s of a registered work is missing from the blob store", file.sha256)
        raise InternalError(
            "IPX cannot find this work's stored file, so it cannot be downloaded now. Its registration and evidence "
            "are unaffected; IPX staff have been alerted."
        ) from exc
    return StreamingResponse(
        checked_pieces(pieces, file.sha256, file.size),
        media_type=file.media_type,
        headers={
            "Content-Length": str(file.size),
            "Content-Disposition": attachment_disposition(file.filename),
            "ETag": f'"{file.sha256}"',
            "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(file.sha256)).decode()}:",  # RFC 9530
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "private",
        },
    )


def attachment_disposition(filename: str) -> str:
    """RFC 6266: an ASCII name for old clients, and the exact name in UTF-8 (RFC 8187) for the rest."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;%' else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def checked_pieces(pieces: Iterator[bytes], sha256: str, size: int) -> Iterator[bytes]:
    """The pieces as they come, except that nothing reaching the registered `size` leaves until all of them hash to
    `sha256` and add up to `size` (else DamagedFile): a damaged file, even one that grew, is never delivered whole."""
    hasher = hashlib.sha256()
    sent, held = 0, b""
    for piece in pieces:
        hasher.update(piece)
        held += piece
        if sent + len(held) > size:
            break  # longer than registered: damaged, however it ends
        if sent + len(held) < size:
            yield held
            sent, held = sent + len(held), b""
    if sent + len(held) != size or hasher.hexdigest() != sha256:
        logger.error("blob %s is damaged: it is not the %d registered bytes; the answer was cut", sha256, size)
        raise DamagedFile(sha256)
    if held:
        yield held

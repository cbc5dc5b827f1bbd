"""Previews of image works: a small JPEG kept in the database, made from the picture registration decoded.

Made from the stored file on every request instead, a thumbnail costs a whole decode: a few milliseconds for a JPEG
(draft mode) but 0.3-0.9 s for a 12-megapixel HEIC photo, which has no reduced-size decoding, and a marketplace
page shows twenty at once. Registration has the decoded picture in hand (the fingerprints' working copy), so the
preview costs one small JPEG encoding there. Works registered before previews were kept get theirs made from their
file on first request, and kept.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ipx.blobs import BlobStore
from ipx.errors import NotFound
from ipx.fingerprint.image import ImageFingerprintError, decode_image
from ipx.registry.models import Work, WorkPreview

THUMBNAIL_SIDE = 480
THUMBNAIL_QUALITY = 82


def preview_jpeg(picture: np.ndarray, *, side: int = THUMBNAIL_SIDE) -> bytes:
    """An upright RGB picture as a JPEG whose longer side is at most `side` (never enlarged)."""
    image = Image.fromarray(picture)
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=THUMBNAIL_QUALITY, optimize=True, progressive=True)
    return out.getvalue()


def preview_of_file(data: bytes, *, max_pixels: int) -> bytes:
    """The preview registration would have made of this file: same bounded, EXIF-aware decoder, same working copy."""
    picture, _ = decode_image(data, max_pixels=max_pixels, to_fingerprint=False)
    return preview_jpeg(picture)


def keep_preview(session: Session, work_id: str, jpeg: bytes) -> None:
    session.add(WorkPreview(work_id=work_id, side=THUMBNAIL_SIDE, jpeg=jpeg))


def thumbnail(session: Session, work: Work, blobs: BlobStore, *, max_pixels: int) -> bytes:
    """The work's kept preview, or one made from its stored file now and kept for the next request."""
    kept = session.get(WorkPreview, (work.id, THUMBNAIL_SIDE))
    if kept is not None:
        return kept.jpeg
    try:
        jpeg = preview_of_file(blobs.read(work.sha256), max_pixels=max_pixels)
    except FileNotFoundError as exc:
        raise NotFound("The registered file is not in storage, so no preview can be shown.") from exc
    except ImageFingerprintError as exc:
        raise NotFound(f"No preview can be made of this image: {exc}") from exc
    try:
        with session.begin_nested():
            keep_preview(session, work.id, jpeg)
    except IntegrityError:
        pass  # another request kept the same preview first
    return jpeg

"""Test pictures: scikit-image's bundled images (no download) and encoding helpers."""

from __future__ import annotations

import io
import re
import struct

import numpy as np
from PIL import Image


def skimage_picture(name: str) -> Image.Image:
    """A bundled scikit-image picture as an RGB PIL image."""
    from skimage import data

    pixels = getattr(data, name)()
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return Image.fromarray(pixels[..., :3]).convert("RGB")


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def heif_holding_av1() -> bytes:
    """An HEIF file whose picture is AV1 (an AVIF file under the generic brand): libheif here has no AV1 decoder."""
    return encoded(skimage_picture("astronaut"), "AVIF", quality=60).replace(b"avif", b"mif1")


def progressive_jpeg_with_scans(extra_scans: int, *, app_payload: bytes = b"") -> bytes:
    """A progressive JPEG (libjpeg's 10 scans) with its smallest scan repeated `extra_scans` more times before EOI,
    and optionally an APP15 segment carrying `app_payload`. Repeating a scan only refines the same coefficients again
    (libjpeg warns and goes on), so the picture stays valid while each repeat costs a pass over it."""
    data = encoded(skimage_picture("coffee"), "JPEG", quality=30, progressive=True)
    scans = [match.start() for match in re.finditer(rb"\xff\xda", data)]
    ends = [*scans[1:], data.rindex(b"\xff\xd9")]
    start, end = min(zip(scans[1:], ends[1:], strict=True), key=lambda scan: scan[1] - scan[0])
    body = data[:-2] + data[start:end] * extra_scans + data[-2:]
    if not app_payload:
        return body
    return body[:2] + b"\xff\xef" + struct.pack(">H", len(app_payload) + 2) + app_payload + body[2:]

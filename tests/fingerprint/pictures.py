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


def tiff_with_fractional_strip_offset() -> bytes:
    """A 300x200 grey TIFF whose StripOffsets tag is stored as a RATIONAL: Pillow raises TypeError seeking to it
    (found by fuzzing)."""
    entries = [  # (tag, type, count, value): types 3 SHORT, 4 LONG, 5 RATIONAL (value: offset of 2 LONGs)
        (0x100, 4, 1, 300), (0x101, 4, 1, 200), (0x103, 3, 1, 1), (0x106, 3, 1, 1),
        (0x111, 5, 1, 110), (0x116, 4, 1, 200), (0x117, 4, 1, 60_000), (0x11C, 3, 1, 1),
    ]  # fmt: skip
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *entry) for entry in entries)
    header = b"II*\x00" + struct.pack("<I", 8)
    body = header + ifd + struct.pack("<I", 0)
    return body + struct.pack("<II", 254, 254) + bytes(64)


def animated_avif_with_zero_time_scale() -> bytes:
    """Two AVIF frames whose track declares a time scale of 0: Pillow divides by it for the frame's timestamp."""
    frames = [Image.new("RGB", (64, 48), colour) for colour in ("red", "blue")]
    data = bytearray(encoded(frames[0], "AVIF", save_all=True, append_images=frames[1:], duration=100))
    box = data.find(b"mdhd")
    version = data[box + 4]
    time_scale = box + 8 + (16 if version == 1 else 8)  # after version/flags and the creation/modification times
    data[time_scale : time_scale + 4] = bytes(4)
    return bytes(data)


def avif_whose_primary_item_is_missing() -> bytes:
    """An AVIF whose 'pitm' box names an item the file does not hold: libavif refuses it while opening."""
    data = bytearray(encoded(Image.new("RGB", (64, 48), "red"), "AVIF"))
    box = data.find(b"pitm")
    data[box + 8 : box + 10] = struct.pack(">H", 99)
    return bytes(data)

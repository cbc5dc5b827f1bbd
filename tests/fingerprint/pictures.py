"""Test pictures: scikit-image's bundled images (no download) and encoding helpers."""

from __future__ import annotations

import io

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

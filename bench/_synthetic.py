"""A synthetic image catalogue for the benchmarks that need 100k registered pictures (bench/verify_speed.py,
bench/robustness.py --distractors).

Registering through the API runs at about 8 works/s, so large catalogues are fingerprints made up directly:
random PDQ and pHash; 500 ORB descriptors each, and 500 for the mirror image as real fingerprints have, drawn
from real ORB descriptors of bundled scikit-image pictures with 10 % of their bits flipped, so they cluster like
real descriptors without copying any one picture; random keypoint positions; a smooth random grey thumbnail,
so the pixel stage has work to do.
The synthetic descriptors are far less often close to a query than real ones (a query descriptor lies within
40 bits of about 1 in 10 million of them, against 1 in 22,000 in the tuning set).
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ipx.fingerprint.image import ImageFingerprint, fingerprint_image  # noqa: E402
from ipx.fingerprint.index import ORB_BITS  # noqa: E402

# What the registry's pages and API read from a work's signed statement, for work rows the benchmarks insert directly
# (unsigned: they are never verified). With "{}" the home page and GET /api/v1/works answered 500 on a bench database.
SYNTHETIC_STATEMENT = json.dumps(
    {"creators": [{"name": "Synthetic", "share_bps": 10000}], "publication": {"published": False}, "fingerprints": {}}
).encode()
POOL_PICTURES = (  # the benchmarks never register or query these: they only lend their descriptors
    "camera", "hubble_deep_field", "retina", "coins", "immunohistochemistry", "moon",
    "page", "text", "brick", "grass", "gravel", "clock", "cell", "colorwheel",
)  # fmt: skip
FLIP_PROBABILITY = 0.1
ORB_PER_IMAGE = 500
SYNTHETIC_PREFIX = "synthetic-"


def skimage_picture(name: str) -> Image.Image:
    from skimage import data

    pixels = getattr(data, name)()
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return Image.fromarray(pixels[..., :3]).convert("RGB")


def enlarged_photo(name: str, width: int, height: int, *, noise_sigma: float = 0.0) -> Image.Image:
    """A scikit-image picture enlarged to width x height, optionally with sensor-like (Gaussian) noise: the large
    camera photos the speed benchmarks time."""
    picture = skimage_picture(name).resize((width, height), Image.Resampling.BICUBIC)
    if not noise_sigma:
        return picture
    noise = np.random.default_rng(0).normal(0, noise_sigma, (height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(np.asarray(picture, dtype=np.float32) + noise, 0, 255).astype(np.uint8))


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def descriptor_pool() -> np.ndarray:
    """Real ORB descriptors (picture and mirror) of bundled scikit-image pictures."""
    return np.concatenate([fingerprint_image(jpeg(skimage_picture(name))).all_descriptors for name in POOL_PICTURES])


def synthetic_descriptors(pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    drawn = pool[rng.integers(0, len(pool), count)]
    return drawn ^ np.packbits(rng.random((count, ORB_BITS)) < FLIP_PROBABILITY, axis=1)


def synthetic_fingerprint(pool: np.ndarray, rng: np.random.Generator) -> ImageFingerprint:
    """As large as a real one: 500 keypoints of the picture and 500 of its mirror image."""
    points = rng.random((2 * ORB_PER_IMAGE, 2), dtype=np.float32) * 512
    coarse = rng.integers(0, 256, (6, 8), dtype=np.uint8)  # a smooth random layout
    thumbnail = cv2.resize(coarse, (128, 96), interpolation=cv2.INTER_CUBIC)
    return ImageFingerprint(
        512, 384, 512, 384,
        rng.integers(0, 256, 256, dtype=np.uint8).tobytes(), 100,
        rng.integers(0, 256, 64, dtype=np.uint8).tobytes(), ORB_PER_IMAGE,
        points.tobytes(), synthetic_descriptors(pool, 2 * ORB_PER_IMAGE, rng).tobytes(),
        thumbnail.tobytes(), 128, 96,
    )  # fmt: skip


def synthetic_works(pool: np.ndarray, rng: np.random.Generator, count: int) -> Iterator[tuple[str, ImageFingerprint]]:
    """(work id, fingerprint) of `count` synthetic pictures; the ids start with SYNTHETIC_PREFIX."""
    for number in range(count):
        yield f"{SYNTHETIC_PREFIX}{number}", synthetic_fingerprint(pool, rng)

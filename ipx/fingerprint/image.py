"""Image fingerprints: bytes in, perceptual hashes and local features out.

Complementary signals, because no single one survives every ordinary edit:

* PDQ (256 bits, all 8 rotations/flips) catches re-encoding, resizing, colour changes, blur, noise,
  mirror flips and 90-degree rotations.
* pHash (imagehash's 64-bit DCT hash, all 8 rotations/flips) is the widely known baseline, kept for the
  signed statement and for interoperability; with only 64 bits it collides on flat and striped
  pictures, so the index does not match on it by default (see bench/robustness.py).
* ORB keypoints (up to 500 descriptors of 32 bytes, plus 500 of the mirror image because ORB is not
  mirror-invariant) survive what global hashes cannot: crops, small rotations, the picture pasted into a
  larger page or screenshot, overlays. The index verifies them geometrically, so a match means "a large
  part of this picture appears in that one".

* A 128-pixel grey thumbnail lets the index align and compare the pictures themselves when the
  keypoints fail (smooth gradients, soft shapes, stripes, wood grain: see ipx/fingerprint/pixels.py).

Uniform borders are trimmed before hashing (pixels.trim_uniform_border) so that an added frame or a plain
page margin does not move the global hashes. Everything is computed on a reduced working copy (longer side
512 px) decoded in JPEG draft mode: the hashes do not need more detail and decoding stays cheap and bounded.
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import pdqhash
import pillow_heif
import scipy.fftpack
from PIL import ExifTags, Image, ImageOps, Jpeg2KImagePlugin, JpegImagePlugin

from ipx.fingerprint.pixels import WHOLE_PICTURE, Frame, grey_thumbnail, trimmed_and_offset
from ipx.fingerprint.threads import kept_pool

# Phones save photos as HEIC by default (AVIF Pillow reads itself). libheif applies the file's own rotation and
# mirroring while decoding and the plugin resets the EXIF orientation to match, so exif_transpose stays correct.
# The thumbnails, depth maps and auxiliary pictures a phone stores beside the photo are never needed here.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
# libmagic names HEIF pictures by their brand; Pillow knows them all as its one "HEIF" format.
HEIF_MEDIA_TYPES = frozenset({"image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence"})

DEFAULT_MAX_PIXELS = 100_000_000
WORK_SIDE = 512
# libjpeg scales by 1/2, 1/4 or 1/8 while decoding, and OpenJPEG by a power of 2 for each wavelet level it skips; a
# working copy down to 90% of WORK_SIDE is accepted when it lets the decoder halve again (a 4000-px photo: 500 px
# at 1/8 instead of 1000 px at 1/4, then resized).
REDUCED_DECODE_SLACK = 0.9
# Each scan of a progressive JPEG costs the decoder a pass over the whole picture, however few bytes it takes: 15
# bytes of end-of-band runs per scan made a 378 kB file take 5.6 s to decode at 12 megapixels (a known exploit of
# the format, libjpeg-turbo's "LJT-01-003"). Encoders write about 10 scans (libjpeg's progression; Photoshop 3-5).
MAX_JPEG_SCANS = 100
_JPEG_SCAN = 0xDA
_JPEG_SCAN_START = bytes([0xFF, _JPEG_SCAN])
# A marker: FF then neither 00 (a stuffed FF in entropy-coded data), D0-D7 (a restart) nor FF (fill before a marker).
_JPEG_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_JPEG_END = 0xD9
_JPEG_STANDALONE_MARKERS = frozenset({0x01, 0xD8})  # TEM and SOI carry no length
# A JPEG 2000 codestream starts with SOC then SIZ, in a raw .j2k file and inside a .jp2 file's codestream box.
_J2K_CODESTREAM_START = b"\xff\x4f\xff\x51"
_J2K_CODING_STYLE = 0x52  # COD: its 6th byte counts the wavelet decomposition levels
_J2K_TILE_START = 0x90  # SOT: the main header ends
MIN_SIDE = 16
MAX_ASPECT_RATIO = 32
ORB_FEATURES = 500
ORB_FAST_THRESHOLD = 5
ORB_PRE_BLUR_SIGMA = 1.0
CLAHE_CLIP = 2.0
LIGHT_ARTWORK_LEVEL = 200

PDQ_BYTES = 32
PHASH_BYTES = 8
ORB_DESCRIPTOR_BYTES = 32
DIHEDRAL_VARIANTS = 8

_FORMAT_MAGIC = b"IPXI"
_FORMAT_VERSION = 3
_HEADER = struct.Struct("<4sBIIHHBHH")
_THUMBNAIL_HEADER = struct.Struct("<HH")  # version 2 appends the grey thumbnail's width and height
_TRIM = struct.Struct("<HHHH")  # version 3 then appends the decoded picture's size and where the trim starts in it

# Image.MAX_IMAGE_PIXELS is process-global: it is lifted only while this lock is held, for the header parse,
# and our own limit (which can report the dimensions) is applied right after.
_PIL_LIMIT_LOCK = threading.Lock()
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


class ImageFingerprintError(ValueError):
    """The upload cannot be fingerprinted; the message is a sentence meant for the uploader."""


class ImageTooLarge(ImageFingerprintError):
    """Too many pixels (possible decompression bomb); rejected from the header, before decoding."""


class UndecodableImage(ImageFingerprintError):
    """Not an image we can read, or truncated/corrupt data."""


class UnsuitableImage(ImageFingerprintError):
    """Too thin or too small to carry a meaningful fingerprint, or coded in a way IPX has no decoder for."""


@dataclass(frozen=True)
class ImageFingerprint:
    """Everything the index needs about one image; immutable bytes so it hashes, compares and stores cleanly.

    `pdq` and `phash` hold the 8 dihedral variants concatenated, in pdqhash.compute_dihedral order
    (original, rot90, rot180, rot270, flipX, flipY, flipPlus1, flipMinus1). ORB keypoints are in pixel
    coordinates of the trimmed working image (`work_width` x `work_height`); the first `orb_count` come
    from the picture, the rest from its mirror image with x mapped back into the picture's frame, so a
    mirrored copy is verified as a reflection of the same keypoints. The working image was trimmed from a decoded
    picture of `picture_width` x `picture_height` at (`trim_left`, `trim_top`): a match found in it can be placed
    in the picture as uploaded (0 for fingerprints stored before version 3: taken as untrimmed).
    """

    width: int
    height: int
    work_width: int
    work_height: int
    pdq: bytes
    pdq_quality: int
    phash: bytes
    orb_count: int
    orb_points: bytes
    orb_descriptors: bytes
    thumbnail: bytes = b""
    thumbnail_width: int = 0
    thumbnail_height: int = 0
    picture_width: int = 0
    picture_height: int = 0
    trim_left: int = 0
    trim_top: int = 0

    def __post_init__(self) -> None:
        if len(self.pdq) != DIHEDRAL_VARIANTS * PDQ_BYTES or len(self.phash) != DIHEDRAL_VARIANTS * PHASH_BYTES:
            raise ValueError("PDQ and pHash must hold 8 dihedral variants each.")
        count = len(self.orb_descriptors) // ORB_DESCRIPTOR_BYTES
        if len(self.orb_descriptors) % ORB_DESCRIPTOR_BYTES or len(self.orb_points) != count * 8:
            raise ValueError("ORB points and descriptors do not describe the same keypoints.")
        if not 0 <= self.orb_count <= count:
            raise ValueError("ORB keypoint count is out of range.")
        if len(self.thumbnail) != self.thumbnail_width * self.thumbnail_height:
            raise ValueError("The thumbnail does not have the stated size.")

    @property
    def frame(self) -> Frame:
        """Where the working image lies in the picture as uploaded."""
        if not self.picture_width or not self.picture_height:
            return WHOLE_PICTURE
        width, height = self.picture_width, self.picture_height
        return Frame(
            self.trim_left / width, self.trim_top / height,
            (self.trim_left + self.work_width) / width, (self.trim_top + self.work_height) / height,
        )  # fmt: skip

    @property
    def pdq_variants(self) -> np.ndarray:
        """(8, 32) uint8: PDQ of each rotation/flip."""
        return np.frombuffer(self.pdq, dtype=np.uint8).reshape(DIHEDRAL_VARIANTS, PDQ_BYTES)

    @property
    def phash_variants(self) -> np.ndarray:
        """(8, 8) uint8: pHash of each rotation/flip."""
        return np.frombuffer(self.phash, dtype=np.uint8).reshape(DIHEDRAL_VARIANTS, PHASH_BYTES)

    @property
    def all_keypoints(self) -> np.ndarray:
        """(n, 2) float32 (x, y) of the picture's and its mirror image's keypoints."""
        return np.frombuffer(self.orb_points, dtype=np.float32).reshape(-1, 2)

    @property
    def all_descriptors(self) -> np.ndarray:
        """(n, 32) uint8 ORB descriptors of the picture and of its mirror image."""
        return np.frombuffer(self.orb_descriptors, dtype=np.uint8).reshape(-1, ORB_DESCRIPTOR_BYTES)

    @property
    def grey_thumbnail(self) -> np.ndarray | None:
        """(height, width) uint8, or None for a fingerprint stored before thumbnails were kept."""
        if not self.thumbnail:
            return None
        return np.frombuffer(self.thumbnail, dtype=np.uint8).reshape(self.thumbnail_height, self.thumbnail_width)

    @property
    def keypoints(self) -> np.ndarray:
        """The picture's own keypoints (what an index stores)."""
        return self.all_keypoints[: self.orb_count]

    @property
    def descriptors(self) -> np.ndarray:
        """The picture's own descriptors (what an index stores)."""
        return self.all_descriptors[: self.orb_count]

    def without_mirror(self) -> ImageFingerprint:
        """The fingerprint as an index keeps it: the mirror image's keypoints serve the query side only (a
        mirrored copy is caught by the query's mirror keypoints), and they are half the keypoint bytes."""
        return replace(
            self,
            orb_points=self.orb_points[: self.orb_count * 8],
            orb_descriptors=self.orb_descriptors[: self.orb_count * ORB_DESCRIPTOR_BYTES],
        )

    def public(self) -> dict[str, Any]:
        """The global hashes as hex, small enough to include in a signed statement."""
        return {
            "phash": self.phash[:PHASH_BYTES].hex(),
            "pdq": self.pdq[:PDQ_BYTES].hex(),
            "pdq_quality": self.pdq_quality,
        }

    def to_bytes(self) -> bytes:
        """Compact, versioned binary form for a database column."""
        header = _HEADER.pack(
            _FORMAT_MAGIC,
            _FORMAT_VERSION,
            self.width,
            self.height,
            self.work_width,
            self.work_height,
            self.pdq_quality,
            self.orb_count,
            len(self.orb_descriptors) // ORB_DESCRIPTOR_BYTES,
        )
        thumbnail = _THUMBNAIL_HEADER.pack(self.thumbnail_width, self.thumbnail_height) + self.thumbnail
        trim = _TRIM.pack(self.picture_width, self.picture_height, self.trim_left, self.trim_top)
        return header + self.pdq + self.phash + self.orb_points + self.orb_descriptors + thumbnail + trim

    @classmethod
    def from_bytes(cls, data: bytes) -> ImageFingerprint:
        """Inverse of to_bytes; rejects anything that is not exactly one well-formed fingerprint."""
        if len(data) < _HEADER.size:
            raise ValueError("Fingerprint data is too short.")
        magic, version, width, height, work_width, work_height, quality, orb_count, count = _HEADER.unpack_from(data)
        if magic != _FORMAT_MAGIC or version not in (1, 2, _FORMAT_VERSION):
            raise ValueError("Not an IPX image fingerprint (bad magic or version).")
        sizes = (
            DIHEDRAL_VARIANTS * PDQ_BYTES,
            DIHEDRAL_VARIANTS * PHASH_BYTES,
            count * 8,
            count * ORB_DESCRIPTOR_BYTES,
        )
        parts, offset = [], _HEADER.size
        for size in sizes:
            parts.append(bytes(data[offset : offset + size]))
            offset += size
        thumbnail_width = thumbnail_height = 0
        if version >= 2:  # version 1 kept no thumbnail
            if len(data) < offset + _THUMBNAIL_HEADER.size:
                raise ValueError("Fingerprint data has the wrong length.")
            thumbnail_width, thumbnail_height = _THUMBNAIL_HEADER.unpack_from(data, offset)
            offset += _THUMBNAIL_HEADER.size
        end = offset + thumbnail_width * thumbnail_height
        trim = (0, 0, 0, 0)  # before version 3: taken as untrimmed
        if version >= 3:
            if len(data) != end + _TRIM.size:
                raise ValueError("Fingerprint data has the wrong length.")
            trim = _TRIM.unpack_from(data, end)
        elif len(data) != end:
            raise ValueError("Fingerprint data has the wrong length.")
        parts.append(bytes(data[offset:end]))
        pdq, phash, points, descriptors, thumbnail = parts
        return cls(
            width, height, work_width, work_height, pdq, quality, phash, orb_count, points, descriptors,
            thumbnail, thumbnail_width, thumbnail_height, *trim,
        )  # fmt: skip


def fingerprint_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageFingerprint:
    """Decode an uploaded image safely and compute all its fingerprints."""
    return fingerprint_picture(*decode_image(data, max_pixels=max_pixels))


def fingerprint_picture(picture: np.ndarray, original_size: tuple[int, int]) -> ImageFingerprint:
    """All fingerprints of a picture `decode_image` returned, for callers that keep the decoded copy too."""
    width, height = original_size
    rgb, (trim_left, trim_top) = trimmed_and_offset(picture)
    # ORB, the costliest step after decoding, holds no GIL: its detection runs beside the hashes, then the picture's
    # and the mirror image's descriptors are computed side by side, on a kept thread (one for each core, shared by
    # concurrent calls, each of which waits for its own task only).
    beside = kept_pool("ipx-orb", os.cpu_count() or 1)
    detected = beside.submit(orb_keypoints, rgb)
    pdq_hashes, quality = pdq_dihedral(rgb)
    phash = phash_dihedral(rgb)
    thumbnail = grey_thumbnail(rgb)
    grey, keypoints = detected.result()
    mirrored = beside.submit(mirror_image_descriptors, grey, keypoints)
    points, descriptors = picture_descriptors(grey, keypoints)
    mirror_points, mirror_descriptors = mirrored.result()
    return ImageFingerprint(
        width=width,
        height=height,
        work_width=rgb.shape[1],
        work_height=rgb.shape[0],
        pdq=b"".join(pdq_hashes),
        pdq_quality=quality,
        phash=b"".join(phash),
        orb_count=len(points),
        orb_points=np.concatenate([points, mirror_points]).astype(np.float32).tobytes(),
        orb_descriptors=np.concatenate([descriptors, mirror_descriptors]).astype(np.uint8).tobytes(),
        thumbnail=thumbnail.tobytes(),
        thumbnail_width=thumbnail.shape[1],
        thumbnail_height=thumbnail.shape[0],
        picture_width=picture.shape[1],
        picture_height=picture.shape[0],
        trim_left=trim_left,
        trim_top=trim_top,
    )


def decode_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, work_side: int = WORK_SIDE, to_fingerprint: bool = True
) -> tuple[np.ndarray, tuple[int, int]]:
    """Return (RGB uint8 array with longer side <= work_side, oriented (width, height) of the original).

    The pixel limit is checked on the header dimensions, before any pixel data is decoded. `to_fingerprint=False`
    (a preview) also takes pictures too small or too thin to fingerprint: an 8x8 icon still has a thumbnail.
    """
    image = _open_checked(data, max_pixels, to_fingerprint=to_fingerprint)
    with _decoder_failures("The image data is truncated or corrupt and could not be decoded"):
        oriented_size = _oriented_size(image)
        image = _load_reduced(image, data, max_pixels, work_side)
        ImageOps.exif_transpose(image, in_place=True)
        reduced = _reduce(image, work_side)
    return flatten_to_rgb(reduced), oriented_size


@contextmanager
def _decoder_failures(corrupt: str) -> Iterator[None]:
    """Turn whatever a decoder raises into an ImageFingerprintError: `corrupt` plus the decoder's reason.

    Pillow's format plugins parse the upload's bytes in Python, and hostile bytes make them raise more than the
    OSError and ValueError they document: fuzzing found TypeError (a TIFF strip offset stored as a fraction),
    ZeroDivisionError (an AVIF animation's time scale of 0), OverflowError, NotImplementedError (DDS pixel formats)
    and RuntimeError (libavif and libheif). Each means the same to the uploader, so all are caught here, at the
    decoder's edge; a RuntimeError is a format IPX cannot decode (AV1, JPEG or VVC inside HEIF, an unimplemented
    AVIF or DDS feature; NotImplementedError is one), answered exact-only rather than refused.
    """
    try:
        yield
    except ImageFingerprintError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"The image expands to too many pixels when decoded ({exc}).") from exc
    except RuntimeError as exc:
        reason = _reason(exc)
        raise UnsuitableImage(f"The picture inside this file is coded in a way IPX cannot decode ({reason}).") from exc
    except Exception as exc:
        raise UndecodableImage(f"{corrupt} ({_reason(exc)}).") from exc


def _reason(exc: Exception) -> str:
    return str(exc).strip() or type(exc).__name__  # libheif ends its messages with a newline


def _load_reduced(image: Image.Image, data: bytes, max_pixels: int, work_side: int) -> Image.Image:
    """Decode the pixels, at the smallest size the format offers that still covers the working copy."""
    if isinstance(image, JpegImagePlugin.JpegImageFile):  # JPEG, and cameras' MPO (JPEG pictures in one file)
        # One read of the whole (in-memory) file: fed in Pillow's 64 KB blocks, libjpeg suspends at every
        # block's end and decodes the interrupted MCU row again (about 1 ms of a 12-megapixel photo).
        image.decodermaxblock = len(data)
        scale = work_side * REDUCED_DECODE_SLACK / max(image.size)
        if scale < 1:
            image.draft("RGB", (math.ceil(image.width * scale), math.ceil(image.height * scale)))
    elif isinstance(image, Jpeg2KImagePlugin.Jpeg2KImageFile):
        # Archives and cinema keep pictures as JPEG 2000; a 12-megapixel one takes 0.5-2.8 s whole, 0.04-0.05 s
        # with three wavelet levels skipped.
        wanted = max(0, int(math.log2(max(image.size) / (work_side * REDUCED_DECODE_SLACK))))
        skipped = min(wanted, jpeg2000_decomposition_levels(data))
        if skipped:
            image.reduce = skipped
            try:
                image.load()
                return image
            except OSError:  # a tile's own header may declare fewer levels than the main one: decode it whole
                image = _open_checked(data, max_pixels)
    image.load()
    return image


def jpeg2000_decomposition_levels(data: bytes) -> int:
    """How many wavelet levels the main header of a JPEG 2000 codestream declares; 0 when it cannot be read.

    Each level halves the picture and OpenJPEG decodes only the levels it is asked for. Tile-part headers and
    per-component styles (COC) may declare fewer; a decode that asks for too many fails, and the caller decodes
    the picture whole.
    """
    position = data.find(_J2K_CODESTREAM_START) + 2  # 1 when there is none, which the loop's test refuses
    while 1 < position <= len(data) - 4 and data[position] == 0xFF and data[position + 1] != _J2K_TILE_START:
        length = int.from_bytes(data[position + 2 : position + 4], "big")  # the length counts its own 2 bytes
        if data[position + 1] == _J2K_CODING_STYLE and length >= 8 and position + 10 <= len(data):
            return data[position + 9]  # marker 2, length 2, Scod 1, progression 1, layers 2, colour transform 1
        position += 2 + length
    return 0


def _open_checked(data: bytes, max_pixels: int, *, to_fingerprint: bool = True) -> Image.Image:
    """Open (header only) and enforce our own size limits, with human-readable reasons."""
    with _PIL_LIMIT_LOCK:
        saved_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # our own check below reports the dimensions, Pillow's does not
        try:
            with _decoder_failures("The image header is corrupt and could not be read"):
                image = _open(data)
        finally:
            Image.MAX_IMAGE_PIXELS = saved_limit
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"The image is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); "
            f"the limit is {max_pixels / 1e6:g} megapixels."
        )
    if to_fingerprint and (min(width, height) < MIN_SIDE or max(width, height) > MAX_ASPECT_RATIO * min(width, height)):
        raise UnsuitableImage(
            f"The image is {width}x{height} pixels; to be fingerprinted its shorter side must be at least "
            f"{MIN_SIDE} pixels and its aspect ratio at most {MAX_ASPECT_RATIO}:1."
        )
    # Refused, not answered exact-only: a copy re-saved with many scans must not slip past the similarity check.
    # (A sequential JPEG stops at its first superfluous scan: libjpeg reports broken data.)
    progressive = isinstance(image, JpegImagePlugin.JpegImageFile) and image.info.get("progressive")
    if progressive and has_too_many_scans(data):
        raise UndecodableImage(
            f"The JPEG is stored as more than {MAX_JPEG_SCANS} progressive scans (encoders write about 10), and each "
            "scan costs a pass over the whole picture, so IPX does not decode it. Save it again as an ordinary JPEG."
        )
    return image


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except Image.UnidentifiedImageError as exc:
        raise UndecodableImage("The file is not an image in a format we can read.") from exc


def has_too_many_scans(jpeg: bytes) -> bool:
    """Whether the first picture of a JPEG stream has more than MAX_JPEG_SCANS scans (SOS segments), from its markers.

    Counting the bytes FF DA gives an upper bound (they cannot occur in entropy-coded data, only inside other
    segments' payloads, an EXIF thumbnail's say) that settles almost every file at memory speed; above the limit
    the markers are walked, segment by segment, until the first end of image or one scan too many.
    """
    if jpeg.count(_JPEG_SCAN_START) <= MAX_JPEG_SCANS:
        return False
    scans, position = 0, 2  # after SOI
    while (marker := _JPEG_MARKER.search(jpeg, position)) is not None:
        code = jpeg[marker.start() + 1]
        if code == _JPEG_END:
            return False
        position = marker.end()
        if code not in _JPEG_STANDALONE_MARKERS:
            position += int.from_bytes(jpeg[position : position + 2], "big")  # the length counts its own 2 bytes
        if code == _JPEG_SCAN:  # its entropy-coded data follows; the next search skips over it
            scans += 1
            if scans > MAX_JPEG_SCANS:
                return True
    return False


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    """Full-resolution (width, height) as displayed, i.e. swapped when EXIF says the camera was turned."""
    transposing_orientations = (5, 6, 7, 8)
    if image.getexif().get(ExifTags.Base.Orientation, 1) in transposing_orientations:
        return image.height, image.width
    return image.width, image.height


def _reduce(image: Image.Image, work_side: int) -> Image.Image:
    """Shrink to at most work_side on the longer side, box-averaging first so huge images stay cheap."""
    if image.mode in ("P", "1") or image.mode in _SIXTEEN_BIT_MODES:
        image = _to_reducible_mode(image)
    factor = max(image.size) // work_side
    if factor >= 2:
        image = Image.Image.reduce(image, factor)  # a JPEG 2000 image's own `reduce` is its decoding setting
    scale = work_side / max(image.size)
    if scale < 1:
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(target, Image.Resampling.BOX)
    return image


def _to_reducible_mode(image: Image.Image) -> Image.Image:
    """Palette/bilevel images to RGBA/L; 16-bit and float greys rescaled to 8-bit L."""
    if image.mode == "P":
        return image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
    if image.mode == "1":
        return image.convert("L")
    values = np.asarray(image, dtype=np.float32)
    if values.max(initial=0) > 255:
        values = values / 257.0
    return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))


def flatten_to_rgb(image: Image.Image) -> np.ndarray:
    """RGB uint8 with any transparency composited onto white, as the picture appears on a page.

    Light artwork on transparency (white-on-clear overlays and logos) would vanish on white, so it is
    composited onto black instead; the choice depends only on the picture, so copies flatten alike.
    """
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
    alpha = rgba[..., 3:4] / 255.0
    coverage = float(alpha.sum())
    mean_colour = (rgba[..., :3] * alpha).sum(axis=(0, 1)) / coverage if coverage else np.zeros(3)
    background = 0.0 if float(mean_colour.mean()) > LIGHT_ARTWORK_LEVEL else 255.0
    return np.round(rgba[..., :3] * alpha + background * (1.0 - alpha)).astype(np.uint8)


def pdq_dihedral(rgb: np.ndarray) -> tuple[list[bytes], int]:
    """PDQ of all 8 rotations/flips (pdqhash order) as 32-byte MSB-first hashes, plus quality 0..100."""
    vectors, quality = pdqhash.compute_dihedral(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8))
    return [np.packbits(np.asarray(v, dtype=np.uint8)).tobytes() for v in vectors], int(quality)


def phash_dihedral(pixels: np.ndarray) -> list[bytes]:
    """imagehash.phash (8x8 from a 32x32 DCT, median threshold) of all 8 rotations/flips.

    Variant 0 equals imagehash.phash exactly; the others are the hashes of the 32x32 thumbnail rotated or
    flipped, which equals hashing the rotated picture up to resampling rounding, at a fraction of the cost.
    """
    thumbnail = Image.fromarray(pixels).convert("L").resize((32, 32), Image.Resampling.LANCZOS)
    dct = scipy.fftpack.dct(scipy.fftpack.dct(np.asarray(thumbnail), axis=0), axis=1)
    return [np.packbits(low > np.median(low)).tobytes() for low in dihedral_dct_blocks(dct[:8, :8])]


def dihedral_dct_blocks(low: np.ndarray) -> list[np.ndarray]:
    """The low-frequency DCT-II block of each rotation/flip of a picture (pdqhash.compute_dihedral order),
    from the picture's own block: reversing the rows or columns multiplies frequency k by (-1)^k, transposing
    the picture transposes the block. One DCT instead of eight.
    """
    signs = (-1.0) ** np.arange(low.shape[0])
    rows_reversed, columns_reversed = low * signs[:, None], low * signs[None, :]
    both_reversed = rows_reversed * signs[None, :]
    return [
        low,
        columns_reversed.T,  # rotated 90 degrees counter-clockwise: columns reversed, then transposed
        both_reversed,
        rows_reversed.T,
        rows_reversed,
        columns_reversed,
        low.T,
        both_reversed.T,
    ]


def orb_ready_grey(rgb: np.ndarray) -> np.ndarray:
    """Grey image prepared for ORB.

    A light blur keeps JPEG blocking and noise from turning into keypoints; local contrast equalisation
    then gives soft, low-contrast pictures keypoints at all and makes them indifferent to
    brightness/contrast edits.
    """
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey = cv2.GaussianBlur(grey, (0, 0), ORB_PRE_BLUR_SIGMA)
    return cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=(8, 8)).apply(grey)


def _orb() -> cv2.ORB:
    return cv2.ORB_create(nfeatures=ORB_FEATURES, fastThreshold=ORB_FAST_THRESHOLD)  # per call: not thread-safe


def orb_keypoints(rgb: np.ndarray) -> tuple[np.ndarray, list[cv2.KeyPoint]]:
    """The orb_ready_grey image and its ORB keypoints (detection only: two thirds of ORB's time).

    Detecting, then computing descriptors at the detected keypoints, gives exactly what detectAndCompute does
    (checked on the tuning set), and lets the picture's and the mirror image's descriptors run side by side.
    """
    grey = orb_ready_grey(rgb)
    return grey, list(_orb().detect(grey, None))


def picture_descriptors(grey: np.ndarray, keypoints: list[cv2.KeyPoint]) -> tuple[np.ndarray, np.ndarray]:
    """ORB descriptors at the picture's keypoints: ((n, 2) float32 (x, y), (n, 32) uint8)."""
    if not keypoints:
        return _no_features()
    computed, descriptors = _orb().compute(grey, keypoints)
    if descriptors is None or not computed:
        return _no_features()
    return np.array([kp.pt for kp in computed], dtype=np.float32), descriptors


def mirror_image_descriptors(grey: np.ndarray, keypoints: list[cv2.KeyPoint]) -> tuple[np.ndarray, np.ndarray]:
    """ORB descriptors of the mirror image, at the picture's keypoints reflected; points in the picture's frame.

    ORB is not mirror-invariant, so the mirror image needs its own descriptors, but not its own detection:
    computing them at the reflected keypoints gives the same descriptors as detecting on the mirror image, in a
    third of the time.
    """
    last_column = grey.shape[1] - 1
    reflected = [
        cv2.KeyPoint(last_column - kp.pt[0], kp.pt[1], kp.size, (180.0 - kp.angle) % 360.0, kp.response, kp.octave)
        for kp in keypoints
    ]
    mirror_points, descriptors = picture_descriptors(np.ascontiguousarray(grey[:, ::-1]), reflected)
    if len(mirror_points):
        mirror_points[:, 0] = last_column - mirror_points[:, 0]
    return mirror_points, descriptors


def _no_features() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 2), np.float32), np.zeros((0, ORB_DESCRIPTOR_BYTES), np.uint8)

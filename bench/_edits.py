"""Ordinary edits a copier applies, as deterministic functions PIL RGB image -> encoded bytes.

Shared by bench/robustness.py and the unit tests so both measure the same thing.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps


def encode(image: Image.Image, *, quality: int = 90) -> bytes:
    """JPEG, like most copies found online."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def crop_centre(image: Image.Image) -> Image.Image:
    """Keep the central 75% of width and height (12.5% removed on every side)."""
    w, h = image.size
    return image.crop((w // 8, h // 8, w - w // 8, h - h // 8))


def crop_corner(image: Image.Image) -> Image.Image:
    """Keep the top-left 75% of width and height."""
    w, h = image.size
    return image.crop((0, 0, w * 3 // 4, h * 3 // 4))


def border(image: Image.Image) -> Image.Image:
    """A white frame 10% of the width wide."""
    return ImageOps.expand(image, border=max(2, image.width // 10), fill=(255, 255, 255))


PASTED_AT = (0.05, 0.125, 0.65, 0.725)  # where paste_in_page puts the picture: left, top, right, bottom of the page


def paste_in_page(image: Image.Image) -> Image.Image:
    """The picture at 60% of a screenshot-like page with a header bar and lines of 'text' (at PASTED_AT)."""
    page_w, page_h = int(image.width * 1.6), int(image.height * 1.6)
    page = Image.new("RGB", (page_w, page_h), (244, 244, 246))
    draw = ImageDraw.Draw(page)
    draw.rectangle((0, 0, page_w, page_h // 12), fill=(40, 44, 52))
    picture = image.resize((int(page_w * 0.6), int(page_w * 0.6 * image.height / image.width)))
    left, top = page_w // 20, page_h // 8
    page.paste(picture, (left, top))
    line_h = max(3, page_h // 60)
    for row in range(12):
        y = top + row * 3 * line_h
        width = int(page_w * (0.22 + 0.1 * ((row * 7) % 3)) / 2)
        draw.rectangle(
            (left + picture.width + page_w // 30, y, left + picture.width + page_w // 30 + width, y + line_h),
            fill=(90, 90, 100),
        )
    return page


def mirror(image: Image.Image) -> Image.Image:
    return ImageOps.mirror(image)


def rotate_90(image: Image.Image) -> Image.Image:
    return image.transpose(Image.Transpose.ROTATE_90)


def rotate_small_crop(image: Image.Image) -> Image.Image:
    """Rotate 7 degrees, then crop to the central 80% so no rotation corners show."""
    rotated = image.rotate(7, resample=Image.Resampling.BICUBIC)
    w, h = rotated.size
    return rotated.crop((w // 10, h // 10, w - w // 10, h - h // 10))


def stretch(image: Image.Image) -> Image.Image:
    """Change the aspect ratio: 30% wider."""
    return image.resize((int(image.width * 1.3), image.height), Image.Resampling.BICUBIC)


def thumbnail(image: Image.Image) -> Image.Image:
    """Shrink to a 320-pixel thumbnail."""
    small = image.copy()
    small.thumbnail((320, 320), Image.Resampling.LANCZOS)
    return small


def brightness(image: Image.Image) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(1.35)


def contrast(image: Image.Image) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(1.5)


def saturation(image: Image.Image) -> Image.Image:
    return ImageEnhance.Color(image).enhance(1.8)


def blur(image: Image.Image) -> Image.Image:
    """Gaussian blur with a radius of 0.3% of the longer side (5 px on a 1600 px picture)."""
    return image.filter(ImageFilter.GaussianBlur(radius=max(1.0, max(image.size) * 0.003)))


def noise(image: Image.Image) -> Image.Image:
    """Additive Gaussian noise, sigma 12 grey levels."""
    pixels = np.asarray(image, dtype=np.float32)
    noisy = pixels + np.random.default_rng(7).normal(0, 12, pixels.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def overlay(image: Image.Image) -> Image.Image:
    """A caption across the bottom and a semi-transparent logo in the top-right corner."""
    w, h = image.size
    canvas = image.convert("RGBA")
    layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = ImageFont.load_default(size=max(10, h // 14))
    draw.text((w // 20, h - h // 6), "(c) copied 2026 example.com", font=font, fill=(255, 255, 255, 230))
    logo = (w - w // 4, h // 20, w - w // 20, h // 20 + w // 5)
    draw.ellipse(logo, fill=(220, 30, 30, 160))
    return Image.alpha_composite(canvas, layer).convert("RGB")


EDITS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "crop_centre": crop_centre,
    "crop_corner": crop_corner,
    "border": border,
    "paste_in_page": paste_in_page,
    "mirror": mirror,
    "rotate_90": rotate_90,
    "rotate_small_crop": rotate_small_crop,
    "stretch": stretch,
    "jpeg_q10": lambda image: image,
    "thumbnail": thumbnail,
    "brightness": brightness,
    "contrast": contrast,
    "saturation": saturation,
    "blur": blur,
    "noise": noise,
    "overlay": overlay,
}


def _seen_at_an_angle(image: Image.Image, inset: float) -> Image.Image:
    """Seen from below and to the left: the top edge narrower by 2 x inset, the right edge shorter by inset."""
    w, h = image.size
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    seen = np.float32([[inset * w, inset / 2 * w], [(1 - inset) * w, 0], [w, h], [0, h - inset / 2 * w]])
    warp = cv2.getPerspectiveTransform(corners, seen)
    return Image.fromarray(cv2.warpPerspective(np.asarray(image), warp, (w, h), borderValue=(240, 240, 240)))


def keystone(image: Image.Image) -> Image.Image:
    """The picture photographed from below and to the left: its top edge 20% narrower."""
    return _seen_at_an_angle(image, 0.1)


def photo_of_print(image: Image.Image) -> Image.Image:
    """A phone's photo of the picture on a wall: a milder keystone, out of focus, flatter and brighter."""
    soft = _seen_at_an_angle(image, 0.08).filter(ImageFilter.GaussianBlur(2))
    return ImageEnhance.Brightness(ImageEnhance.Contrast(soft).enhance(0.8)).enhance(1.1)


def crop_centre_40(image: Image.Image) -> Image.Image:
    """Keep the central 60% of width and height: 64% of the picture gone."""
    w, h = image.size
    return image.crop((w // 5, h // 5, w - w // 5, h - h // 5))


def greyscale(image: Image.Image) -> Image.Image:
    return image.convert("L").convert("RGB")


# Edits a copier also makes that the issue's list leaves out: measured apart (bench/robustness.py --beyond), never
# in the targets' mean, and nothing was tuned on them. The format changes save the whole copy in another format.
EDITS_BEYOND_THE_ISSUE: dict[str, Callable[[Image.Image], Image.Image]] = {
    "keystone": keystone,
    "photo_of_print": photo_of_print,
    "crop_centre_40": crop_centre_40,
    "greyscale": greyscale,
    "webp_q30": lambda image: image,
    "heic_q30": lambda image: image,
}
_FORMAT_CHANGES = {"webp_q30": "WEBP", "heic_q30": "HEIF"}


def edited_copy(image: Image.Image, edit: str) -> bytes:
    """Apply one named edit and encode like a copy found online (JPEG q90, q10 for the jpeg_q10 edit)."""
    if edit in _FORMAT_CHANGES:  # registering ipx.fingerprint.image's HEIF plugin is the caller's import
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, _FORMAT_CHANGES[edit], quality=30)
        return buffer.getvalue()
    edits = EDITS | EDITS_BEYOND_THE_ISSUE
    return encode(edits[edit](image.convert("RGB")), quality=10 if edit == "jpeg_q10" else 90)

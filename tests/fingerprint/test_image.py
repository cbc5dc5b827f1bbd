"""ipx.fingerprint.image: reference vectors, safe decoding, serialization."""

from __future__ import annotations

import csv
import io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.fftpack
from PIL import Image, ImageOps

from ipx.fingerprint import image as image_module
from ipx.fingerprint.image import (
    MAX_JPEG_SCANS,
    ORB_FAST_THRESHOLD,
    ORB_FEATURES,
    ImageFingerprint,
    ImageFingerprintError,
    ImageTooLarge,
    UndecodableImage,
    UnsuitableImage,
    dihedral_dct_blocks,
    fingerprint_image,
    has_too_many_scans,
    jpeg2000_decomposition_levels,
    orb_keypoints,
    orb_ready_grey,
    pdq_dihedral,
    phash_dihedral,
    picture_descriptors,
)
from ipx.fingerprint.pixels import trim_uniform_border
from tests.fingerprint.pictures import (
    animated_avif_with_zero_time_scale,
    avif_whose_primary_item_is_missing,
    encoded,
    heif_holding_av1,
    progressive_jpeg_with_scans,
    skimage_picture,
    tiff_with_fractional_strip_offset,
)

VECTORS = Path(__file__).resolve().parents[2] / ".." / "shared" / "vectors"
PDQ_VECTORS = VECTORS / "pdq"
IMAGEHASH_VECTORS = VECTORS / "imagehash"
DIHEDRAL_KEYS = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flipx",
    "flipy",
    "flip_plus1",
    "flip_minus1",
)




def reference_decode(path: Path) -> np.ndarray:
    """The decode recipe of vectors/pdq/README.md (python-threatexchange): no draft, EXIF or flattening."""
    image = Image.open(path)
    if image.mode in ("LA", "I;16"):
        image = image.convert("RGB")
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return pixels


def pdq_distance(a: ImageFingerprint, b: ImageFingerprint) -> int:
    """Smallest distance between b's hash and any rotation/flip of a's."""
    return int(np.unpackbits(a.pdq_variants ^ b.pdq_variants[0], axis=1).sum(axis=1).min())


# --- reference vectors -------------------------------------------------------------------------------


def pdq_rows() -> list[dict[str, str]]:
    with open(PDQ_VECTORS / "expected_hashes.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("row", pdq_rows(), ids=lambda row: row["image"])
def test_pdq_matches_reference_hashes_exactly(row: dict[str, str]) -> None:
    hashes, quality = pdq_dihedral(reference_decode(PDQ_VECTORS / "images" / row["image"]))
    assert hashes[0].hex() == row["pdq_hex"]
    assert quality == int(row["quality"])


def test_pdq_dihedral_variants_match_reference_order() -> None:
    images = json.loads((PDQ_VECTORS / "expected_hashes.json").read_text())["images"]
    for name in ("bridge-mods/aaa-orig.jpg", "misc-images/c.png", "python-threatexchange/I16.png"):
        expected = images[name]["pdqhash_computed"]["dihedral"]
        hashes, _ = pdq_dihedral(reference_decode(PDQ_VECTORS / "images" / name))
        assert [h.hex() for h in hashes] == [expected[key] for key in DIHEDRAL_KEYS]


def test_phash_is_imagehash_phash_upstream_constant() -> None:
    constants = json.loads((IMAGEHASH_VECTORS / "upstream_constants.json").read_text())
    assert "ba8c84536bd3c366" in json.dumps(constants)
    pixels = np.asarray(Image.open(IMAGEHASH_VECTORS / "images" / "imagehash.png").convert("RGB"))
    assert phash_dihedral(pixels)[0].hex() == "ba8c84536bd3c366"


def test_phash_matches_imagehash_outputs_on_every_vector_image() -> None:
    outputs = json.loads((IMAGEHASH_VECTORS / "imagehash_4.3.2_outputs.json").read_text())["results"]
    assert len(outputs) == 10
    for result in outputs:
        image = Image.open(IMAGEHASH_VECTORS / result["image"])
        pixels = np.asarray(image.convert("L").convert("RGB"))
        assert phash_dihedral(pixels)[0].hex() == result["phash"], result["image"]


def test_dihedral_dct_blocks_equal_the_blocks_of_the_rotated_and_flipped_pictures() -> None:
    pixels = np.random.default_rng(0).random((32, 32))
    in_pdq_order = [
        pixels, np.rot90(pixels, 1), np.rot90(pixels, 2), np.rot90(pixels, 3),
        pixels[::-1, :], pixels[:, ::-1], pixels.T, np.rot90(pixels, 2).T,
    ]  # fmt: skip

    def low_block(picture: np.ndarray) -> np.ndarray:
        return scipy.fftpack.dct(scipy.fftpack.dct(picture, axis=0), axis=1)[:8, :8]

    for block, picture in zip(dihedral_dct_blocks(low_block(pixels)), in_pdq_order, strict=True):
        np.testing.assert_allclose(block, low_block(picture), atol=1e-9)


def test_phash_variants_are_hashes_of_the_rotated_picture() -> None:
    import imagehash

    picture = skimage_picture("astronaut")
    variants = phash_dihedral(np.asarray(picture))
    rotated = bytes.fromhex(str(imagehash.phash(picture.transpose(Image.Transpose.ROTATE_90))))
    assert (
        min(
            int(np.unpackbits(np.frombuffer(v, np.uint8) ^ np.frombuffer(rotated, np.uint8)).sum())
            for v in variants
        )
        <= 4
    )


# --- fingerprints and serialization --------------------------------------------------------------------


def test_round_trip_and_public_summary() -> None:
    fp = fingerprint_image(encoded(skimage_picture("coffee")))
    assert ImageFingerprint.from_bytes(fp.to_bytes()) == fp
    public = fp.public()
    assert set(public) == {"phash", "pdq", "pdq_quality"}
    assert len(public["phash"]) == 16 and len(public["pdq"]) == 64
    assert json.loads(json.dumps(public)) == public
    assert (fp.width, fp.height) == (600, 400)
    assert 100 <= len(fp.descriptors) <= 500


def test_without_mirror_keeps_the_pictures_own_keypoints_only() -> None:
    fp = fingerprint_image(encoded(skimage_picture("coffee")))
    stored = fp.without_mirror()
    assert len(fp.all_descriptors) > fp.orb_count  # the mirror image has keypoints too
    assert len(stored.all_descriptors) == len(stored.all_keypoints) == stored.orb_count == fp.orb_count
    np.testing.assert_array_equal(stored.descriptors, fp.descriptors)
    np.testing.assert_array_equal(stored.keypoints, fp.keypoints)
    assert (stored.pdq, stored.thumbnail, stored.work_width) == (fp.pdq, fp.thumbnail, fp.work_width)
    assert ImageFingerprint.from_bytes(stored.to_bytes()) == stored


@pytest.mark.parametrize("name", ["coffee", "camera"])
def test_detecting_then_describing_gives_what_opencvs_one_call_gives(name: str) -> None:
    """fingerprint_image splits ORB in two to run the descriptors side by side: stored fingerprints must not change."""
    rgb = np.asarray(skimage_picture(name).convert("RGB"))
    orb = cv2.ORB_create(nfeatures=ORB_FEATURES, fastThreshold=ORB_FAST_THRESHOLD)
    keypoints, descriptors = orb.detectAndCompute(orb_ready_grey(rgb), None)
    points, split_descriptors = picture_descriptors(*orb_keypoints(rgb))
    np.testing.assert_array_equal(split_descriptors, descriptors)
    np.testing.assert_array_equal(points, np.array([kp.pt for kp in keypoints], dtype=np.float32))


@pytest.mark.parametrize("damage", [b"", b"JUNK", b"IPXI\x02" + bytes(40)])
def test_from_bytes_rejects_malformed_data(damage: bytes) -> None:
    with pytest.raises(ValueError):
        ImageFingerprint.from_bytes(damage)


def test_from_bytes_rejects_truncated_fingerprint() -> None:
    data = fingerprint_image(encoded(skimage_picture("chelsea"))).to_bytes()
    with pytest.raises(ValueError):
        ImageFingerprint.from_bytes(data[:-1])


def test_large_jpeg_is_decoded_in_draft_mode_but_hashes_like_a_full_decode() -> None:
    big = skimage_picture("astronaut").resize((3000, 3000), Image.Resampling.BICUBIC)
    from_jpeg = fingerprint_image(encoded(big, "JPEG", quality=95))
    from_png = fingerprint_image(encoded(big.resize((512, 512), Image.Resampling.LANCZOS)))
    assert (from_jpeg.width, from_jpeg.height) == (3000, 3000)
    assert max(from_jpeg.work_width, from_jpeg.work_height) == 512
    assert pdq_distance(from_jpeg, from_png) <= 16


def test_exif_orientation_is_applied() -> None:
    upright = skimage_picture("coffee")
    stored_sideways = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera writes with orientation 6
    exif = Image.Exif()
    exif[0x0112] = 6
    fp = fingerprint_image(encoded(stored_sideways, "JPEG", quality=95, exif=exif.tobytes()))
    reference = fingerprint_image(encoded(upright, "JPEG", quality=95))
    assert (fp.width, fp.height) == (600, 400)
    assert np.unpackbits(fp.pdq_variants[0] ^ reference.pdq_variants[0]).sum() <= 16


# --- awkward and hostile input -------------------------------------------------------------------------


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height: a decompression bomb as far as the header goes."""
    data = bytearray(encoded(Image.new("L", (8, 8))))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_decompression_bomb_is_rejected_from_the_header() -> None:
    with pytest.raises(ImageTooLarge) as caught:
        fingerprint_image(png_claiming_size(20000, 20000))
    assert str(caught.value) == (
        "The image is 20000x20000 pixels (400 megapixels); the limit is 100 megapixels."
    )
    assert isinstance(caught.value, ImageFingerprintError) and isinstance(caught.value, ValueError)


def test_pixel_limit_is_a_parameter_and_pillow_limit_is_restored() -> None:
    before = Image.MAX_IMAGE_PIXELS
    data = encoded(skimage_picture("chelsea"))
    with pytest.raises(ImageTooLarge, match=r"the limit is 0\.1 megapixels"):
        fingerprint_image(data, max_pixels=100_000)
    assert fingerprint_image(data, max_pixels=200_000).width == 451
    assert before == Image.MAX_IMAGE_PIXELS


def test_truncated_jpeg_is_undecodable() -> None:
    data = encoded(skimage_picture("astronaut"), "JPEG", quality=90)
    with pytest.raises(UndecodableImage, match="truncated or corrupt"):
        fingerprint_image(data[: len(data) // 2])



def test_a_jpeg_with_more_scans_than_encoders_write_is_refused_before_decoding() -> None:
    assert not has_too_many_scans(progressive_jpeg_with_scans(MAX_JPEG_SCANS - 10))
    fingerprint_image(progressive_jpeg_with_scans(MAX_JPEG_SCANS - 10))  # the limit itself still decodes
    too_many = progressive_jpeg_with_scans(MAX_JPEG_SCANS - 9)
    assert has_too_many_scans(too_many)
    with pytest.raises(UndecodableImage, match=f"more than {MAX_JPEG_SCANS} progressive scans"):
        fingerprint_image(too_many)


def test_scan_markers_inside_other_segments_are_not_counted_as_scans() -> None:
    """An APP segment's payload may hold the bytes FF DA (by chance, or an embedded thumbnail's scans)."""
    data = progressive_jpeg_with_scans(0, app_payload=b"\xff\xda" * (2 * MAX_JPEG_SCANS))
    assert data.count(b"\xff\xda") > MAX_JPEG_SCANS
    assert not has_too_many_scans(data)
    assert fingerprint_image(data).width == 600


def test_a_cameras_mpo_file_is_decoded_in_draft_mode_like_a_jpeg() -> None:
    big = skimage_picture("coffee").resize((4000, 3000), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    big.save(out, "MPO", quality=90, save_all=True, append_images=[big.rotate(180)])
    fp = fingerprint_image(out.getvalue())
    assert (fp.width, fp.height, fp.work_width, fp.work_height) == (4000, 3000, 500, 375)
    assert pdq_distance(fp, fingerprint_image(encoded(big, "JPEG", quality=90))) == 0


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF", "WEBP"])
def test_phone_and_web_formats_fingerprint_like_a_jpeg_of_the_same_picture(fmt: str) -> None:
    picture = skimage_picture("coffee")
    fp = fingerprint_image(encoded(picture, fmt, quality=85))
    assert (fp.width, fp.height, fp.work_width) == (600, 400, 512)
    assert pdq_distance(fp, fingerprint_image(encoded(picture, "JPEG", quality=85))) <= 16


def test_a_heic_photo_taken_sideways_is_turned_upright_once() -> None:
    """A phone stores HEIC pixels as the sensor saw them plus a rotation that libheif applies while decoding."""
    upright = skimage_picture("coffee")
    exif = Image.Exif()
    exif[0x0112] = 6
    heic = encoded(upright.transpose(Image.Transpose.ROTATE_90), "HEIF", quality=90, exif=exif.tobytes())
    fp = fingerprint_image(heic)
    reference = fingerprint_image(encoded(upright, "JPEG", quality=90))
    assert (fp.width, fp.height) == (600, 400)
    assert np.unpackbits(fp.pdq_variants[0] ^ reference.pdq_variants[0]).sum() <= 16


def test_a_truncated_heic_is_undecodable_with_a_one_line_reason() -> None:
    heic = encoded(skimage_picture("astronaut"), "HEIF", quality=80)
    with pytest.raises(UndecodableImage, match="truncated or corrupt") as caught:
        fingerprint_image(heic[: len(heic) // 2])
    assert "\n" not in str(caught.value)
    with pytest.raises(ImageTooLarge, match="512x512 pixels"):
        fingerprint_image(heic, max_pixels=100_000)  # the limit is checked on HEIF's header too


def test_an_heif_whose_picture_ipx_cannot_decode_is_unsuitable_not_a_crash() -> None:
    with pytest.raises(UnsuitableImage, match="coded in a way IPX cannot decode"):
        fingerprint_image(heif_holding_av1())


@pytest.mark.parametrize(
    ("hostile", "refusal", "raised_by_pillow"),
    [
        (tiff_with_fractional_strip_offset, UndecodableImage, TypeError),
        (animated_avif_with_zero_time_scale, UndecodableImage, ZeroDivisionError),
        (avif_whose_primary_item_is_missing, UnsuitableImage, RuntimeError),  # while opening, not decoding
    ],
)
def test_whatever_a_decoder_raises_on_hostile_bytes_becomes_a_reason_in_words(
    hostile: Callable[[], bytes], refusal: type[Exception], raised_by_pillow: type[Exception]
) -> None:
    """Found by fuzzing the upload path: each of these was a 500."""
    with pytest.raises(refusal) as caught:
        fingerprint_image(hostile())
    assert isinstance(caught.value.__cause__, raised_by_pillow)
    assert str(caught.value.__cause__) in str(caught.value)


def test_a_jpeg2000_picture_is_decoded_with_wavelet_levels_skipped() -> None:
    picture = skimage_picture("coffee").resize((2000, 1500), Image.Resampling.BICUBIC)
    jp2 = encoded(picture, "JPEG2000")
    assert jpeg2000_decomposition_levels(jp2) == 5  # OpenJPEG's default: 6 resolutions
    fp = fingerprint_image(jp2)
    assert (fp.width, fp.height, fp.work_width, fp.work_height) == (2000, 1500, 500, 375)  # a quarter, not 512
    assert pdq_distance(fp, fingerprint_image(encoded(picture, "JPEG", quality=90))) <= 16


@pytest.mark.parametrize("declared", [None, 5], ids=["as-declared", "a-tile-declares-fewer"])
def test_a_jpeg2000_with_fewer_levels_than_wanted_is_decoded_at_what_it_offers(
    declared: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    j2k = encoded(skimage_picture("coffee").resize((2000, 1500)), "JPEG2000", no_jp2=True, num_resolutions=2)
    assert jpeg2000_decomposition_levels(j2k) == 1
    if declared is not None:  # OpenJPEG refuses to skip more levels than a tile has; the picture is decoded whole
        monkeypatch.setattr(image_module, "jpeg2000_decomposition_levels", lambda data: declared)
    fp = fingerprint_image(j2k)
    assert (fp.width, fp.work_width, fp.work_height) == (2000, 512, 384)


@pytest.mark.parametrize("data", [b"", b"not JPEG 2000", b"\xff\x4f\xff\x51\x00", b"\xff\x4f\xff\x51\xff\x52\x00\x0c"])
def test_jpeg2000_levels_of_a_missing_or_cut_header_are_zero(data: bytes) -> None:
    assert jpeg2000_decomposition_levels(data) == 0


@pytest.mark.parametrize("data", [b"", b"not an image at all", bytes(range(256)) * 4])
def test_non_images_are_undecodable(data: bytes) -> None:
    with pytest.raises(UndecodableImage):
        fingerprint_image(data)


@pytest.mark.parametrize("size", [(1, 100000), (100000, 1), (10, 10), (40, 2000)])
def test_degenerate_dimensions_are_refused_with_a_reason(size: tuple[int, int]) -> None:
    with pytest.raises(UnsuitableImage, match=f"{size[0]}x{size[1]} pixels"):
        fingerprint_image(encoded(Image.new("L", size, 128)))


def test_uniform_image_gets_an_honest_low_quality_fingerprint() -> None:
    fp = fingerprint_image(encoded(Image.new("RGB", (300, 200), (40, 90, 200))))
    assert fp.pdq_quality < 50
    assert len(fp.descriptors) == 0


def test_cmyk_matches_rgb() -> None:
    picture = skimage_picture("rocket")
    cmyk = fingerprint_image(encoded(picture.convert("CMYK"), "JPEG", quality=95))
    rgb = fingerprint_image(encoded(picture, "JPEG", quality=95))
    assert pdq_distance(cmyk, rgb) <= 20


def test_sixteen_bit_grey_matches_eight_bit() -> None:
    grey = np.asarray(skimage_picture("camera").convert("L"), dtype=np.uint16)
    sixteen = Image.fromarray(grey * 257)
    assert sixteen.mode.startswith("I")
    fp16 = fingerprint_image(encoded(sixteen))
    fp8 = fingerprint_image(encoded(Image.fromarray(grey.astype(np.uint8))))
    assert pdq_distance(fp16, fp8) <= 4


def test_palette_and_greyscale_alpha_images_fingerprint() -> None:
    picture = skimage_picture("chelsea")
    palette = fingerprint_image(encoded(picture.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)))
    rgb = fingerprint_image(encoded(picture))
    assert pdq_distance(palette, rgb) <= 24
    la = picture.convert("LA")
    assert fingerprint_image(encoded(la)).pdq_quality > 50


def test_transparency_is_flattened_onto_white() -> None:
    picture = skimage_picture("coffee")
    rgba = picture.convert("RGBA")
    canvas = Image.new("RGBA", (800, 600), (0, 0, 0, 0))  # transparent margin, black underneath
    canvas.paste(rgba, (100, 100))
    on_white = Image.new("RGB", (800, 600), (255, 255, 255))
    on_white.paste(picture, (100, 100))
    transparent = fingerprint_image(encoded(canvas))
    assert pdq_distance(transparent, fingerprint_image(encoded(on_white))) <= 4
    assert pdq_distance(transparent, fingerprint_image(encoded(picture))) <= 31  # margin trimmed away


def test_animated_gif_uses_first_frame() -> None:
    first, second = (skimage_picture(name).resize((256, 256)) for name in ("astronaut", "camera"))
    buffer = io.BytesIO()
    first.save(buffer, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    animated = fingerprint_image(buffer.getvalue())
    assert pdq_distance(animated, fingerprint_image(encoded(first))) <= 24
    assert pdq_distance(animated, fingerprint_image(encoded(second))) > 64


def test_bundled_tiny_animated_gif_is_refused_cleanly() -> None:
    from skimage import data

    with open(f"{data.__path__[0]}/no_time_for_that_tiny.gif", "rb") as handle:  # 14x25 pixels, 24 frames
        gif = handle.read()
    with pytest.raises(UnsuitableImage, match="14x25 pixels"):
        fingerprint_image(gif)


def test_a_frame_around_a_picture_with_its_own_bands_is_trimmed_down_to_the_picture() -> None:
    """Nested margins: a white frame added around black bands must come off like the bands do on the original."""
    banded = ImageOps.expand(skimage_picture("coffee"), border=(0, 40), fill=(0, 0, 0))
    framed = ImageOps.expand(banded, border=30, fill=(255, 255, 255))
    original, copy = trim_uniform_border(np.asarray(banded)), trim_uniform_border(np.asarray(framed))
    assert original.shape == copy.shape == (400, 600, 3)
    assert pdq_distance(fingerprint_image(encoded(framed)), fingerprint_image(encoded(banded))) <= 8


def test_a_page_margin_interrupted_by_a_header_bar_is_trimmed_once_the_bar_is_gone() -> None:
    """A screenshot: the header bar spans the top, so the left page margin is uniform only after it is cut."""
    from _edits import paste_in_page

    page = np.asarray(paste_in_page(skimage_picture("coffee")))
    trimmed = trim_uniform_border(page)
    page_colour, header_colour = np.array([244, 244, 246]), np.array([40, 44, 52])
    assert np.abs(trimmed[0].astype(int) - header_colour).max(axis=1).mean() > 16  # the header bar is gone
    assert np.abs(trimmed[:, 0].astype(int) - page_colour).max(axis=1).mean() > 16  # the picture's edge, not page


def test_the_faint_content_of_a_dark_picture_is_not_taken_for_margin() -> None:
    """A frame is flat to a few levels; the soft glow of a dark wallpaper (levels 0-12) is not, and must stay."""
    y, x = np.mgrid[0:300, 0:400].astype(np.float32)
    glow = 2 + 12 * (0.5 + 0.5 * np.sin((x + y) / 25))  # diagonal soft bands: no line is flat
    glow[100:200, 250:300] = 220  # the one bright shape, far from every edge
    dark = np.repeat(np.round(glow).astype(np.uint8)[..., None], 3, axis=2)
    assert trim_uniform_border(dark).shape == dark.shape


def test_a_twelve_megapixel_jpeg_decodes_at_an_eighth_of_its_size() -> None:
    """The working copy may be a little under 512 px when that lets libjpeg scale by 1/8 instead of 1/4."""
    big = skimage_picture("coffee").resize((4000, 3000), Image.Resampling.BICUBIC)
    fp = fingerprint_image(encoded(big, "JPEG", quality=90))
    assert (fp.width, fp.height) == (4000, 3000)
    assert (fp.work_width, fp.work_height) == (500, 375)

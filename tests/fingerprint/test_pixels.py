"""ipx.fingerprint.pixels: thumbnail alignment for pictures whose keypoints fail (smooth, soft, striped)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from _edits import EDITS, edited_copy
from PIL import Image, ImageOps

from ipx.fingerprint import pixels
from ipx.fingerprint.image import ImageFingerprint, fingerprint_image
from ipx.fingerprint.index import ImageIndex
from ipx.fingerprint.pixels import (
    NO_AGREEMENT,
    STRIP_WINDOWS,
    WHOLE_PICTURE,
    Frame,
    PixelAgreement,
    aligned_agreement,
    grey_thumbnail,
    query_window_vectors,
    stored_window_vectors,
    trimmed_and_offset,
)
from tests.fingerprint.pictures import encoded, skimage_picture

DEFAULTS = ImageIndex()
PARTIAL_EDITS = ("crop_centre", "crop_corner", "paste_in_page", "border")


def soft_picture(seed: int, size: tuple[int, int] = (960, 600)) -> Image.Image:
    """A dark wallpaper of soft glowing blobs and translucent bands: almost no corners for ORB to find."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    light = np.zeros((height, width), np.float32)
    for _ in range(4):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        sx, sy = rng.uniform(0.08, 0.3) * width, rng.uniform(0.08, 0.3) * height
        light += rng.uniform(60, 140) * np.exp(-(((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))
    for _ in range(3):
        angle, offset, thickness = rng.uniform(0, np.pi), rng.uniform(-0.3, 0.3) * height, rng.uniform(20, 60)
        across = (x - width / 2) * np.sin(angle) - (y - height / 2) * np.cos(angle) - offset
        bend = 0.0004 * ((x - width / 2) * np.cos(angle) + (y - height / 2) * np.sin(angle)) ** 2
        light += rng.uniform(40, 90) * np.exp(-(((across - bend) / thickness) ** 2))
    tint = rng.uniform(0.6, 1.0, 3)
    rgb = np.clip(light[..., None] * tint + 10, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb)


@pytest.fixture(scope="module")
def soft_originals() -> dict[int, Image.Image]:
    return {seed: soft_picture(seed) for seed in range(6)}


@pytest.fixture(scope="module", params=["flat", "clustered"])
def soft_index(request: pytest.FixtureRequest, soft_originals: dict[int, Image.Image]) -> ImageIndex:
    """The windows searched flat, or through an inverted file from the third picture on."""
    index = ImageIndex() if request.param == "flat" else ImageIndex(window_cluster_at=0, window_lists=1)
    for seed, picture in soft_originals.items():
        index.add(f"soft-{seed}", fingerprint_image(encoded(picture)))
    assert index._windows.clustered == (request.param == "clustered")
    return index


def thumbnail_of(picture: Image.Image) -> np.ndarray:
    return grey_thumbnail(np.asarray(picture.convert("RGB")))


def test_identity_alignment_agrees_perfectly_and_a_shift_does_not(soft_originals: dict[int, Image.Image]) -> None:
    thumbnail = thumbnail_of(soft_originals[0])
    assert max(thumbnail.shape) == 128
    same = aligned_agreement(thumbnail, thumbnail, np.array([[1.0, 0, 0], [0, 1.0, 0]]))
    assert same.correlation > 0.999 and same.detail > 0.999 and same.overlap == 1.0
    shifted = aligned_agreement(thumbnail, thumbnail, np.array([[1.0, 0, 25], [0, 1.0, -15]]))
    assert shifted.overlap < 0.75 and not DEFAULTS.pixels_agree(shifted)


@pytest.mark.parametrize("edit", PARTIAL_EDITS)
def test_search_finds_a_crop_or_paste_of_the_same_soft_picture(
    edit: str, soft_originals: dict[int, Image.Image]
) -> None:
    original = thumbnail_of(soft_originals[1])
    copy = fingerprint_image(edited_copy(soft_originals[1], edit)).grey_thumbnail
    assert copy is not None
    assert DEFAULTS.pixels_agree(pixels.PixelQuery(copy).agreement_with(original))


def test_search_keeps_distinct_soft_pictures_apart(soft_originals: dict[int, Image.Image]) -> None:
    thumbnails = {seed: thumbnail_of(picture) for seed, picture in soft_originals.items()}
    for seed, query in thumbnails.items():
        for other, stored in thumbnails.items():
            if other != seed:
                assert not DEFAULTS.pixels_agree(pixels.PixelQuery(query).agreement_with(stored)), (seed, other)


def test_a_query_prepared_once_checks_each_candidate_as_a_fresh_one_would(
    soft_originals: dict[int, Image.Image],
) -> None:
    """A search shares one PixelQuery between its candidates (templates and sizes kept by stored shape and by
    which way round): candidates of the query's shape, of another shape, and the same shape again must each get
    exactly the agreement a query prepared for them alone gives."""
    query = fingerprint_image(encoded(ImageOps.mirror(EDITS["crop_corner"](soft_originals[3])))).grey_thumbnail
    assert query is not None
    candidates = [
        thumbnail_of(soft_originals[3]),
        thumbnail_of(soft_originals[3].resize((600, 600))),
        thumbnail_of(soft_originals[1].resize((480, 720))),
        thumbnail_of(soft_originals[1]),
    ]
    assert len({candidate.shape for candidate in candidates}) == 3
    prepared = pixels.PixelQuery(query)
    shared = [prepared.agreement_with(candidate) for candidate in candidates]
    assert shared == [pixels.PixelQuery(query).agreement_with(candidate) for candidate in candidates]
    assert DEFAULTS.pixels_agree(shared[0]) and not DEFAULTS.pixels_agree(shared[3])


def test_a_crop_lands_near_one_of_its_originals_windows(soft_originals: dict[int, Image.Image]) -> None:
    stored = stored_window_vectors(thumbnail_of(soft_originals[2]))
    assert stored.shape == (10, 64)
    assert np.allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-5)
    crop = query_window_vectors(thumbnail_of(EDITS["crop_corner"](soft_originals[2])))
    assert crop.shape == (43, 64)
    assert float((crop @ stored.T).max()) > 0.95


def test_a_picture_with_dark_bands_pasted_in_a_page_is_found_by_a_trimmed_strip() -> None:
    """Registered, the bands were trimmed away; in the page they stay: only the strip trimmed again matches."""
    banded = ImageOps.expand(skimage_picture("chelsea"), border=(0, 150), fill=(0, 0, 0))
    stored = stored_window_vectors(fingerprint_image(encoded(banded)).grey_thumbnail)
    page = fingerprint_image(encoded(EDITS["paste_in_page"](banded))).grey_thumbnail
    similarity = query_window_vectors(page) @ stored[0]
    untrimmed, trimmed = similarity[: -len(STRIP_WINDOWS)], similarity[-len(STRIP_WINDOWS) :]
    assert float(trimmed.max()) > 0.95 > float(untrimmed.max())


@pytest.mark.parametrize("edit", [*PARTIAL_EDITS, "rotate_small_crop", "jpeg_q10", "mirror"])
def test_index_finds_edited_soft_pictures_and_nothing_else(
    edit: str, soft_originals: dict[int, Image.Image], soft_index: ImageIndex
) -> None:
    matches = soft_index.query(fingerprint_image(edited_copy(soft_originals[3], edit)))
    assert [m.work_id for m in matches] == ["soft-3"]


@pytest.mark.parametrize("edit", ["crop_centre", "crop_corner"])
def test_index_finds_a_mirrored_crop_of_a_soft_picture_by_its_pixels(
    edit: str, soft_originals: dict[int, Image.Image], soft_index: ImageIndex
) -> None:
    """Hashes miss the crop and keypoints the soft picture: the pixel search's mirrored placements find it."""
    copy = encoded(ImageOps.mirror(EDITS[edit](soft_originals[3])))
    matches = soft_index.query(fingerprint_image(copy))
    assert [(m.work_id, m.method) for m in matches] == [("soft-3", "pixels")]


def test_pixels_method_reports_correlation(soft_originals: dict[int, Image.Image]) -> None:
    """With keypoints and hashes out of the way, the pixel stage alone finds the crop."""
    index = ImageIndex(orb_min_votes=10**6, pdq_max_distance=-1)
    for seed, picture in soft_originals.items():
        index.add(f"soft-{seed}", fingerprint_image(encoded(picture)))
    (match,) = index.query(fingerprint_image(edited_copy(soft_originals[3], "crop_corner")))
    assert (match.work_id, match.method) == ("soft-3", "pixels")
    assert match.similarity >= DEFAULTS.pixel_min_correlation
    assert match.distance == pytest.approx(1 - match.similarity)


def test_fingerprints_stored_before_thumbnails_still_load_and_query(soft_originals: dict[int, Image.Image]) -> None:
    current = fingerprint_image(encoded(soft_originals[5]))
    assert ImageFingerprint.from_bytes(current.to_bytes()) == current
    trim_part, thumbnail_part = 8, 4 + len(current.thumbnail)
    version_2 = bytearray(current.to_bytes()[:-trim_part])
    version_2[4] = 2
    before_trims = ImageFingerprint.from_bytes(bytes(version_2))
    assert before_trims == replace(current, picture_width=0, picture_height=0, trim_left=0, trim_top=0)
    assert before_trims.frame == WHOLE_PICTURE  # taken as untrimmed
    version_1 = bytearray(current.to_bytes()[: -trim_part - thumbnail_part])
    version_1[4] = 1
    legacy = ImageFingerprint.from_bytes(bytes(version_1))
    assert legacy.grey_thumbnail is None and legacy.pdq == current.pdq
    index = ImageIndex()
    index.add("legacy", legacy)
    assert [m.work_id for m in index.query(current)] == ["legacy"]
    assert index.query(fingerprint_image(edited_copy(soft_originals[0], "crop_corner"))) == []


def test_ecc_stops_at_its_probe_for_distinct_pictures_and_refines_a_copy_from_the_placement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Distinct pictures pay REFINE_PROBE_ITERATIONS of ECC, not REFINE_ITERATIONS; a copy that passes the probe
    is refined from the template placement again, as if the probe had not run."""
    calls: list[tuple[int, np.ndarray]] = []
    ecc = pixels._ecc

    def recorded(window: np.ndarray, query: np.ndarray, warp: np.ndarray, iterations: int) -> tuple[float, np.ndarray]:
        calls.append((iterations, warp.copy()))
        return ecc(window, query, warp, iterations)

    monkeypatch.setattr(pixels, "_ecc", recorded)
    astronaut, coffee = thumbnail_of(skimage_picture("astronaut")), thumbnail_of(skimage_picture("coffee"))
    assert not DEFAULTS.pixels_agree(pixels.PixelQuery(coffee).agreement_with(astronaut))
    assert [iterations for iterations, _ in calls] == [pixels.REFINE_PROBE_ITERATIONS]

    calls.clear()
    rotated = fingerprint_image(edited_copy(skimage_picture("astronaut"), "rotate_small_crop")).grey_thumbnail
    assert DEFAULTS.pixels_agree(pixels.PixelQuery(rotated).agreement_with(astronaut))
    assert [iterations for iterations, _ in calls] == [pixels.REFINE_PROBE_ITERATIONS, pixels.REFINE_ITERATIONS]
    assert np.array_equal(calls[0][1], calls[1][1])


def test_placements_scoring_low_are_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Distinct pictures whose placements all score below MIN_PLACEMENT_SCORE (and fail the ECC probe) are
    answered without measuring any alignment at full thumbnail size; a copy's placements still are."""
    measured: list[np.ndarray] = []
    agreement = pixels.aligned_agreement

    def recorded(query: np.ndarray, stored: np.ndarray, transform: np.ndarray, **options: object) -> PixelAgreement:
        measured.append(transform)
        return agreement(query, stored, transform, **options)

    monkeypatch.setattr(pixels, "aligned_agreement", recorded)
    astronaut, coffee = thumbnail_of(skimage_picture("astronaut")), thumbnail_of(skimage_picture("coffee"))
    assert pixels.PixelQuery(coffee).agreement_with(astronaut) == NO_AGREEMENT
    assert measured == []
    crop = thumbnail_of(EDITS["crop_corner"](skimage_picture("astronaut")))
    assert DEFAULTS.pixels_agree(pixels.PixelQuery(crop).agreement_with(astronaut))
    assert measured


def test_trimming_says_where_what_is_left_starts_and_the_fingerprint_keeps_it() -> None:
    picture = skimage_picture("chelsea")
    framed = ImageOps.expand(picture, border=(40, 20, 60, 10), fill=(255, 255, 255))
    trimmed, offset = trimmed_and_offset(np.asarray(framed))
    assert (trimmed.shape, offset) == ((picture.height, picture.width, 3), (40, 20))
    assert trimmed_and_offset(np.asarray(picture))[1] == (0, 0)
    fp = fingerprint_image(encoded(framed, "PNG"))
    width, height = framed.size
    expected = Frame(40 / width, 20 / height, (40 + picture.width) / width, (20 + picture.height) / height)
    assert fp.frame == pytest.approx(expected, abs=0.005)  # trimmed at the working size, 512 px
    assert ImageFingerprint.from_bytes(fp.to_bytes()).frame == fp.frame


def test_a_rectangle_of_a_rectangle_is_placed_in_the_whole_picture() -> None:
    assert Frame(0.5, 0.0, 1.0, 0.5).within(Frame(0.2, 0.2, 0.6, 1.0)) == pytest.approx((0.4, 0.2, 0.6, 0.6))
    assert Frame(0.1, 0.2, 0.3, 0.4).within(WHOLE_PICTURE) == Frame(0.1, 0.2, 0.3, 0.4)


@pytest.mark.parametrize("length", [1, 2, 3, 64, 127, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_a_lines_median_colour_is_numpys_median_truncated(length: int, channels: int) -> None:
    """Trimming compares margins with the median colour of their first line; the fast median must be NumPy's to
    the level (even lengths average the two middle values, which int16 truncates), or trims would shift."""
    rng = np.random.default_rng(length * channels)
    for line in (
        rng.integers(0, 256, (length, channels), dtype=np.uint8),
        np.full((length, channels), 200, np.uint8) + rng.integers(0, 2, (length, channels), dtype=np.uint8),
    ):
        expected = np.median(line, axis=0).astype(np.int16)
        median = pixels._median_colour(line)
        assert median.dtype == np.int16
        assert np.array_equal(median, expected)

"""Pixel agreement on small grey thumbnails: the stage for pictures whose keypoints fail.

Smooth gradients, soft translucent shapes and repetitive textures (stripes, wood grain, tiles) give ORB
too few or too ambiguous keypoints, and a crop moves every global hash. What still survives is the
picture itself at low resolution. This module finds where one thumbnail lies inside the other (a crop of
it, or it pasted into a page) and measures how well the aligned pixels agree, twice: plain correlation
(the layout of light and dark) and correlation of band-passed detail (the edges of shapes). Distinct
smooth pictures often share a layout (a bright centre, dark corners) but not their detail; requiring both
is what keeps such pairs apart (bench/robustness.py reports the closest distinct pair).

Candidates come from `stored_window_vectors`/`query_window_vectors`: 8x8 normalised "tiny images" of
windows of each picture, so a crop of a registered picture lands near one of its windows.

Border trimming lives here too: every fingerprint starts from the trimmed picture, and query windows are
trimmed again the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

THUMB_SIDE = 128
SEARCH_SIDE = 64
TINY_SIDE = 8
SEARCH_SCALES = (1.0, 0.9, 0.8, 0.7, 0.6)
# Windows as (left, top, width, height), fractions of the picture.
STORED_WINDOWS = ((0.0, 0.0, 1.0, 1.0), *((x, y, 0.75, 0.75) for x in (0, 0.125, 0.25) for y in (0, 0.125, 0.25)))
_STRIP_WIDTHS = (0.5, 0.6, 0.7, 0.8)
STRIP_WINDOWS = (
    *((0.0, 0.0, f, 1.0) for f in _STRIP_WIDTHS),
    *((1.0 - f, 0.0, f, 1.0) for f in _STRIP_WIDTHS),
    *((0.0, 0.0, 1.0, f) for f in _STRIP_WIDTHS),
    *((0.0, 1.0 - f, 1.0, f) for f in _STRIP_WIDTHS),
)
QUERY_WINDOWS = (
    (0.0, 0.0, 1.0, 1.0),
    *((x, y, 0.6, 0.6) for x in (0, 0.2, 0.4) for y in (0, 0.2, 0.4)),
    *STRIP_WINDOWS,
)
DETAIL_SIGMAS = (1.0, 4.0)
MIN_TEMPLATE_SIDE = 8
ALIGNMENTS_TRIED = 3
MIN_PLACEMENT_SCORE = 0.7
REFINE_MIN_SIDE = 12
REFINE_ITERATIONS = 40
REFINE_PROBE_ITERATIONS = 3
REFINE_MIN_PROBE_CORRELATION = 0.75
REFINE_MAX_ANISOTROPY = 1.15
TRIM_TOLERANCE = 3  # levels: frames and pages are flat; dark pictures' faint content is not
TRIM_COVERAGE = 0.98
TRIM_ROUNDS = 3
TRIM_MIN_SIDE = 16


class Frame(NamedTuple):
    """A rectangle as fractions (0..1) of a picture's width and height."""

    left: float
    top: float
    right: float
    bottom: float

    def within(self, outer: Frame) -> Frame:
        """This rectangle of `outer`, as fractions of the picture that `outer` is a rectangle of."""
        width, height = outer.right - outer.left, outer.bottom - outer.top
        return Frame(
            outer.left + self.left * width, outer.top + self.top * height,
            outer.left + self.right * width, outer.top + self.bottom * height,
        )  # fmt: skip


WHOLE_PICTURE = Frame(0.0, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class PixelAgreement:
    """How well an aligned query thumbnail agrees with a stored one.

    correlation: zero-mean normalised correlation of the overlapping pixels (-1..1); detail: the same for
    band-passed (difference of Gaussians) pixels away from the overlap's edge; overlap: the share of the
    stored thumbnail that the query covers.
    """

    correlation: float
    detail: float
    overlap: float

    def agrees(self, *, min_correlation: float, min_detail: float, min_overlap: float) -> bool:
        return self.correlation >= min_correlation and self.detail >= min_detail and self.overlap >= min_overlap


NO_AGREEMENT = PixelAgreement(-1.0, -1.0, 0.0)
Size = tuple[int, int]  # (width, height), as OpenCV takes it


def trim_uniform_border(rgb: np.ndarray) -> np.ndarray:
    """The picture without its flat-colour margins (see `trimmed_and_offset`)."""
    return trimmed_and_offset(rgb)[0]


def trimmed_and_offset(rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Remove flat-colour margins (frames, page background) so the global hashes see the picture itself; also where
    what is left starts in the picture (x, y), to place what the fingerprints find back in it.

    Margins nest: a white frame added around a picture that has black bands of its own must come off
    down to where the original's own trim stops, or the copy and the original are framed differently; and
    a page margin interrupted by a header bar only becomes uniform once the bar is gone. So trimming
    repeats (at most TRIM_ROUNDS rounds), except on a side whose next margin has about the colour just
    trimmed there: that is the picture's own dark or light content, which repeated trimming would eat.
    Margins must be flat within TRIM_TOLERANCE levels: at 16 the near-black content of dark wallpapers was
    taken for margin and their crops trimmed to slivers (tuning set: 16 -> 3 levels found 8 more copies).
    The price: JPEG ringing beside a frame is not flat, so 1-2% of a compressed frame stays (PDQ, keypoints
    and the pixel stage all tolerate that; the border edit is still matched 52 of 52).
    """
    cut_top = cut_left = 0
    trimmed_colours: list[np.ndarray | None] = [None] * 4
    for _ in range(TRIM_ROUNDS):
        sides = (rgb, rgb[::-1], rgb.transpose(1, 0, 2), rgb.transpose(1, 0, 2)[::-1])
        runs, colours = [], []
        for lines, previous in zip(sides, trimmed_colours, strict=True):
            colour = _median_colour(lines[0])
            same_margin_again = previous is not None and int(np.abs(colour - previous).max()) <= 2 * TRIM_TOLERANCE
            run = 0 if same_margin_again else _uniform_run(lines, colour)
            runs.append(run)
            colours.append(colour if run else None)
        top, bottom, left, right = runs
        height, width = rgb.shape[:2]
        if not any(runs) or height - top - bottom < TRIM_MIN_SIDE or width - left - right < TRIM_MIN_SIDE:
            break
        rgb = np.ascontiguousarray(rgb[top : height - bottom, left : width - right])
        trimmed_colours = colours
        cut_top, cut_left = cut_top + top, cut_left + left
    return rgb, (cut_left, cut_top)


def _median_colour(line: np.ndarray) -> np.ndarray:
    """Each channel's median over a line of pixels, as int16: `np.median(line, axis=0).astype(np.int16)`, whose
    general machinery cost 20 us a call (a query's window strips make up to 192 of them) against 5 here."""
    ordered = np.sort(line, axis=0).astype(np.int16)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) // 2


def _uniform_run(lines: np.ndarray, colour: np.ndarray) -> int:
    """How many lines, from the outside in, are (almost) entirely `colour` (within TRIM_TOLERANCE levels).

    Scans 4 lines, then blocks of 32: most pictures have no border and stop at the first few lines.
    """
    start, block = 0, 4
    while start < len(lines):
        deviation = np.abs(lines[start : start + block].astype(np.int16) - colour).max(axis=2)
        is_border = (deviation <= TRIM_TOLERANCE).mean(axis=1) >= TRIM_COVERAGE
        if not is_border.all():
            return start + int(np.argmin(is_border))
        start, block = start + block, 32
    return len(lines)


def grey_thumbnail(rgb: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """Grey uint8 thumbnail with the longer side `side` (area-averaged, so it is also denoised)."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)
    return _resize_longer_side(grey, side)


def _resize_longer_side(grey: np.ndarray, side: int) -> np.ndarray:
    height, width = grey.shape
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def _tiny_vectors(windows: list[np.ndarray]) -> np.ndarray:
    """Each window 8x8 area-averaged, zero mean, unit length: inner products are correlations of coarse layouts.

    Normalised together: one NumPy pass for all of a picture's windows instead of one per window halves the
    time a worker's start-up spends on them (0.12 -> 0.06 ms per picture).
    """
    tiny = [cv2.resize(window, (TINY_SIDE, TINY_SIDE), interpolation=cv2.INTER_AREA) for window in windows]
    vectors = np.stack(tiny).reshape(len(windows), -1).astype(np.float32)
    vectors -= vectors.mean(axis=1, keepdims=True)
    # Each row's dot product with itself, as np.linalg.norm of one vector computes it: the same bits as before
    # batching (norm(axis=1) sums in another order), so indexes and recall figures are unchanged.
    norms = np.sqrt(vectors[:, None, :] @ vectors[:, :, None])[:, 0]
    return np.divide(vectors, norms, out=vectors, where=norms > 1e-6)


def _windows(
    grey: np.ndarray, windows: tuple[tuple[float, float, float, float], ...], *, trimmed: bool = False
) -> np.ndarray:
    height, width = grey.shape
    crops = []
    for x, y, window_width, window_height in windows:
        top, left = int(y * height), int(x * width)
        window = grey[top : top + max(1, int(window_height * height)), left : left + max(1, int(window_width * width))]
        crops.append(trim_uniform_border(window[..., None])[..., 0] if trimmed else window)
    return _tiny_vectors(crops)


def stored_window_vectors(thumbnail: np.ndarray) -> np.ndarray:
    """(10, 64) float32: the whole picture and nine overlapping 75% windows (where a crop would land)."""
    return _windows(thumbnail, STORED_WINDOWS)


def query_window_vectors(thumbnail: np.ndarray) -> np.ndarray:
    """(43, 64) float32: the whole query, its mirror image, nine 60% windows and sixteen full-height or
    full-width strips (a picture pasted in a page sits beside or above the page's text once margins are trimmed),
    the strips again with their own flat margins trimmed (the picture's own dark bands, which the page kept).
    """
    return np.concatenate(
        [
            _windows(thumbnail, QUERY_WINDOWS),
            _windows(thumbnail[:, ::-1], STORED_WINDOWS[:1]),
            _windows(thumbnail, STRIP_WINDOWS, trimmed=True),
        ]
    )


def aligned_agreement(
    query: np.ndarray, stored: np.ndarray, transform: np.ndarray, *, stored_detail: np.ndarray | None = None
) -> PixelAgreement:
    """Agreement once `transform` (2x3, query thumbnail -> stored thumbnail pixels) is applied to the query.

    `stored_detail` is the stored thumbnail band-passed, for callers measuring several alignments with it.
    """
    height, width = stored.shape
    warped = cv2.warpAffine(query.astype(np.float32), transform, (width, height), flags=cv2.INTER_LINEAR)
    valid = cv2.warpAffine(np.ones(query.shape, np.uint8), transform, (width, height), flags=cv2.INTER_NEAREST) > 0
    stored_pixels = stored.astype(np.float32)
    if valid.sum() < 64:
        return NO_AGREEMENT
    inner = cv2.erode(valid.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    if inner.sum() < 64:
        return NO_AGREEMENT
    filled = np.where(valid, warped, stored_pixels)  # outside the overlap the detail filter sees no false edge
    return PixelAgreement(
        correlation=_correlation(warped[valid], stored_pixels[valid]),
        detail=_correlation(
            _band_pass(filled)[inner], (_band_pass(stored_pixels) if stored_detail is None else stored_detail)[inner]
        ),
        overlap=float(valid.mean()),
    )


def _band_pass(pixels: np.ndarray) -> np.ndarray:
    fine, coarse = DETAIL_SIGMAS
    return cv2.GaussianBlur(pixels, (0, 0), fine) - cv2.GaussianBlur(pixels, (0, 0), coarse)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / denominator if denominator > 0 else 0.0


class PixelQuery:
    """A query thumbnail prepared once for the pixel checks of all its candidates: its SEARCH_SIDE version,
    upright and mirrored, and what the template search derives from it alone (the sizes tried against each
    stored shape, the templates resized from it), kept as they are made. Candidates of one shape (most of a
    catalogue's: 4:3, 3:2, 16:9) share all of it: 13 resizes of 12 us a candidate. Safe to share between
    threads (what two threads make at once is made the same)."""

    def __init__(self, thumbnail: np.ndarray) -> None:
        self.thumbnail = thumbnail
        self.small = _resize_longer_side(thumbnail, SEARCH_SIDE).astype(np.float32)
        self._oriented = (self.small, np.ascontiguousarray(self.small[:, ::-1]))
        self._mirror = np.array([[-1.0, 0.0, self.small.shape[1] - 1], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        self._sizes: dict[tuple[int, ...], list[tuple[set[Size], set[Size]]]] = {}
        self._templates: dict[tuple[bool, Size], tuple[np.ndarray, bool]] = {}

    def agreement_with(self, stored: np.ndarray) -> PixelAgreement:
        """Search where the query lies in the stored picture (or the stored picture in the query), then measure.

        Template matching at SEARCH_SIDE over SEARCH_SCALES, both ways round and mirrored; the best
        ALIGNMENTS_TRIED placements, and the best one refined by ECC, are measured at full thumbnail size and
        the best agreement returned. A placement scoring below MIN_PLACEMENT_SCORE is not measured: on the
        tuning set every placement that agreed unrefined scored 0.92 or more, and 91% of distinct pairs'
        placements score less (a copy placed badly still gets its chance through ECC).
        """
        small_stored = _resize_longer_side(stored, SEARCH_SIDE).astype(np.float32)
        placements = sorted(self._placements(small_stored), key=lambda placement: -placement.score)
        best = placements[:ALIGNMENTS_TRIED]
        small_maps = [self._map(p, small_stored.shape) for p in best if p.score >= MIN_PLACEMENT_SCORE]
        if placements:
            refined = _refined(self.small, small_stored, self._map(placements[0], small_stored.shape))
            if refined is not None:
                small_maps.append(refined)
        if not small_maps:
            return NO_AGREEMENT
        query_to_small = scale_between(self.thumbnail.shape, self.small.shape)
        small_to_stored = scale_between(small_stored.shape, stored.shape)
        stored_detail = _band_pass(stored.astype(np.float32))
        transforms = [(small_to_stored @ small_map @ query_to_small)[:2] for small_map in small_maps]
        agreements = [aligned_agreement(self.thumbnail, stored, t, stored_detail=stored_detail) for t in transforms]
        return max(agreements, key=lambda a: min(a.correlation, a.detail))

    def _placements(self, stored: np.ndarray) -> list[_Placement]:
        """Each hypothesis tried, upright and mirrored: the query as a crop of the stored picture, and the stored
        picture pasted inside the query. Their maps are made only for the few that are used."""
        sizes = self._sizes_against(stored.shape)
        pasted = {size: _search_template(stored, size) for _, paste_sizes in sizes for size in paste_sizes}
        found = []
        for mirrored in (False, True):
            for crop_sizes, paste_sizes in sizes:
                for size in crop_sizes:
                    score, position = _best_position(stored, self._template(mirrored, size))
                    found.append(_Placement(score, position, True, size, mirrored))
                for size in paste_sizes:
                    score, position = _best_position(self._oriented[mirrored], pasted[size])
                    found.append(_Placement(score, position, False, size, mirrored))
        return found

    def _map(self, placement: _Placement, stored_shape: tuple[int, ...]) -> np.ndarray:
        """3x3 map query -> stored pixels (both at SEARCH_SIDE) of a placement."""
        if placement.query_in_stored:
            to_stored = _placement_map(self.small.shape, placement.size, placement.position)
        else:
            to_stored = _inverse_placement_map(stored_shape, placement.size, placement.position)
        return to_stored @ self._mirror if placement.mirrored else to_stored

    def _sizes_against(self, stored_shape: tuple[int, ...]) -> list[tuple[set[Size], set[Size]]]:
        """For each of SEARCH_SCALES: the query's sizes as a crop of a picture of this shape, and the picture's
        sizes pasted inside the query."""
        sizes = self._sizes.get(stored_shape)
        if sizes is None:
            query_shape = self.small.shape
            sizes = [
                (_fitted_sizes(query_shape, stored_shape, scale), _fitted_sizes(stored_shape, query_shape, scale))
                for scale in SEARCH_SCALES
            ]
            self._sizes[stored_shape] = sizes
        return sizes

    def _template(self, mirrored: bool, size: Size) -> tuple[np.ndarray, bool]:
        """The query (mirrored or not) as a template of `size` (see `_search_template`)."""
        key = (mirrored, size)
        made = self._templates.get(key)
        if made is None:
            made = self._templates[key] = _search_template(self._oriented[mirrored], size)
        return made


class _Placement(NamedTuple):
    """Where one template was found best, and how well."""

    score: float
    position: tuple[int, int]
    query_in_stored: bool  # the query as a crop of the stored picture, else the stored picture inside the query
    size: Size  # the template's
    mirrored: bool


def scale_between(from_shape: tuple[int, ...], to_shape: tuple[int, ...]) -> np.ndarray:
    """3x3 map from pixels of a picture of `from_shape` (height, width) to the same picture resized to `to_shape`."""
    return np.diag([to_shape[1] / from_shape[1], to_shape[0] / from_shape[0], 1.0])


def _refined(query: np.ndarray, stored: np.ndarray, to_stored: np.ndarray) -> np.ndarray | None:
    """A placement (3x3, query -> stored pixels, both at SEARCH_SIDE) refined by ECC (affine).

    The template search only tries 5 scales, upright, on a 64 px grid; fine textures and rotated copies
    need sub-pixel position, exact scale and a few degrees of rotation before their pixels can agree. ECC
    runs at SEARCH_SIDE (a quarter of the pixels of the thumbnail, a quarter of the cost); None when it
    fails or wanders off. REFINE_ITERATIONS 20 or 10 would save 11% or 20% of a pixel check, but the tuning set's
    copies agreeing with their own originals fell from 625 to 622 of 832 with either (a texture's rotated crop
    and crops of smooth wallpapers no longer line up), so the cap stays at 40.

    Most candidates of a search are not copies, and ECC spends its 40 iterations on them too. After
    REFINE_PROBE_ITERATIONS, the copies this refinement decides (83 on the tuning set: matched with it, not
    without) correlate at 0.83 or more (any copy whose refined map agrees, 0.80), while of the pairs of distinct
    pictures a pixel search actually checks (24,294: every tuning-set query against its 16 candidates) 69% are
    still below REFINE_MIN_PROBE_CORRELATION 0.75: those stop there (0.6 stopped 43%: the 1.3 ms of 40
    iterations saved on a quarter more of them; no copy is decided differently). Checking again after 6, 10 or
    15 iterations would stop few more: distinct pairs past the probe rise as copies do. The rest start again from
    the placement, so a refined map is exactly what 40 iterations give.
    """
    height, width = query.shape
    corners = to_stored @ np.array([[0, width - 1, 0, width - 1], [0, 0, height - 1, height - 1], [1, 1, 1, 1]])
    left, top = max(0, int(np.floor(corners[0].min()))), max(0, int(np.floor(corners[1].min())))
    right = min(stored.shape[1], int(np.ceil(corners[0].max())) + 1)
    bottom = min(stored.shape[0], int(np.ceil(corners[1].max())) + 1)
    if right - left < REFINE_MIN_SIDE or bottom - top < REFINE_MIN_SIDE:
        return None
    offset = np.array([[1.0, 0.0, left], [0.0, 1.0, top], [0.0, 0.0, 1.0]])
    warp = (np.linalg.inv(to_stored) @ offset)[:2].astype(np.float32)  # stored window pixels -> query pixels
    window = np.ascontiguousarray(stored[top:bottom, left:right])
    try:
        if _ecc(window, query, warp.copy(), REFINE_PROBE_ITERATIONS)[0] < REFINE_MIN_PROBE_CORRELATION:
            return None
        _, warp = _ecc(window, query, warp, REFINE_ITERATIONS)
    except cv2.error:  # did not converge: the pictures do not correlate under any nearby alignment
        return None
    refined = offset @ np.linalg.inv(np.vstack([warp.astype(np.float64), [0.0, 0.0, 1.0]]))
    singular_values = np.linalg.svd(refined[:2, :2], compute_uv=False)
    coarse_scale = float(np.sqrt(abs(np.linalg.det(to_stored[:2, :2]))))
    if singular_values.max() / singular_values.min() > REFINE_MAX_ANISOTROPY or not (
        0.8 < float(np.sqrt(singular_values.prod())) / coarse_scale < 1.25
    ):
        return None
    return refined


def _ecc(window: np.ndarray, query: np.ndarray, warp: np.ndarray, iterations: int) -> tuple[float, np.ndarray]:
    """(correlation, affine warp) after at most `iterations` of ECC from `warp`; raises cv2.error when it fails."""
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, iterations, 1e-4)
    return cv2.findTransformECC(window, query, warp, cv2.MOTION_AFFINE, criteria, None, 3)


def _placement_map(shape: tuple[int, ...], size: Size, position: tuple[int, int]) -> np.ndarray:
    """3x3 map from a picture of `shape` to where it was found, resized to `size`, at `position`."""
    (height, width), (new_width, new_height), (x, y) = shape, size, position
    return np.array([[new_width / width, 0.0, x], [0.0, new_height / height, y], [0.0, 0.0, 1.0]])


def _inverse_placement_map(shape: tuple[int, ...], size: Size, position: tuple[int, int]) -> np.ndarray:
    """The inverse of `_placement_map`, written out: a general inversion costs more than the rest of the placement."""
    (height, width), (new_width, new_height), (x, y) = shape, size, position
    scale_x, scale_y = width / new_width, height / new_height
    return np.array([[scale_x, 0.0, -x * scale_x], [0.0, scale_y, -y * scale_y], [0.0, 0.0, 1.0]])


def _fitted_sizes(inner: tuple[int, ...], outer: tuple[int, ...], scale: float) -> set[Size]:
    """Sizes of `inner` (aspect kept) spanning `scale` of `outer`'s width or height, where it fits inside."""
    inner_height, inner_width = inner
    outer_height, outer_width = outer
    sizes = {
        (round(scale * outer_width), round(scale * outer_width * inner_height / inner_width)),
        (round(scale * outer_height * inner_width / inner_height), round(scale * outer_height)),
    }
    return {
        (w, h) for w, h in sizes if MIN_TEMPLATE_SIDE <= w <= outer_width and MIN_TEMPLATE_SIDE <= h <= outer_height
    }


def _search_template(picture: np.ndarray, size: Size) -> tuple[np.ndarray, bool]:
    """`picture` resized to `size` to search for, and whether it is flat (then no position is better than another)."""
    template = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
    return template, float(cv2.meanStdDev(template)[1][0, 0]) < 1e-3


def _best_position(image: np.ndarray, template: tuple[np.ndarray, bool]) -> tuple[float, tuple[int, int]]:
    """The best TM_CCOEFF_NORMED score of a template (from `_search_template`) in `image`, and its (x, y); -1 at (0, 0)
    for a flat template."""
    pixels, flat = template
    if flat:
        return -1.0, (0, 0)
    scores = cv2.matchTemplate(image, pixels, cv2.TM_CCOEFF_NORMED)
    _, best, _, position = cv2.minMaxLoc(scores)
    return float(best), position

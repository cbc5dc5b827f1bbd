"""Similarity index over image fingerprints: exact Hamming search, then geometric verification.

Stage 1 (global hashes): every PDQ dihedral variant of the query (and of pHash, when enabled) is
range-searched in a FAISS binary flat index, which is exact (same answers as brute force) and scans a
million 256-bit hashes in about 7 ms (bench/fingerprint_speed.py).

Stage 2 (local features): each query ORB descriptor votes for the works holding a close descriptor;
the works with the most votes are verified by fitting an affine transform with RANSAC between matched
keypoints. Only geometrically consistent inliers count, which is what keeps crops, pasted-in copies and
rotations findable without matching pictures that merely share textures.

Stage 3 (pixels, ipx/fingerprint/pixels.py): for pictures whose keypoints fail (smooth gradients, soft
shapes, stripes and grain), grey thumbnails are aligned and compared pixel by pixel: under the RANSAC
transform of an ORB candidate with too few inliers to count alone, or, when nothing else matched, after a
template search against the works whose thumbnail windows look most alike (WindowTable).

An exact flat scan for the descriptor vote grows with 500 descriptors per image (0.13 s per query at
1,000 images, 2.6 s at 10,000), so past ORB_CLUSTER_AT / 16 descriptors (about 30 images) the vote searches
an inverted file instead (ClusteredHammingTable), rebuilt at 4x and 16x that size: approximate, but only
candidate selection is, since verification still matches against every stored descriptor of a candidate.
bench/verify_speed.py compares both at any size; bench/robustness.py measures the recall (--clipart N for
smaller indexes).
"""

from __future__ import annotations

import array
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import cv2
import faiss
import numpy as np

from ipx.fingerprint.image import ImageFingerprint
from ipx.fingerprint.pixels import (
    NO_AGREEMENT,
    STORED_WINDOWS,
    TINY_SIDE,
    Frame,
    PixelAgreement,
    PixelQuery,
    aligned_agreement,
    query_window_vectors,
    scale_between,
    stored_window_vectors,
)
from ipx.fingerprint.threads import kept_pool

PDQ_BITS = 256
PHASH_BITS = 64
ORB_BITS = 256
ORB_CLUSTER_AT = 250_000
ORB_EARLY_CLUSTERINGS = 2  # first cells at 15,625 codes, rebuilt at 62,500 and 250,000
ORB_LISTS = 12288
ORB_PROBES = 2
ORB_COARSE_LISTS = math.isqrt(ORB_LISTS)  # 110: as many coarse cells as centroids in each, both levels cost alike
ORB_COARSE_PROBES = 4
ORB_NEIGHBOURS = 16
ORB_CLUSTERED_MIN_VOTES = 4
OWNER_BITS = 32  # owners are image numbers in one worker's index: far below 4 billion
TINY_VECTOR_SIZE = TINY_SIDE * TINY_SIDE
WINDOWS_PER_PICTURE = len(STORED_WINDOWS)
WINDOW_CLUSTER_AT = 50_000
WINDOW_LISTS = 1024
WINDOW_PROBES = 8
WINDOW_TRAINING_PER_LIST = 20
CHECK_THREADS = min(4, os.cpu_count() or 1)
SLICED_SEARCH_MIN_ROWS = 32
Item = TypeVar("Item")
Result = TypeVar("Result")
# Registered fingerprints by work id, for an index that keeps none in memory (ImageIndex(keep_fingerprints=False)).
FetchFingerprints = Callable[[Sequence[str]], Mapping[str, ImageFingerprint]]


@dataclass(frozen=True)
class Match:
    """One indexed work that matches the query.

    For "pdq"/"phash", distance is the Hamming distance in bits and similarity is 1 - distance / bits.
    For "orb", distance is 1 - similarity and similarity is the share of the smaller keypoint set that
    are geometrically verified inliers. For "pixels", similarity is the correlation of the aligned grey
    thumbnails and distance is 1 - similarity.
    `region` is where the registered picture appears in the query (a Frame of the picture as uploaded) and
    `registered_region` which part of the registered picture the query shows, for "orb" matches, whose verified
    keypoints place the two to a few pixels. None for the hashes, which match the whole picture, and for "pixels":
    soft pictures correlate under shifts of a fifth of their width, so the placement that passed the pixel test
    does not say where the picture is.
    """

    work_id: str
    method: str
    distance: float
    similarity: float
    region: Frame | None = None
    registered_region: Frame | None = None


@contextmanager
def _single_threaded_faiss() -> Iterator[None]:
    """Run FAISS on the calling thread only, for the duration of one small search.

    OpenMP fan-out inside a search of 8 hashes (or a few hundred descriptors) costs far more than it
    saves once the host is busy: measured 0.4 ms single-threaded vs 70-85 ms with 2 threads at 100k
    hashes on a loaded 2-core machine. Requests already run concurrently. The OpenMP setting is per
    calling thread, so other threads' use of FAISS is unaffected.
    """
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _sliced_search(
    index: faiss.Index | faiss.IndexBinary, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """`index.search(queries, k)`, the query rows split into CHECK_THREADS slices searched on as many threads.

    The ORB vote's 1,000 descriptors scan about 8 million stored codes at 100k images (14-21 ms on 2 threads).
    FAISS's own OpenMP fan-out would use every core too, but stalls once the host is busy (see
    _single_threaded_faiss); plain threads, each searching single-threaded, do not. FAISS releases the GIL and
    answers each query row on its own, so the result is the same as one search.
    """

    def search(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with _single_threaded_faiss():
            return index.search(rows, k)

    if len(queries) < SLICED_SEARCH_MIN_ROWS:
        return search(queries)
    parts = _on_threads(search, [rows for rows in np.array_split(queries, CHECK_THREADS) if len(rows)])
    return np.concatenate([d for d, _ in parts]), np.concatenate([r for _, r in parts])


def _on_threads(function: Callable[[Item], Result], items: Sequence[Item]) -> list[Result]:
    """`function` of each item, in order, on the CHECK_THREADS threads this process keeps for the index (inline for
    a single item).

    For work that releases the GIL (FAISS searches, OpenCV calls), and that never waits for other such work: the
    pool is shared by every query of the process.
    """
    if len(items) < 2 or CHECK_THREADS < 2:
        return [function(item) for item in items]
    return list(kept_pool("ipx-index", CHECK_THREADS).map(function, items))


def _per_row(owners: int | np.ndarray, rows: int) -> np.ndarray:
    """One owner for all rows, or one per row, as an int64 array of `rows` owners."""
    return np.broadcast_to(np.asarray(owners, dtype=np.int64), (rows,))


def _rows_before_clustering(stored: int, cluster_at: int, owners: np.ndarray) -> int | None:
    """How many of a batch's rows the cells are trained on, or None when the batch does not reach cluster_at.

    Adding one picture at a time trains on the rows up to the picture that brings the table to cluster_at;
    a batch (catch-up loads pictures by the thousand) must stop at that same picture, or the cells would be
    trained on other rows and the index would answer differently depending on how it was loaded. `owners` is
    non-decreasing: a batch holds whole pictures in order.
    """
    needed = cluster_at - stored
    if needed > len(owners):
        return None
    if needed <= 0:
        return 0
    return int(np.searchsorted(owners, owners[needed - 1], side="right"))


def _no_pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (query rows, owners, distances) of a search that found nothing."""
    empty = np.zeros(0, np.int64)
    return empty, empty, empty


class HammingTable:
    """Binary codes with an owner per code; exact radius search through FAISS."""

    def __init__(self, bits: int) -> None:
        self._index = faiss.IndexBinaryFlat(bits)
        self._owners = array.array("q")

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, codes: np.ndarray, owners: int | np.ndarray) -> None:
        """Append codes (n, bits/8) uint8 belonging to `owners` (one owner for all, or one per code)."""
        if len(codes):
            self._index.add(np.ascontiguousarray(codes, dtype=np.uint8))
            self._owners.frombytes(_per_row(owners, len(codes)).tobytes())

    def stored(self) -> tuple[np.ndarray, np.ndarray]:
        """Every code (n, bits/8) and its owner, in the order they were added."""
        codes = faiss.vector_to_array(self._index.xb).reshape(len(self), self._index.code_size)
        return codes, np.frombuffer(self._owners, dtype=np.int64).copy()

    def within(self, queries: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (query row, owner, distance) with distance <= max_distance."""
        if not len(self) or not len(queries) or max_distance < 0:
            return _no_pairs()
        with _single_threaded_faiss():
            limits, distances, rows = self._index.range_search(
                np.ascontiguousarray(queries, dtype=np.uint8),
                max_distance + 1,  # FAISS radius is exclusive
            )
        query_rows = np.repeat(np.arange(len(queries)), np.diff(limits.astype(np.int64)))
        owners = np.frombuffer(self._owners, dtype=np.int64)[rows]
        return query_rows, owners, distances.astype(np.int64)


class HammingCells(NamedTuple):
    """One clustering of a ClusteredHammingTable: built when the table holds `at` codes, into `lists` cells whose
    centroids are found through `coarse_lists` coarse cells (0: a flat scan of the centroids)."""

    at: int
    lists: int
    coarse_lists: int


class CellTraining(NamedTuple):
    """The codes one clustering is trained on (the first ones stored, up to the picture that reached its size)."""

    cells: HammingCells
    codes: np.ndarray

    def centroids(self) -> np.ndarray:
        """The cells' centroids: seconds at 250,000 codes (Hamming k-means), and touching no table, so that the
        caller can train without holding the lock that searches of the table wait for."""
        return k_majority_centroids(self.codes, self.cells.lists)


class ClusteredHammingTable:
    """Binary codes with an owner each, scanned flat until `cluster_at` codes, then an inverted file: sub-linear,
    approximate.

    A flat scan of every stored ORB descriptor grows with the catalogue. At `cluster_at` codes the stored
    ones are grouped into `lists` cells around k-majority centroids (Hamming k-means, so frequent patterns
    get small cells) and from then on a search scans only the `probes` cells nearest to each query and
    keeps at most its `neighbours` closest codes within the radius. A close pair split by a cell border
    can be missed; voting tolerates that, since a copy shares dozens of descriptors with its original.
    The cap matters at scale: in the tuning set a query descriptor lies within 40 bits of 1 in 22,000
    stored ones (generic corners), i.e. thousands of pairs each at 100k images, whose split votes are
    worth almost nothing but cost more to collect than the search itself. The cells are built once the size is
    reached; later codes join their nearest cell. In the cells, a code's FAISS id is its
    owner: no second array of 8 bytes per code (400 MB at 100k images) to map search results back.

    With `early_clusterings` n, the table is clustered first at cluster_at / 4^n codes into lists / 4^n cells
    (about as many codes a cell as at cluster_at), and the cells are rebuilt from every code stored at each 4x
    growth until cluster_at. A flat scan below cluster_at was the slowest vote of all: 1,000 query descriptors
    against 150,000 stored (300 pictures) took 119 ms, more than the clustered vote at 100k pictures. Until the
    last clustering the table also keeps every code in order (at most cluster_at: 8 MB for ORB), so each rebuild
    trains on the same rows in every worker, and the last one builds exactly the cells a table clustered only
    at cluster_at would. `add` trains and installs the cells inline; ImageIndex appends, trains outside its lock and
    installs (`append`, `start_training`, `install`), so that searches go on with the previous cells meanwhile: 12 s
    for the 12,288 cells at 250,000 codes.

    The scan reads every code of the probed cells from memory, so its cost is the cells' size: at 100k images
    (50 million codes), 4,096 cells meant 24 million codes (780 MB) read per query, 45 ms on 2 cores; 8,192
    cells, half of that, 28 ms; 12,288 cells, 14-21 ms where 8,192 took 20-34 ms in the same session. So many
    centroids cost as much to scan flat for every query descriptor as the cells they save; with `coarse_lists`,
    the centroids are grouped into coarse cells themselves and only `coarse_probes` of those are searched: a few
    hundred comparisons per descriptor instead of thousands. Start-up places every stored code the same way:
    201 s -> 90 s for the ORB table at 100k images (4,096 flat -> 8,192 coarse); about 60 s with 12,288.
    """

    def __init__(
        self,
        bits: int,
        *,
        cluster_at: int,
        lists: int,
        probes: int,
        neighbours: int,
        coarse_lists: int = 0,
        coarse_probes: int = 1,
        early_clusterings: int = 0,
    ) -> None:
        self._bits = bits
        self._probes = probes
        self._neighbours = neighbours
        self._coarse_probes = coarse_probes
        self._pending = [  # the clusterings still ahead, first first
            HammingCells(max(cluster_at // 4**n, lists // 4**n), max(1, lists // 4**n), coarse_lists // 2**n)
            for n in range(early_clusterings, -1, -1)
        ]
        for cells in self._pending:
            if cells.coarse_lists > cells.lists:
                raise ValueError(f"{cells.coarse_lists} coarse cells cannot group {cells.lists} centroids.")
        self._reached: list[int] = []  # for the first pending clusterings whose size is reached: their training rows
        self._training = False
        self._all_codes: HammingTable | None = HammingTable(bits)  # every code, until the last clustering
        self._cells: faiss.IndexBinaryIVF | None = None
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def clustered(self) -> bool:
        return self._cells is not None

    @property
    def cells(self) -> int:
        """How many cells the codes are grouped in now (0 while scanned flat)."""
        return 0 if self._cells is None else int(self._cells.nlist)

    def add(self, codes: np.ndarray, owners: int | np.ndarray) -> None:
        """Append codes, and build the cells of every clustering whose size they reach."""
        self.append(codes, owners)
        while (training := self.start_training()) is not None:
            self.install(training, training.centroids())

    def append(self, codes: np.ndarray, owners: int | np.ndarray) -> None:
        """Append codes, noting each clustering whose size they reach; once clustered, their cells are found on
        threads when there are many (start-up)."""
        owners = _per_row(owners, len(codes))
        for cells in self._pending[len(self._reached) :]:
            split = _rows_before_clustering(len(self), cells.at, owners)
            if split is None:
                break
            self._reached.append(len(self) + split)
        if self._all_codes is not None:
            self._all_codes.add(codes, owners)
        if self._cells is not None:
            _add_to_cells(self._cells, codes, owners)
        self._count += len(codes)

    def start_training(self) -> CellTraining | None:
        """The next clustering to train, if its size is reached and none is being trained; `install` or `abandon`
        it."""
        if self._training or not self._reached:
            return None
        assert self._all_codes is not None  # kept until the last clustering is installed
        self._training = True
        return CellTraining(self._pending[0], self._all_codes.stored()[0][: self._reached[0]])

    def abandon(self) -> None:
        """The training started last failed: the next `start_training` starts it again."""
        self._training = False

    def install(self, training: CellTraining, centroids: np.ndarray) -> None:
        """Cells around `training`'s centroids, holding every code stored now (those appended while it trained too).

        Each code goes to its nearest centroid whenever it is placed, so the cells are the same however long the
        training took.
        """
        assert self._all_codes is not None and training.cells == self._pending[0]
        stored, owners = self._all_codes.stored()
        quantizer = _centroid_index(centroids, training.cells.coarse_lists, self._coarse_probes)
        clustered = faiss.IndexBinaryIVF(quantizer, self._bits, training.cells.lists)
        clustered.nprobe = self._probes
        _add_to_cells(clustered, stored, owners)
        self._cells = clustered
        self._pending.pop(0)
        self._reached.pop(0)
        self._training = False
        if not self._pending:
            self._all_codes = None  # the cells hold each code's owner as its id from now on

    def within(self, queries: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query row, owner, distance) with distance <= max_distance; once clustered, approximate and capped."""
        if self._cells is None:
            assert self._all_codes is not None  # dropped only once the last cells are built
            return self._all_codes.within(queries, max_distance)
        if not len(queries) or max_distance < 0:
            return _no_pairs()
        distances, owners = _sliced_search(self._cells, np.ascontiguousarray(queries, dtype=np.uint8), self._neighbours)
        close = (owners >= 0) & (distances <= max_distance)
        return np.nonzero(close)[0], owners[close], distances[close].astype(np.int64)


def _centroid_index(centroids: np.ndarray, coarse_lists: int, coarse_probes: int) -> faiss.IndexBinary:
    """What finds a code's cells: a flat scan of the centroids, or (coarse_lists > 0) an inverted file over them.

    Approximate when coarse, but the same index places codes when they are added and finds cells when they are
    searched, so a code and its own copy always meet.
    """
    bits = centroids.shape[1] * 8
    flat = faiss.IndexBinaryFlat(bits)
    if not coarse_lists:
        flat.add(centroids)
        return flat
    flat.add(k_majority_centroids(centroids, coarse_lists))
    coarse = faiss.IndexBinaryIVF(flat, bits, coarse_lists)
    coarse.nprobe = coarse_probes
    _add_to_cells(coarse, centroids, np.arange(len(centroids), dtype=np.int64))
    return coarse


def _add_to_cells(index: faiss.IndexBinaryIVF, codes: np.ndarray, ids: np.ndarray) -> None:
    """`index.add_with_ids(codes, ids)`, with the codes' cells found on CHECK_THREADS threads first (start-up adds
    millions).

    Not FAISS's own OpenMP: it stalls once the host is busy, as when several workers start together
    (measured beside two busy processes: 13 s per 500 pictures' descriptors on FAISS's threads, 2 s on one).
    """
    if not len(codes):
        return
    codes, ids = np.ascontiguousarray(codes, dtype=np.uint8), np.ascontiguousarray(ids, dtype=np.int64)
    cells = np.ascontiguousarray(_sliced_search(index.quantizer, codes, 1)[1][:, 0])
    with _single_threaded_faiss():
        index.add_core(len(codes), faiss.swig_ptr(codes), faiss.swig_ptr(ids), faiss.swig_ptr(cells))


class WindowTable:
    """Unit vectors (thumbnail windows) with an owner each: which owners hold the vectors closest to a query's.

    A flat inner-product scan until `cluster_at` vectors (10 per image), then an inverted file: FAISS k-means
    on a sample into `lists` cells, `probes` cells searched per query vector. Approximate, like the ORB vote,
    and for the same reason acceptable: it only picks the few candidates the pixel check then measures.
    With 100k synthetic pictures indexed beside the tuning set (bench/robustness.py --distractors), 8 and 4
    probes of 1024 found the same copies as 16, and 8 take 8 ms per query instead of 12.
    """

    def __init__(self, dimensions: int, *, cluster_at: int, lists: int, probes: int) -> None:
        self._dimensions = dimensions
        self._index: faiss.Index = faiss.IndexFlatIP(dimensions)
        self._owners = array.array("q")
        self._cluster_at = max(cluster_at, lists * WINDOW_TRAINING_PER_LIST)
        self._lists = lists
        self._probes = probes

    def __len__(self) -> int:
        return len(self._owners)

    @property
    def clustered(self) -> bool:
        return isinstance(self._index, faiss.IndexIVFFlat)

    def add(self, vectors: np.ndarray, owner: int) -> None:
        """One picture's vectors. Never in bulk: FAISS assigns a batch of 20 or more float vectors with BLAS,
        whose rounding differs, so a bulk-loaded index could place a vector in another cell than the
        workers that added it as it was registered."""
        with _single_threaded_faiss():
            self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
            self._owners.frombytes(_per_row(owner, len(vectors)).tobytes())
            if not self.clustered and len(self) >= self._cluster_at:
                self._cluster()

    def nearest_owners(self, queries: np.ndarray, count: int, per_owner: int) -> list[int]:
        """Up to `count` owners, ranked by their best inner product with any query vector."""
        if not len(self) or count < 1:
            return []
        depth = min(len(self), count * per_owner)
        similarities, rows = _sliced_search(self._index, np.ascontiguousarray(queries, dtype=np.float32), depth)
        found = rows >= 0
        owners = np.frombuffer(self._owners, dtype=np.int64)[rows[found]]  # indexing copies: no view escapes
        return closest_per_owner(owners, -similarities[found])[0][:count].tolist()

    def _cluster(self) -> None:
        stored = self._index.reconstruct_n(0, self._index.ntotal)
        sample = stored[
            np.random.default_rng(0).choice(len(stored), self._lists * WINDOW_TRAINING_PER_LIST, replace=False)
        ]
        clustered = faiss.IndexIVFFlat(
            faiss.IndexFlatIP(self._dimensions), self._dimensions, self._lists, faiss.METRIC_INNER_PRODUCT
        )
        clustered.cp.niter = 10
        clustered.train(sample)
        clustered.add(stored)
        clustered.nprobe = self._probes
        self._index = clustered


def k_majority_centroids(
    codes: np.ndarray, count: int, *, sample: int = 64, iterations: int = 5, seed: int = 0
) -> np.ndarray:
    """`count` binary centroids of `codes` (at most `sample` codes per centroid are used), deterministically.

    Hamming k-means: assign each code to its nearest centroid, then set each centroid bit to the majority
    of its members' bits. FAISS's own IVF training runs float k-means, far slower for the same cells.
    """
    rng = np.random.default_rng(seed)
    if len(codes) > sample * count:
        codes = codes[rng.choice(len(codes), sample * count, replace=False)]
    centroids = codes[rng.choice(len(codes), count, replace=False)].copy()
    bits = np.unpackbits(codes, axis=1)
    for _ in range(iterations):
        nearest = faiss.IndexBinaryFlat(codes.shape[1] * 8)
        nearest.add(centroids)
        labels = _sliced_search(nearest, codes, 1)[1][:, 0]
        sizes = np.bincount(labels, minlength=count)
        ones = np.stack([np.bincount(labels, weights=bit, minlength=count) for bit in bits.T], axis=1)  # exact counts
        cells = sizes > 0
        centroids[cells] = np.packbits(ones[cells] * 2 > sizes[cells, None], axis=1)
    return centroids


def closest_per_owner(owners: np.ndarray, distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each owner once with the smallest distance seen for it, closest first (equal distances: lower owner first).

    In NumPy, not a loop: the thumbnail-window search hands over about 7,000 (owner, distance) pairs per query,
    which a Python loop took 2-3 ms to reduce.
    """
    by_owner = np.lexsort((distances, owners))  # grouped by owner, each group's closest first
    owners, distances = owners[by_owner], distances[by_owner]
    first = np.flatnonzero(np.diff(owners, prepend=owners[:1] - 1))
    owners, distances = owners[first], distances[first]
    ranked = np.lexsort((owners, distances))
    return owners[ranked], distances[ranked]


class OrbAlignment(NamedTuple):
    """Verified keypoints and the affine transform (2x3, query -> stored working-image pixels) they agree on."""

    inliers: int
    transform: np.ndarray | None


NO_ALIGNMENT = OrbAlignment(0, None)


def orb_alignment(
    query: ImageFingerprint,
    stored: ImageFingerprint,
    *,
    candidates_per_point: int = 2,
    max_descriptor_distance: int = 50,
    reprojection_error: float = 0.015,
) -> OrbAlignment:
    """Keypoints consistent with one affine transform from query to stored picture, and that transform.

    Each query keypoint proposes its `candidates_per_point` nearest stored descriptors (within
    `max_descriptor_distance` bits) and RANSAC (OpenCV's, deterministically seeded) picks the geometric
    consensus. Lowe's ratio test would be cheaper but rejects every match in repetitive textures (wood
    grain, tiles, stripes), where the nearest and second-nearest descriptors are equally close; geometry
    can tell them apart. Inliers count distinct keypoints on both sides, so one point cannot vote twice;
    transforms that squash or mirror the picture beyond plausible edits are refused.
    reprojection_error is a fraction of the stored working image's longer side.
    """
    query_descriptors, stored_descriptors = query.all_descriptors, stored.descriptors
    if len(query_descriptors) < 3 or len(stored_descriptors) < 3:
        return NO_ALIGNMENT
    distances, stored_rows = nearest_descriptors(query_descriptors, stored_descriptors, candidates_per_point)
    close = (stored_rows >= 0) & (distances <= max_descriptor_distance)
    if np.count_nonzero(close) < 3:
        return NO_ALIGNMENT
    query_rows, stored_rows = np.nonzero(close)[0], stored_rows[close]
    threshold = reprojection_error * max(stored.work_width, stored.work_height)
    transform, inlier_mask = cv2.estimateAffine2D(
        query.all_keypoints[query_rows], stored.keypoints[stored_rows], method=cv2.RANSAC,
        ransacReprojThreshold=threshold, maxIters=4000, confidence=0.995,
    )  # fmt: skip
    if transform is None or not np.isfinite(transform).all() or not _plausible_edit(transform[:, :2]):
        return NO_ALIGNMENT
    inliers = inlier_mask[:, 0].astype(bool)
    return OrbAlignment(min(len(set(query_rows[inliers])), len(set(stored_rows[inliers]))), transform)


def outline_in(to_target: np.ndarray, size: tuple[int, int], target_size: tuple[int, int]) -> Frame | None:
    """Where a picture of `size` lies in another of `target_size` ((width, height) in pixels), as a Frame of the
    target.

    `to_target` (2x3) maps the picture's pixels to the target's. The picture's outline is mapped into the target
    and its bounding box clipped to it: for a picture pasted into a page, the part of the page it fills; for a
    crop, all of it. None if the outline misses the target.
    """
    width, height = size
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    outline = corners @ to_target[:, :2].T + to_target[:, 2]
    target = np.array(target_size, dtype=np.float64)
    low, high = np.clip(outline.min(axis=0) / target, 0, 1), np.clip(outline.max(axis=0) / target, 0, 1)
    if (high <= low).any():
        return None
    return Frame(float(low[0]), float(low[1]), float(high[0]), float(high[1]))


def aligned_regions(
    query: ImageFingerprint, stored: ImageFingerprint, to_stored: np.ndarray
) -> tuple[Frame | None, Frame | None]:
    """Where the registered picture appears in the query, and the query's picture in the registered one, under the
    verified transform `to_stored` (working-image pixels), each placed in its picture as uploaded."""
    query_size, stored_size = (query.work_width, query.work_height), (stored.work_width, stored.work_height)
    in_query = outline_in(cv2.invertAffineTransform(to_stored), stored_size, query_size)
    in_stored = outline_in(to_stored, query_size, stored_size)
    return in_query and in_query.within(query.frame), in_stored and in_stored.within(stored.frame)


def nearest_descriptors(queries: np.ndarray, stored: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, rows), each (len(queries), k): every query descriptor's k nearest stored ones, closest first and
    equal distances by row, as OpenCV's brute-force knnMatch lists them; rows -1 where fewer than k are stored.

    FAISS's popcount scan, single-threaded: 0.7 ms for one query's 1,000 descriptors against 500, where knnMatch took
    1.6 ms building a Python object per match, for each of up to orb_max_candidates candidates of a query. The same
    matches, in the same order, as knnMatch on 3,286 pairs of the tuning set (copies against their originals and
    others), so RANSAC sees the same input.
    """
    table = faiss.IndexBinaryFlat(ORB_BITS)
    table.add(np.ascontiguousarray(stored, dtype=np.uint8))
    with _single_threaded_faiss():
        distances, rows = table.search(np.ascontiguousarray(queries, dtype=np.uint8), k)
    order = np.lexsort((rows, distances), axis=-1)
    return np.take_along_axis(distances, order, -1), np.take_along_axis(rows, order, -1)


def _plausible_edit(linear: np.ndarray) -> bool:
    """Rotation, mirror, moderate stretch and scaling are edits; a near-degenerate map is a coincidence."""
    singular_values = np.linalg.svd(linear, compute_uv=False)
    smallest, largest = float(singular_values.min()), float(singular_values.max())
    return smallest > 0.05 and largest < 20.0 and largest / smallest < 2.5


class ImageIndex:
    """Thread-safe, incrementally built index answering "which registered works does this image copy?".

    Defaults were measured with bench/robustness.py on the tuning set (52 photos, 800 clip-art
    distractors, 16 edit families); each keeps zero false matches with a margin:
    pdq_max_distance 48 (closest distinct pair 78 bits), orb_min_inliers 30 (the closest distinct pair
    reached 22 to 24 inliers from run to run: a thin margin, so raise it before lowering it), min_quality 20
    (PDQ quality below which PDQ/pHash say nothing; ORB still works. Flat pictures hash from faint gradients:
    lowering it from 35 found a brightened wood photo and a stretched texture and cost 2 to 6 bits of the PDQ
    margin; below 20 nothing more was found). pHash is off by default (phash_max_distance=None): distinct
    pairs came within 8 of 64 bits and it added no recall.
    The clustered vote (orb_lists 4096, orb_probes 2, orb_neighbours 16) finds only a third to a half of
    the close descriptor pairs the flat scan finds, so it asks for orb_clustered_min_votes 4 instead of 8
    votes: with that, recall on the tuning set matched the flat scan but for one copy of 832. orb_lists 8192
    (cells found through orb_coarse_lists 90 coarse cells, orb_coarse_probes 4) found the same 809 copies as
    4096, alone and among 100k synthetic pictures, with no false match; so does 12,288 (110 coarse cells), the
    default, with the closest distinct pair at 24 inliers among 100k (22 with 8,192). 16,384 cells lost a copy on
    the tuning set alone, with 2 probes as with 3 (Spring.png rotated and cropped: its true descriptors split over
    more cell borders, 9 -> 6 votes, ranked 9th of the orb_max_candidates 8); 1 probe of 4,096 lost 2 copies at
    100k. Smaller indexes are clustered too (orb_early_clusterings 2: 768 cells from 15,625 descriptors, 3,072 from
    62,500): with 53 originals (22,723 descriptors, 768 cells) and with 302 (104,737, 3,072 cells) the same 810
    copies were found as by the flat scan, with no false match; the closest distinct pair reached 23 and 22 inliers.
    The pixel stage (ORB alignments with orb_pixel_min_inliers 6 to 29 inliers, and, when nothing else
    matched, the thumbnail search over at most pixel_candidates 16 works: the ORB vote's candidates whose
    keypoints agreed on no transform, then those with the most similar windows) accepts a pair when the
    aligned thumbnails correlate >= 0.93 in layout and >= 0.6 in band-passed detail and the query covers
    >= 30% of the stored picture (a crop of an eighth on every side shows 56%; dark pictures lose more to
    trimming: 30-34% seen). A candidate that is not a copy costs about 2.3 ms of CPU (the 2,713 distinct pairs
    the pixel searches of 188 tuning-set queries check; 2.9 ms before the ECC probe's gate rose to 0.75 and the
    query's templates were shared, see pixels.PixelQuery), so a picture that matches nothing pays about 36 ms
    of CPU here, on CHECK_THREADS threads that the GIL lets overlap about 1.3-fold: an unregistered 12-MP
    photo's query among 20k synthetic images took 29-34 ms in all, 43-46 ms before (the vote's candidates plus 8
    windows found one copy fewer; plus 16 windows, up to 24 in all, one more).
    Closest distinct pair on the tuning set: correlation 0.843, detail 0.614 (a clip-art against a soft
    wallpaper), 0.91 of the thresholds. Leaving out the 10% most disagreeing pixels
    (to see past captions and logos) found 5 more copies but brought a distinct pair to 0.96 of the
    thresholds, so it is not done.

    Only candidates' keypoints and thumbnails are ever read, at most orb_max_candidates + pixel_candidates
    pictures per query, yet keeping them for every picture is most of the index's memory (32 of 52 KB per
    image). With keep_fingerprints=False the index keeps only its search structures, and each query reads
    its candidates' fingerprints through `fetch` (the app reads them from the database, which holds them
    anyway). Then it holds one picture per work id.
    """

    def __init__(
        self,
        *,
        pdq_max_distance: int = 48,
        min_quality: int = 20,
        phash_max_distance: int | None = None,
        orb_vote_distance: int = 40,
        orb_min_votes: int = 8,
        orb_clustered_min_votes: int = ORB_CLUSTERED_MIN_VOTES,
        orb_max_candidates: int = 8,
        orb_min_inliers: int = 30,
        orb_cluster_at: int = ORB_CLUSTER_AT,
        orb_early_clusterings: int = ORB_EARLY_CLUSTERINGS,
        orb_lists: int = ORB_LISTS,
        orb_probes: int = ORB_PROBES,
        orb_coarse_lists: int = ORB_COARSE_LISTS,
        orb_coarse_probes: int = ORB_COARSE_PROBES,
        orb_neighbours: int = ORB_NEIGHBOURS,
        orb_pixel_min_inliers: int = 6,
        pixel_candidates: int = 16,
        pixel_min_correlation: float = 0.93,
        pixel_min_detail: float = 0.6,
        pixel_min_overlap: float = 0.3,
        window_cluster_at: int = WINDOW_CLUSTER_AT,
        window_lists: int = WINDOW_LISTS,
        window_probes: int = WINDOW_PROBES,
        keep_fingerprints: bool = True,
    ) -> None:
        self.pdq_max_distance = pdq_max_distance
        self.min_quality = min_quality
        self.phash_max_distance = phash_max_distance
        self.orb_vote_distance = orb_vote_distance
        self.orb_min_votes = orb_min_votes
        self.orb_clustered_min_votes = orb_clustered_min_votes
        self.orb_max_candidates = orb_max_candidates
        self.orb_min_inliers = orb_min_inliers
        self.orb_cluster_at = orb_cluster_at
        self.orb_early_clusterings = orb_early_clusterings
        self.orb_lists = orb_lists
        self.orb_probes = orb_probes
        self.orb_coarse_lists = orb_coarse_lists
        self.orb_coarse_probes = orb_coarse_probes
        self.orb_neighbours = orb_neighbours
        self.orb_pixel_min_inliers = orb_pixel_min_inliers
        self.pixel_candidates = pixel_candidates
        self.pixel_min_correlation = pixel_min_correlation
        self.pixel_min_detail = pixel_min_detail
        self.pixel_min_overlap = pixel_min_overlap
        self._lock = threading.Lock()
        self._work_ids: list[str] = []
        self._fingerprints: list[ImageFingerprint] | None = [] if keep_fingerprints else None
        self._pdq = HammingTable(PDQ_BITS)
        self._phash = HammingTable(PHASH_BITS)
        self._orb = ClusteredHammingTable(
            ORB_BITS, cluster_at=orb_cluster_at, lists=orb_lists, probes=orb_probes, neighbours=orb_neighbours,
            coarse_lists=orb_coarse_lists, coarse_probes=orb_coarse_probes, early_clusterings=orb_early_clusterings,
        )  # fmt: skip
        self._windows = WindowTable(
            TINY_VECTOR_SIZE, cluster_at=window_cluster_at, lists=window_lists, probes=window_probes
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._work_ids)

    def add(self, work_id: str, fp: ImageFingerprint) -> None:
        """Index one image of a work; a work may own several images."""
        self.add_many([(work_id, fp)])

    def add_many(self, images: Sequence[tuple[str, ImageFingerprint]]) -> None:
        """Index images in order, as one `add` each would, but with one table append per kind.

        Start-up loads every registered image: appending a thousand at once lets the ORB table assign their
        descriptors to cells on several threads, instead of one picture's 500 at a time on one.
        """
        if not images:
            return
        windows = [None if fp.grey_thumbnail is None else stored_window_vectors(fp.grey_thumbnail) for _, fp in images]
        with self._lock:
            owners = np.arange(len(self._work_ids), len(self._work_ids) + len(images), dtype=np.int64)
            self._work_ids.extend(work_id for work_id, _ in images)
            if self._fingerprints is not None:
                self._fingerprints.extend(fp.without_mirror() for _, fp in images)
            hashed = [i for i, (_, fp) in enumerate(images) if fp.pdq_quality >= self.min_quality]
            if hashed:
                self._pdq.add(np.stack([images[i][1].pdq_variants[0] for i in hashed]), owners[hashed])
                self._phash.add(np.stack([images[i][1].phash_variants[0] for i in hashed]), owners[hashed])
            descriptors = [fp.descriptors for _, fp in images]
            self._orb.append(np.concatenate(descriptors), np.repeat(owners, [len(d) for d in descriptors]))
            for owner, vectors in zip(owners.tolist(), windows, strict=True):
                if vectors is not None:
                    self._windows.add(vectors, owner)
            training = self._orb.start_training()
        self._train_orb_cells(training)

    def _train_orb_cells(self, training: CellTraining | None) -> None:
        """Train the ORB table's next cells outside the lock, then install them under it: queries meanwhile search
        the previous cells (or the flat table) instead of waiting seconds. Whoever installs trains the next."""
        while training is not None:
            try:
                centroids = training.centroids()
            except BaseException:
                with self._lock:
                    self._orb.abandon()
                raise
            with self._lock:
                self._orb.install(training, centroids)
                training = self._orb.start_training()

    def query(self, fp: ImageFingerprint, *, limit: int = 20, fetch: FetchFingerprints | None = None) -> list[Match]:
        """Matching works, best first (one Match per work, its most similar method).

        The pixel search over thumbnails runs only when hashes and keypoints found nothing: it is the
        costliest stage and exists for the pictures they cannot describe. `fetch` is required when the
        index keeps no fingerprints.
        """
        unplaced = (None, None)
        with self._lock:
            hits: list[tuple[int, str, float, float, tuple[Frame | None, Frame | None]]] = [
                (*hit, unplaced) for hit in self._hash_matches(fp)
            ]
        stored, alignments = self._verified_orb_candidates(fp, fetch)
        for owner, alignment in alignments:
            if alignment.inliers >= self.orb_min_inliers and alignment.transform is not None:
                registered = stored[owner]
                similarity = min(1.0, alignment.inliers / max(1, min(len(fp.descriptors), len(registered.descriptors))))
                regions = aligned_regions(fp, registered, alignment.transform)
                hits.append((owner, "orb", 1.0 - similarity, similarity, regions))
        weak = self._pixels_under_weak_alignments(fp, stored, alignments)
        agreeing = [(owner, a) for owner, a in weak if self.pixels_agree(a)]
        if not hits and not agreeing:
            searched = self._pixel_search(fp, stored, alignments, fetch)
            agreeing = [(owner, a) for owner, a in searched if self.pixels_agree(a)]
        hits.extend((owner, "pixels", 1.0 - a.correlation, a.correlation, unplaced) for owner, a in agreeing)
        best: dict[str, Match] = {}
        for owner, method, distance, similarity, regions in hits:
            match = Match(self._work_ids[owner], method, float(distance), float(similarity), *regions)
            current = best.get(match.work_id)
            if current is None or _rank(match) < _rank(current):
                best[match.work_id] = match
        return sorted(best.values(), key=_rank)[:limit]

    def orb_scores(self, fp: ImageFingerprint) -> list[tuple[str, int]]:
        """(work_id, verified inliers) for every ORB candidate, matched or not: for threshold tuning."""
        _, alignments = self._verified_orb_candidates(fp, None)
        return [(self._work_ids[owner], alignment.inliers) for owner, alignment in alignments]

    def pixel_scores(self, fp: ImageFingerprint) -> list[tuple[str, PixelAgreement]]:
        """(work_id, agreement) for every pixel-search candidate and ORB alignment: for threshold tuning."""
        stored, alignments = self._verified_orb_candidates(fp, None)
        checks = self._pixel_search(fp, stored, alignments, None)
        checks += self._pixels_under_weak_alignments(fp, stored, alignments)
        return [(self._work_ids[owner], agreement) for owner, agreement in checks]

    def _stored_fingerprints(
        self, owners: Sequence[int], fetch: FetchFingerprints | None
    ) -> dict[int, ImageFingerprint]:
        """The registered fingerprints of these owners: kept in memory, or fetched by work id for this query.

        A fetched work that is no longer there (its fingerprint row deleted) is left out.
        """
        if self._fingerprints is not None:
            return {owner: self._fingerprints[owner] for owner in owners}
        if fetch is None:
            raise ValueError("This index keeps no fingerprints: query it with `fetch`.")
        work_ids = {owner: self._work_ids[owner] for owner in owners}
        found = fetch(list(work_ids.values())) if owners else {}
        return {owner: found[work_id] for owner, work_id in work_ids.items() if work_id in found}

    def _pixels_under_weak_alignments(
        self, fp: ImageFingerprint, stored: Mapping[int, ImageFingerprint], alignments: list[tuple[int, OrbAlignment]]
    ) -> list[tuple[int, PixelAgreement]]:
        """The pixel check for ORB candidates with too few inliers to count alone, but enough for a transform."""
        return [
            (owner, pixels_under_orb_alignment(fp, stored[owner], alignment))
            for owner, alignment in alignments
            if self.orb_pixel_min_inliers <= alignment.inliers < self.orb_min_inliers
        ]

    def pixels_agree(self, agreement: PixelAgreement) -> bool:
        """Whether a pixel agreement passes this index's thresholds (the tests and the benchmark judge alike)."""
        return agreement.agrees(
            min_correlation=self.pixel_min_correlation,
            min_detail=self.pixel_min_detail,
            min_overlap=self.pixel_min_overlap,
        )

    def _verified_orb_candidates(
        self, fp: ImageFingerprint, fetch: FetchFingerprints | None
    ) -> tuple[dict[int, ImageFingerprint], list[tuple[int, OrbAlignment]]]:
        """The ORB vote's candidates' fingerprints, and each one's verified alignment with the query."""
        with self._lock:
            candidates = self._orb_candidates(fp)
        # The lists only ever grow and fingerprints are immutable, so reading and verification run outside the lock.
        stored = self._stored_fingerprints(candidates, fetch)
        return stored, _checked(lambda owner: orb_alignment(fp, stored[owner]), list(stored))

    def _pixel_search(
        self,
        fp: ImageFingerprint,
        voters: Mapping[int, ImageFingerprint],
        alignments: list[tuple[int, OrbAlignment]],
        fetch: FetchFingerprints | None,
    ) -> list[tuple[int, PixelAgreement]]:
        """Thumbnail alignment against at most pixel_candidates works: first the ORB vote's candidates whose
        keypoints agreed on no transform to check pixels under, then those whose windows look most like the
        query's (coarse layout).

        Keypoints of smooth pictures and textures vote for the right work but rarely agree geometrically (few,
        soft or repeated corners); the coarse windows miss a picture under a large caption or rotated.
        `voters` are the vote's candidates' fingerprints, already read for their keypoints.
        """
        query = fp.grey_thumbnail
        if query is None:
            return []
        vectors = query_window_vectors(query)
        with self._lock:
            candidates = self._windows.nearest_owners(vectors, self.pixel_candidates, WINDOWS_PER_PICTURE)
        voted = [owner for owner, alignment in alignments if alignment.inliers < self.orb_pixel_min_inliers]
        owners = list(dict.fromkeys(voted + candidates))[: self.pixel_candidates]
        stored = {**voters, **self._stored_fingerprints([owner for owner in owners if owner not in voters], fetch)}
        prepared = PixelQuery(query)

        def agreement(owner: int) -> PixelAgreement:
            thumbnail = stored[owner].grey_thumbnail
            return NO_AGREEMENT if thumbnail is None else prepared.agreement_with(thumbnail)

        return _checked(agreement, [owner for owner in owners if owner in stored])

    def _hash_matches(self, fp: ImageFingerprint) -> list[tuple[int, str, float, float]]:
        hits: list[tuple[int, str, float, float]] = []
        if fp.pdq_quality < self.min_quality:
            return hits
        searches = [("pdq", self._pdq, fp.pdq_variants, self.pdq_max_distance, PDQ_BITS)]
        if self.phash_max_distance is not None:
            searches.append(("phash", self._phash, fp.phash_variants, self.phash_max_distance, PHASH_BITS))
        for method, table, variants, max_distance, bits in searches:
            _, owners, distances = table.within(variants, max_distance)
            owners, distances = closest_per_owner(owners, distances)
            for owner, distance in zip(owners.tolist(), distances.tolist(), strict=True):
                hits.append((owner, method, distance, 1.0 - distance / bits))
        return hits

    def _orb_candidates(self, fp: ImageFingerprint) -> list[int]:
        """Owners sharing many close descriptors with the query, best first.

        Each query descriptor (of the picture or its mirror image) votes once for every owner holding a
        descriptor within orb_vote_distance, its vote split evenly among those owners: a generic corner
        that resembles half the index says little, a distinctive one says a lot. Without the split,
        clip-art full of generic corners outvotes a photo pasted small into a page.
        """
        query_rows, owners, _ = self._orb.within(fp.all_descriptors, self.orb_vote_distance)
        if not len(owners):
            return []
        # One vote per (query descriptor, owner): the pairs as 64-bit keys, row above owner, sorted and deduplicated
        # in one dimension: numpy.unique over the rows of a 2-D array took 10 ms instead of 2 for the 16,000 pairs of a
        # vote whose every descriptor finds its 16 neighbours.
        pairs = np.unique((query_rows.astype(np.int64) << OWNER_BITS) | owners.astype(np.int64))
        rows, owners = pairs >> OWNER_BITS, pairs & ((1 << OWNER_BITS) - 1)
        weights = 1.0 / np.bincount(rows)[rows]
        candidates, position = np.unique(owners, return_inverse=True)
        scores = np.bincount(position, weights=weights)
        votes = np.bincount(position)
        min_votes = self.orb_clustered_min_votes if self._orb.clustered else self.orb_min_votes
        eligible = np.flatnonzero(votes >= min_votes)
        ranked = eligible[np.lexsort((candidates[eligible], -scores[eligible]))]
        return candidates[ranked[: self.orb_max_candidates]].tolist()


def _checked(check: Callable[[int], Result], owners: Sequence[int]) -> list[tuple[int, Result]]:
    """(owner, `check` of it) for each candidate, in order, on up to CHECK_THREADS threads.

    The checks (descriptor matching, template search, ECC) are OpenCV calls that release the GIL, so a query
    with many candidates uses every core: 16 pixel checks took 92-94 ms instead of 112-121 on 2 cores.
    """
    return list(zip(owners, _on_threads(check, owners), strict=True))


def pixels_under_orb_alignment(
    query: ImageFingerprint, stored: ImageFingerprint, alignment: OrbAlignment
) -> PixelAgreement:
    """Pixel agreement with the keypoints' transform carried over to thumbnail coordinates.

    Few inliers do not prove a copy, but the transform they agree on can be checked against every pixel:
    a coincidental alignment of distinct pictures correlates poorly, a true one almost perfectly.
    """
    query_thumbnail, stored_thumbnail = query.grey_thumbnail, stored.grey_thumbnail
    if alignment.transform is None or query_thumbnail is None or stored_thumbnail is None:
        return NO_AGREEMENT
    to_query_work = scale_between(query_thumbnail.shape, (query.work_height, query.work_width))
    to_stored_thumbnail = scale_between((stored.work_height, stored.work_width), stored_thumbnail.shape)
    transform = to_stored_thumbnail @ np.vstack([alignment.transform, [0, 0, 1]]) @ to_query_work
    return aligned_agreement(query_thumbnail, stored_thumbnail, transform[:2])


def _rank(match: Match) -> tuple[float, str, str]:
    return (-match.similarity, match.work_id, match.method)

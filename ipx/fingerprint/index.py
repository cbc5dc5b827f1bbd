"""Similarity index over image fingerprints: exact Hamming search, then geometric verification.

Stage 1 (global hashes): every PDQ dihedral variant of the query (and of pHash, when enabled) is
range-searched in a FAISS binary flat index, which is exact (same answers as brute force) and scans a
million 256-bit hashes in about 7 ms (bench/fingerprint_speed.py).

Stage 2 (local features): each query ORB descriptor votes for the works holding a close descriptor;
the works with the most votes are verified by fitting an affine transform with RANSAC between matched
keypoints. Only geometrically consistent inliers count, which is what keeps crops, pasted-in copies and
rotations findable without matching pictures that merely share textures.

The descriptor vote is an exact flat scan too, which grows with 500 descriptors per image: measured
0.13 s per query at 1,000 images and 2.6 s at 10,000 (bench/fingerprint_speed.py), so a catalogue
beyond a few thousand images needs an inverted-file or multi-index-hashing index for that stage.
"""

from __future__ import annotations

import array
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import faiss
import numpy as np

from ipx.fingerprint.image import ImageFingerprint

PDQ_BITS = 256
PHASH_BITS = 64
ORB_BITS = 256


@dataclass(frozen=True)
class Match:
    """One indexed work that matches the query.

    For "pdq"/"phash", distance is the Hamming distance in bits and similarity is 1 - distance / bits.
    For "orb", distance is 1 - similarity and similarity is the share of the smaller keypoint set that
    are geometrically verified inliers.
    """

    work_id: str
    method: str
    distance: float
    similarity: float


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


class HammingTable:
    """Binary codes with an owner per code; exact radius search through FAISS."""

    def __init__(self, bits: int) -> None:
        self._index = faiss.IndexBinaryFlat(bits)
        self._owners = array.array("q")

    def __len__(self) -> int:
        return len(self._owners)

    def add(self, codes: np.ndarray, owners: int | np.ndarray) -> None:
        """Append codes (n, bits/8) uint8 belonging to `owners` (one owner for all, or one per code)."""
        if len(codes):
            self._index.add(np.ascontiguousarray(codes, dtype=np.uint8))
            self._owners.frombytes(
                np.broadcast_to(np.asarray(owners, dtype=np.int64), (len(codes),)).tobytes()
            )

    def within(self, queries: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (query row, owner, distance) with distance <= max_distance."""
        if not len(self._owners) or not len(queries) or max_distance < 0:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        with _single_threaded_faiss():
            limits, distances, rows = self._index.range_search(
                np.ascontiguousarray(queries, dtype=np.uint8),
                max_distance + 1,  # FAISS radius is exclusive
            )
        query_rows = np.repeat(np.arange(len(queries)), np.diff(limits.astype(np.int64)))
        owners = np.frombuffer(self._owners, dtype=np.int64)[rows]
        return query_rows, owners, distances.astype(np.int64)


def closest_per_owner(owners: np.ndarray, distances: np.ndarray) -> dict[int, int]:
    """Smallest distance seen for each owner."""
    best: dict[int, int] = {}
    for owner, distance in zip(owners.tolist(), distances.tolist(), strict=True):
        if distance < best.get(owner, distance + 1):
            best[owner] = distance
    return best


def orb_inliers(
    query: ImageFingerprint,
    stored: ImageFingerprint,
    *,
    ratio: float = 0.8,
    reprojection_error: float = 0.015,
) -> int:
    """Keypoint matches consistent with one affine transform from query to stored picture (0 if none).

    Lowe's ratio test removes ambiguous matches; RANSAC (OpenCV's, deterministically seeded) keeps the
    geometric consensus; transforms that squash or mirror the picture beyond plausible edits are refused.
    reprojection_error is a fraction of the stored working image's longer side.
    """
    query_descriptors, stored_descriptors = query.all_descriptors, stored.descriptors
    if len(query_descriptors) < 3 or len(stored_descriptors) < 2:
        return 0
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(query_descriptors, stored_descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    if len(good) < 3:
        return 0
    source = query.all_keypoints[[m.queryIdx for m in good]]
    target = stored.keypoints[[m.trainIdx for m in good]]
    threshold = reprojection_error * max(stored.work_width, stored.work_height)
    transform, inlier_mask = cv2.estimateAffine2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=2000, confidence=0.995
    )
    if transform is None or not np.isfinite(transform).all() or not _plausible_edit(transform[:, :2]):
        return 0
    return int(inlier_mask.sum())


def _plausible_edit(linear: np.ndarray) -> bool:
    """Rotation, mirror, moderate stretch and scaling are edits; a near-degenerate map is a coincidence."""
    singular_values = np.linalg.svd(linear, compute_uv=False)
    smallest, largest = float(singular_values.min()), float(singular_values.max())
    return smallest > 0.05 and largest < 20.0 and largest / smallest < 2.5


class ImageIndex:
    """Thread-safe, incrementally built index answering "which registered works does this image copy?".

    Defaults were measured with bench/robustness.py on the tuning set (52 photos, 800 clip-art
    distractors, 16 edit families); each keeps zero false matches with a margin:
    pdq_max_distance 48 (closest distinct pair 80 bits), orb_min_inliers 30 (a distinct pair reached
    21), min_quality 35 (PDQ quality below which PDQ/pHash say nothing; ORB still works). pHash is off
    by default (phash_max_distance=None): distinct pairs came within 8 of 64 bits and it added no recall.
    """

    def __init__(
        self,
        *,
        pdq_max_distance: int = 48,
        min_quality: int = 35,
        phash_max_distance: int | None = None,
        orb_vote_distance: int = 40,
        orb_min_votes: int = 8,
        orb_max_candidates: int = 8,
        orb_min_inliers: int = 30,
    ) -> None:
        self.pdq_max_distance = pdq_max_distance
        self.min_quality = min_quality
        self.phash_max_distance = phash_max_distance
        self.orb_vote_distance = orb_vote_distance
        self.orb_min_votes = orb_min_votes
        self.orb_max_candidates = orb_max_candidates
        self.orb_min_inliers = orb_min_inliers
        self._lock = threading.Lock()
        self._work_ids: list[str] = []
        self._fingerprints: list[ImageFingerprint] = []
        self._pdq = HammingTable(PDQ_BITS)
        self._phash = HammingTable(PHASH_BITS)
        self._orb = HammingTable(ORB_BITS)

    def __len__(self) -> int:
        with self._lock:
            return len(self._fingerprints)

    def add(self, work_id: str, fp: ImageFingerprint) -> None:
        """Index one image of a work; a work may own several images."""
        with self._lock:
            owner = len(self._fingerprints)
            self._work_ids.append(work_id)
            self._fingerprints.append(fp)
            if fp.pdq_quality >= self.min_quality:
                self._pdq.add(fp.pdq_variants[:1], owner)
                self._phash.add(fp.phash_variants[:1], owner)
            self._orb.add(fp.descriptors, owner)

    def query(self, fp: ImageFingerprint, *, limit: int = 20) -> list[Match]:
        """Matching works, best first (one Match per work, its most similar method)."""
        with self._lock:
            hits = self._hash_matches(fp)
        for owner, inliers in self._verified_orb_candidates(fp):
            if inliers >= self.orb_min_inliers:
                stored_count = len(self._fingerprints[owner].descriptors)
                similarity = min(1.0, inliers / max(1, min(len(fp.descriptors), stored_count)))
                hits.append((owner, "orb", 1.0 - similarity, similarity))
        best: dict[str, Match] = {}
        for owner, method, distance, similarity in hits:
            match = Match(self._work_ids[owner], method, float(distance), float(similarity))
            current = best.get(match.work_id)
            if current is None or _rank(match) < _rank(current):
                best[match.work_id] = match
        return sorted(best.values(), key=_rank)[:limit]

    def orb_scores(self, fp: ImageFingerprint) -> list[tuple[str, int]]:
        """(work_id, verified inliers) for every ORB candidate, matched or not: for threshold tuning."""
        return [(self._work_ids[owner], inliers) for owner, inliers in self._verified_orb_candidates(fp)]

    def _verified_orb_candidates(self, fp: ImageFingerprint) -> list[tuple[int, int]]:
        with self._lock:
            candidates = self._orb_candidates(fp)
        # The lists only ever grow and fingerprints are immutable, so verification runs outside the lock.
        return [(owner, orb_inliers(fp, self._fingerprints[owner])) for owner in candidates]

    def _hash_matches(self, fp: ImageFingerprint) -> list[tuple[int, str, float, float]]:
        hits: list[tuple[int, str, float, float]] = []
        if fp.pdq_quality < self.min_quality:
            return hits
        searches = [("pdq", self._pdq, fp.pdq_variants, self.pdq_max_distance, PDQ_BITS)]
        if self.phash_max_distance is not None:
            searches.append(("phash", self._phash, fp.phash_variants, self.phash_max_distance, PHASH_BITS))
        for method, table, variants, max_distance, bits in searches:
            _, owners, distances = table.within(variants, max_distance)
            for owner, distance in closest_per_owner(owners, distances).items():
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
        pairs = np.unique(np.stack([query_rows, owners], axis=1), axis=0)
        rows, owners = pairs[:, 0], pairs[:, 1]
        weights = 1.0 / np.bincount(rows)[rows]
        candidates, position = np.unique(owners, return_inverse=True)
        scores = np.bincount(position, weights=weights)
        votes = np.bincount(position)
        eligible = np.flatnonzero(votes >= self.orb_min_votes)
        ranked = eligible[np.lexsort((candidates[eligible], -scores[eligible]))]
        return candidates[ranked[: self.orb_max_candidates]].tolist()


def _rank(match: Match) -> tuple[float, str, str]:
    return (-match.similarity, match.work_id, match.method)

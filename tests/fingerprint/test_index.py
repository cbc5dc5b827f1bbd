"""ipx.fingerprint.index: exactness against brute force, edit robustness, no false matches, threads."""

from __future__ import annotations

import threading

import cv2
import faiss
import numpy as np
import pytest
from _edits import EDITS, EDITS_BEYOND_THE_ISSUE, PASTED_AT, edited_copy
from PIL import Image, ImageDraw, ImageOps

from ipx.fingerprint import index as index_module
from ipx.fingerprint.image import ImageFingerprint, fingerprint_image
from ipx.fingerprint.index import (
    PDQ_BITS,
    PHASH_BITS,
    ClusteredHammingTable,
    HammingTable,
    ImageIndex,
    Match,
    WindowTable,
    closest_per_owner,
    k_majority_centroids,
    outline_in,
)
from tests.fingerprint.pictures import encoded, skimage_picture

PICTURES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "hubble_deep_field", "retina", "coins")


@pytest.fixture(scope="module")
def pictures() -> dict[str, Image.Image]:
    return {name: skimage_picture(name) for name in PICTURES}


# --- exactness against brute-force NumPy Hamming search -------------------------------------------------


def popcount_distances(queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
    return np.unpackbits(queries[:, None, :] ^ codes[None, :, :], axis=2).sum(axis=2)


def near_duplicates(rng: np.random.Generator, base: np.ndarray, count: int, max_flips: int) -> np.ndarray:
    """Copies of base with 0..max_flips random bits flipped: plenty of hits at every radius."""
    bits = np.unpackbits(base)
    copies = []
    for _ in range(count):
        flipped = bits.copy()
        flipped[rng.choice(bits.size, rng.integers(0, max_flips + 1), replace=False)] ^= 1
        copies.append(np.packbits(flipped))
    return np.array(copies, dtype=np.uint8)


@pytest.mark.parametrize("bits", [64, 256])
def test_hamming_table_equals_brute_force(bits: int) -> None:
    rng = np.random.default_rng(bits)
    base = rng.integers(0, 256, bits // 8, dtype=np.uint8)
    codes = np.concatenate(
        [near_duplicates(rng, base, 300, bits // 3), rng.integers(0, 256, (700, bits // 8), dtype=np.uint8)]
    )
    owners = rng.integers(0, 50, len(codes))
    table = HammingTable(bits)
    for code, owner in zip(codes, owners, strict=True):
        table.add(code[None, :], int(owner))
    queries = np.concatenate([near_duplicates(rng, base, 5, 8), codes[:3]])
    for radius in (0, 5, bits // 8, bits // 4, bits // 2):
        rows, found_owners, distances = table.within(queries, radius)
        got = sorted(zip(rows.tolist(), found_owners.tolist(), distances.tolist(), strict=True))
        brute = popcount_distances(queries, codes)
        expected = sorted((int(q), int(owners[c]), int(brute[q, c])) for q, c in np.argwhere(brute <= radius))
        assert got == expected


@pytest.mark.parametrize("coarse_lists", [0, 4])
def test_clustered_table_probing_every_cell_equals_brute_force(coarse_lists: int) -> None:
    """With every cell probed and room for every neighbour, the inverted file must give the exact answer,
    whether its cells are found by a flat scan of the centroids or through coarse cells (all probed too)."""
    rng = np.random.default_rng(7)
    base = rng.integers(0, 256, 32, dtype=np.uint8)
    codes = np.concatenate([near_duplicates(rng, base, 300, 80), rng.integers(0, 256, (700, 32), dtype=np.uint8)])
    owners = rng.integers(0, 50, len(codes))
    table = ClusteredHammingTable(
        256, cluster_at=400, lists=16, probes=16, neighbours=len(codes), coarse_lists=coarse_lists,
        coarse_probes=coarse_lists,
    )  # fmt: skip
    for start in range(0, len(codes), 100):  # clusters inside the add that reaches 400, keeps adding after
        table.add(codes[start : start + 100], owners[start : start + 100])
    assert table.clustered and len(table) == len(codes)
    queries = np.concatenate([near_duplicates(rng, base, 5, 8), codes[:3]])
    brute = popcount_distances(queries, codes)
    for radius in (0, 20, 40, 80, 256):  # 256: every code, so every cell must be probed
        rows, found_owners, distances = table.within(queries, radius)
        got = sorted(zip(rows.tolist(), found_owners.tolist(), distances.tolist(), strict=True))
        expected = sorted((int(q), int(owners[c]), int(brute[q, c])) for q, c in np.argwhere(brute <= radius))
        assert got == expected


def test_clustered_table_refuses_more_coarse_cells_than_centroids() -> None:
    """Caught when the table is made, not deep inside the registration whose add reaches cluster_at."""
    with pytest.raises(ValueError, match="coarse cells"):
        ClusteredHammingTable(256, cluster_at=100, lists=8, probes=2, neighbours=3, coarse_lists=16)


def test_clustered_table_keeps_only_the_nearest_codes_per_query() -> None:
    rng = np.random.default_rng(8)
    base = rng.integers(0, 256, 32, dtype=np.uint8)
    codes = near_duplicates(rng, base, 500, 30)
    table = ClusteredHammingTable(256, cluster_at=100, lists=8, probes=8, neighbours=3)
    table.add(codes, np.arange(len(codes)))
    rows, owners, distances = table.within(base[None, :], 40)
    assert rows.tolist() == [0, 0, 0]
    assert sorted(distances.tolist()) == sorted(popcount_distances(base[None, :], codes)[0])[:3]
    assert (popcount_distances(base[None, :], codes[owners])[0] == distances).all()


def test_searches_split_over_threads_answer_as_one_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many query rows are searched in slices on several threads; the answer must not depend on it."""
    rng = np.random.default_rng(9)
    codes = rng.integers(0, 256, (2000, 32), dtype=np.uint8)
    binary = ClusteredHammingTable(256, cluster_at=500, lists=16, probes=4, neighbours=5)
    binary.add(codes, np.arange(len(codes)) // 4)
    vectors = WindowTable(64, cluster_at=1000, lists=16, probes=4)
    for owner in range(200):
        vectors.add(unit_rows(rng, 10), owner)
    code_queries = codes[:100] ^ np.packbits(rng.random((100, 256)) < 0.1, axis=1)
    vector_queries = unit_rows(rng, 43)
    answers = []
    for threads in (1, 3):
        monkeypatch.setattr(index_module, "CHECK_THREADS", threads)
        answers.append((binary.within(code_queries, 256), vectors.nearest_owners(vector_queries, 16, 10)))
    (one_rows, one_owners, one_distances), one_ranked = answers[0]
    (split_rows, split_owners, split_distances), split_ranked = answers[1]
    assert binary.clustered and vectors.clustered and len(one_rows) == 500
    np.testing.assert_array_equal(one_rows, split_rows)
    np.testing.assert_array_equal(one_owners, split_owners)
    np.testing.assert_array_equal(one_distances, split_distances)
    assert one_ranked == split_ranked and len(one_ranked) == 16


def cells_of(table: ClusteredHammingTable) -> bytes:
    """The table's inverted file, serialized: equal bytes, equal cells and codes in them."""
    return bytes(faiss.serialize_index_binary(table._cells))


@pytest.mark.parametrize("early_clusterings", [0, 2])
def test_clustered_table_loaded_in_batches_equals_one_picture_at_a_time(early_clusterings: int) -> None:
    """Start-up loads pictures in batches; the cells must be trained on the same rows as adding them one by one.

    Fails if clustering happens at the end of the batch that reaches cluster_at (other training rows, other
    cells) or in the middle of a picture; with early clusterings, also if a batch that crosses two of them builds
    only one (the second batch crosses 1234 / 16 and 1234 / 4, the third 1234).
    """
    rng = np.random.default_rng(21)
    counts = rng.integers(0, 30, 200)
    codes = rng.integers(0, 256, (int(counts.sum()), 32), dtype=np.uint8)
    owners = np.repeat(np.arange(len(counts)), counts)
    starts = np.concatenate([[0], np.cumsum(counts)])

    def table() -> ClusteredHammingTable:
        return ClusteredHammingTable(
            256, cluster_at=1234, lists=16, probes=2, neighbours=4, coarse_lists=4, early_clusterings=early_clusterings
        )

    one_by_one, batched = table(), table()
    for owner in range(len(counts)):
        one_by_one.add(codes[starts[owner] : starts[owner + 1]], owner)
    for first, last in [(0, 5), (5, 60), (60, 150), (150, 151), (151, 200)]:
        batched.add(codes[starts[first] : starts[last]], owners[starts[first] : starts[last]])
    assert one_by_one.cells == batched.cells == 16
    assert cells_of(batched) == cells_of(one_by_one)
    queries = codes[::50] ^ np.packbits(rng.random((len(codes[::50]), 256)) < 0.05, axis=1)
    for mine, theirs in zip(batched.within(queries, 60), one_by_one.within(queries, 60), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_clustered_table_rebuilds_its_cells_at_each_fourfold_growth_then_ends_as_if_clustered_once() -> None:
    """Early cells keep a small table's search sub-linear; the last clustering must build exactly the cells of a
    table clustered only at cluster_at, so that large catalogues answer as they were measured."""
    rng = np.random.default_rng(22)
    codes = rng.integers(0, 256, (2000, 32), dtype=np.uint8)
    early = ClusteredHammingTable(256, cluster_at=1600, lists=64, probes=2, neighbours=4, early_clusterings=2)
    once = ClusteredHammingTable(256, cluster_at=1600, lists=64, probes=2, neighbours=4)
    cells_seen = []
    for start in range(0, len(codes), 50):
        early.add(codes[start : start + 50], np.arange(start, start + 50) // 5)
        once.add(codes[start : start + 50], np.arange(start, start + 50) // 5)
        cells_seen.append(early.cells)
    assert sorted(set(cells_seen)) == [0, 4, 16, 64]
    assert cells_seen.index(4) * 50 + 50 == 100 and cells_seen.index(16) * 50 + 50 == 400  # 1600 / 16 and / 4
    assert cells_of(early) == cells_of(once) and len(early) == len(once) == len(codes)


def test_image_index_add_many_answers_as_adding_one_by_one(originals: dict[str, ImageFingerprint]) -> None:
    images = list(originals.items())
    one_by_one, batched = (ImageIndex(orb_cluster_at=3000, orb_lists=32, orb_coarse_lists=4) for _ in range(2))
    for name, fp in images:
        one_by_one.add(name, fp)
    batched.add_many(images[:4])
    batched.add_many(images[4:])
    assert batched._orb.clustered and len(batched) == len(one_by_one) == len(images)
    for _, fp in images:
        assert batched.query(fp) == one_by_one.query(fp)


def unit_rows(rng: np.random.Generator, count: int) -> np.ndarray:
    rows = rng.standard_normal((count, 64)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", [np.int64, np.float32])
def test_closest_per_owner_keeps_each_owners_smallest_distance_closest_first_ties_by_owner(dtype: type) -> None:
    rng = np.random.default_rng(11)
    owners = rng.integers(0, 300, 5000)
    distances = rng.integers(0, 40, 5000).astype(dtype)  # few values: many ties, within and across owners
    best: dict[int, float] = {}
    for owner, distance in zip(owners.tolist(), distances.tolist(), strict=True):
        best[owner] = min(distance, best.get(owner, distance))
    expected = sorted(best.items(), key=lambda item: (item[1], item[0]))
    ranked_owners, ranked_distances = closest_per_owner(owners, distances)
    assert list(zip(ranked_owners.tolist(), ranked_distances.tolist(), strict=True)) == expected
    assert [len(column) for column in closest_per_owner(owners[:0], distances[:0])] == [0, 0]


def knn_match(queries: np.ndarray, stored: np.ndarray, k: int) -> list[tuple[int, int, int]]:
    """(query row, stored row, distance) in the order OpenCV's brute-force knnMatch lists them: the reference."""
    matches = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(queries, stored, k=k)
    return [(m.queryIdx, m.trainIdx, int(m.distance)) for candidates in matches for m in candidates]


def as_matches(distances: np.ndarray, rows: np.ndarray) -> list[tuple[int, int, int]]:
    found = rows >= 0
    return list(zip(np.nonzero(found)[0].tolist(), rows[found].tolist(), distances[found].tolist(), strict=True))


@pytest.mark.parametrize(("stored_count", "k"), [(300, 2), (300, 5), (1, 2)])
def test_nearest_descriptors_list_what_knn_match_lists_ties_and_short_lists_included(stored_count: int, k: int) -> None:
    """Codes over 16 of 256 bits take few distances, so equal distances are everywhere; with one stored row, a query
    has fewer than k neighbours."""
    rng = np.random.default_rng(8)
    codes = np.zeros((stored_count + 400, 32), np.uint8)
    codes[:, :2] = rng.integers(0, 256, (len(codes), 2))
    stored, queries = codes[:stored_count], codes[stored_count:]
    assert as_matches(*index_module.nearest_descriptors(queries, stored, k)) == knn_match(queries, stored, k)


def test_nearest_descriptors_of_a_real_copy_list_what_knn_match_lists(originals: dict[str, ImageFingerprint]) -> None:
    copy = fingerprint_image(edited_copy(skimage_picture("chelsea"), "crop_centre"))
    for stored in (originals["chelsea"], originals["coffee"]):
        found = index_module.nearest_descriptors(copy.all_descriptors, stored.descriptors, 2)
        assert as_matches(*found) == knn_match(copy.all_descriptors, stored.descriptors, 2)


def test_window_table_ranks_owners_by_their_best_vector_and_clusters_exactly_when_probing_every_list() -> None:
    rng = np.random.default_rng(4)
    owners_vectors = [unit_rows(rng, 10) for _ in range(60)]
    flat = WindowTable(64, cluster_at=10**9, lists=8, probes=8)
    clustered = WindowTable(64, cluster_at=300, lists=8, probes=8)
    for owner, vectors in enumerate(owners_vectors):
        flat.add(vectors, owner)
        clustered.add(vectors, owner)
    assert not flat.clustered and clustered.clustered and len(clustered) == 600
    query = owners_vectors[17][3:5] + 0.05 * unit_rows(rng, 2)
    ranked = flat.nearest_owners(query, 5, 10)
    assert ranked[0] == 17 and len(ranked) == 5
    assert clustered.nearest_owners(query, 5, 10) == ranked
    best = [float((query @ owners_vectors[o].T).max()) for o in ranked]
    assert best == sorted(best, reverse=True)


def test_k_majority_centroids_are_deterministic_and_follow_the_data() -> None:
    rng = np.random.default_rng(9)
    bases = rng.integers(0, 256, (4, 32), dtype=np.uint8)
    codes = np.concatenate([near_duplicates(rng, base, 200, 20) for base in bases])
    centroids = k_majority_centroids(codes, 16)
    assert (centroids == k_majority_centroids(codes, 16)).all()
    assert popcount_distances(bases, centroids).min(axis=1).max() <= 10  # a centroid near each group's centre


def synthetic_fingerprint(pdq: np.ndarray, phash: np.ndarray, quality: int) -> ImageFingerprint:
    """Global hashes only (no keypoints): variants derived by rolling bytes, enough to exercise the search."""
    pdq_variants = np.stack([np.roll(pdq, k) for k in range(8)])
    phash_variants = np.stack([np.roll(phash, k) for k in range(8)])
    return ImageFingerprint(
        64, 64, 64, 64, pdq_variants.tobytes(), quality, phash_variants.tobytes(), 0, b"", b""
    )


def brute_force_query(
    stored: list[tuple[str, ImageFingerprint]], query: ImageFingerprint, index: ImageIndex
) -> list[Match]:
    """The index's hash stage, written the slow obvious way."""
    best: dict[str, Match] = {}
    if query.pdq_quality < index.min_quality:
        return []
    for work_id, fp in stored:
        if fp.pdq_quality < index.min_quality:
            continue
        for method, ours, theirs, limit, bits in (
            ("pdq", query.pdq_variants, fp.pdq_variants[:1], index.pdq_max_distance, PDQ_BITS),
            (
                "phash",
                query.phash_variants,
                fp.phash_variants[:1],
                index.phash_max_distance or -1,
                PHASH_BITS,
            ),
        ):
            distance = int(popcount_distances(ours, theirs).min())
            if distance <= limit:
                candidate = Match(work_id, method, float(distance), 1.0 - distance / bits)
                current = best.get(work_id)
                if current is None or (-candidate.similarity, candidate.method) < (
                    -current.similarity,
                    current.method,
                ):
                    best[work_id] = candidate
    return sorted(best.values(), key=lambda m: (-m.similarity, m.work_id, m.method))


@pytest.mark.parametrize("phash_max_distance", [None, 10])
def test_index_hash_stage_equals_brute_force(phash_max_distance: int | None) -> None:
    rng = np.random.default_rng(1)
    pdq_base = rng.integers(0, 256, 32, dtype=np.uint8)
    phash_base = rng.integers(0, 256, 8, dtype=np.uint8)
    pdqs = near_duplicates(rng, pdq_base, 400, 60)
    phashes = near_duplicates(rng, phash_base, 400, 20)
    stored = [
        (f"work-{i % 150}", synthetic_fingerprint(pdqs[i], phashes[i], int(rng.integers(20, 101))))
        for i in range(400)
    ]
    index = ImageIndex(orb_min_votes=10**9, phash_max_distance=phash_max_distance)
    for work_id, fp in stored:
        index.add(work_id, fp)
    assert len(index) == 400
    for i in range(25):
        query = synthetic_fingerprint(
            near_duplicates(rng, pdq_base, 1, 40)[0], near_duplicates(rng, phash_base, 1, 12)[0], 40 + 3 * i
        )
        expected = brute_force_query(stored, query, index)
        assert index.query(query, limit=1000) == expected
        assert index.query(query, limit=3) == expected[:3]
    assert any(index.query(synthetic_fingerprint(pdq_base, phash_base, 100)))


# --- robustness on real pictures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def originals(pictures: dict[str, Image.Image]) -> dict[str, ImageFingerprint]:
    everything = {**pictures, **generated_distractors()}
    return {name: fingerprint_image(encoded(picture)) for name, picture in everything.items()}


@pytest.fixture(scope="module")
def picture_index(originals: dict[str, ImageFingerprint]) -> ImageIndex:
    index = ImageIndex()
    for name, fp in originals.items():
        index.add(name, fp)
    return index


@pytest.fixture(scope="module", params=[(2000, 32, 4), (32_000, 512, 16)], ids=["last-cells", "first-cells"])
def clustered_picture_index(request: pytest.FixtureRequest, originals: dict[str, ImageFingerprint]) -> ImageIndex:
    """The scalable vote path forced on at this small size: clustered after a few pictures, coarse cells. Either
    its last cells (32, rebuilt twice on the way) or the first of its clusterings (a sixteenth of 512 cells, from
    2,000 descriptors), the others out of reach."""
    cluster_at, lists, coarse_lists = request.param
    index = ImageIndex(
        orb_cluster_at=cluster_at, orb_lists=lists, orb_probes=2, orb_coarse_lists=coarse_lists, orb_neighbours=16
    )
    for name, fp in originals.items():
        index.add(name, fp)
    assert index._orb.cells == 32
    return index


def generated_distractors() -> dict[str, Image.Image]:
    """Flat colour, gradients, stripes, text and noise: the pictures most likely to collide."""
    rng = np.random.default_rng(3)
    ramp = np.tile(np.linspace(0, 255, 400, dtype=np.float32), (300, 1))
    stripes = ((np.indices((300, 400))[1] // 20) % 2 * 255).astype(np.uint8)
    text = Image.new("RGB", (400, 300), "white")
    draw = ImageDraw.Draw(text)
    for row in range(12):
        draw.text((10, 10 + row * 24), "Lorem ipsum dolor sit amet, consectetur " * 2, fill="black")
    return {
        "flat": Image.new("RGB", (400, 300), (200, 60, 60)),
        "gradient": Image.fromarray(ramp.astype(np.uint8)).convert("RGB"),
        "stripes": Image.fromarray(stripes).convert("RGB"),
        "text": text,
        "noise": Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)),
    }


ROBUSTNESS_PICTURES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field")


@pytest.mark.parametrize("edit", [*sorted(EDITS), *EDITS_BEYOND_THE_ISSUE])
def test_every_edit_family_is_matched_to_its_original_only(
    edit: str, pictures: dict[str, Image.Image], picture_index: ImageIndex
) -> None:
    for name in ROBUSTNESS_PICTURES:
        matches = picture_index.query(fingerprint_image(edited_copy(pictures[name], edit)))
        assert [m.work_id for m in matches] == [name], (name, edit, matches)
        assert 0.0 < matches[0].similarity <= 1.0


def test_a_picture_pasted_into_a_page_is_located_in_it_even_mirrored(
    pictures: dict[str, Image.Image], picture_index: ImageIndex
) -> None:
    for name in ROBUSTNESS_PICTURES:
        for picture in (pictures[name], ImageOps.mirror(pictures[name])):
            [match] = picture_index.query(fingerprint_image(edited_copy(picture, "paste_in_page")))
            assert (match.work_id, match.method) == (name, "orb")
            assert match.region == pytest.approx(PASTED_AT, abs=0.03), name
            assert match.registered_region == pytest.approx((0.0, 0.0, 1.0, 1.0), abs=0.03), name


@pytest.mark.parametrize(
    ("edit", "kept"), [("crop_corner", (0, 0, 0.75, 0.75)), ("crop_centre", (0.125, 0.125, 0.875, 0.875))]
)
def test_a_crop_says_which_part_of_the_registered_picture_it_kept(
    edit: str, kept: tuple[float, ...], pictures: dict[str, Image.Image], picture_index: ImageIndex
) -> None:
    for name in ROBUSTNESS_PICTURES:
        [match] = picture_index.query(fingerprint_image(edited_copy(pictures[name], edit)))
        assert (match.work_id, match.method) == (name, "orb")
        assert match.registered_region == pytest.approx(kept, abs=0.03), name
        assert match.region == pytest.approx((0.0, 0.0, 1.0, 1.0), abs=0.03), name


def test_a_whole_picture_match_has_no_region_to_point_at(
    pictures: dict[str, Image.Image], picture_index: ImageIndex
) -> None:
    [match] = picture_index.query(fingerprint_image(edited_copy(pictures["coffee"], "jpeg_q10")))
    assert (match.method, match.region, match.registered_region) == ("pdq", None, None)


def test_an_outline_is_mapped_into_the_other_picture_and_clipped_to_it() -> None:
    # A 100 x 50 picture shown at half size at (20, 10) in a 200 x 100 one: x' = x / 2 + 20, y' = y / 2 + 10.
    assert outline_in(np.array([[0.5, 0, 20], [0, 0.5, 10]]), (100, 50), (200, 100)) == pytest.approx(
        (0.1, 0.1, 0.35, 0.35)
    )
    # A 40 x 40 crop enlarged four times over a 100 x 100 picture reaches past it on every side.
    assert outline_in(np.array([[4.0, 0, -20], [0, 4.0, -20]]), (40, 40), (100, 100)) == (0.0, 0.0, 1.0, 1.0)
    assert outline_in(np.array([[1.0, 0, 500], [0, 1.0, 0]]), (50, 50), (100, 100)) is None


@pytest.mark.parametrize("edit", ["crop_centre", "crop_corner", "paste_in_page", "rotate_small_crop", "overlay"])
def test_clustered_vote_still_finds_partial_copies(
    edit: str, pictures: dict[str, Image.Image], clustered_picture_index: ImageIndex
) -> None:
    """Edits only the ORB stage can find, with the inverted-file vote in place of the flat scan."""
    for name in ROBUSTNESS_PICTURES:
        matches = clustered_picture_index.query(fingerprint_image(edited_copy(pictures[name], edit)))
        assert [m.work_id for m in matches] == [name], (name, edit, matches)
        assert matches[0].method in ("orb", "pdq")


def test_clustered_vote_does_not_match_distinct_pictures(clustered_picture_index: ImageIndex) -> None:
    for name in ("moon", "page", "text", "brick", "logo"):
        assert clustered_picture_index.query(fingerprint_image(encoded(skimage_picture(name)))) == [], name


def test_an_index_keeping_no_fingerprints_reads_only_candidates_and_answers_alike(
    pictures: dict[str, Image.Image], originals: dict[str, ImageFingerprint], picture_index: ImageIndex
) -> None:
    """What the app runs (fingerprints read back from the database) against the in-memory index the benches tune."""
    fetching = ImageIndex(keep_fingerprints=False)
    fetching.add_many(list(originals.items()))
    asked: list[list[str]] = []

    def fetch(work_ids: list[str]) -> dict[str, ImageFingerprint]:
        asked.append(list(work_ids))
        return {work_id: originals[work_id] for work_id in work_ids}

    queries = [edited_copy(pictures[name], edit) for name in ROBUSTNESS_PICTURES for edit in sorted(EDITS)]
    queries += [encoded(picture, "JPEG", quality=85) for picture in generated_distractors().values()]
    for query in map(fingerprint_image, queries):
        assert fetching.query(query, fetch=fetch) == picture_index.query(query)
    assert 0 < max(map(len, asked)) <= max(fetching.orb_max_candidates, fetching.pixel_candidates)
    with pytest.raises(ValueError, match="keeps no fingerprints"):
        fetching.query(query)
    gone = fetching.query(fingerprint_image(edited_copy(pictures["coffee"], "crop_corner")), fetch=lambda _: {})
    assert {m.method for m in gone} <= {"pdq"}  # works whose rows are gone are skipped, the hashes still answer


def test_distinct_pictures_do_not_match(pictures: dict[str, Image.Image], picture_index: ImageIndex) -> None:
    everything = {**pictures, **generated_distractors()}
    for name, picture in everything.items():
        matches = picture_index.query(fingerprint_image(encoded(picture, "JPEG", quality=85)))
        assert [m.work_id for m in matches if m.work_id != name] == [], name
    for name in ("moon", "page", "text", "brick", "logo"):
        assert picture_index.query(fingerprint_image(encoded(skimage_picture(name)))) == [], name


def test_exact_copy_is_best_and_one_match_per_work(pictures: dict[str, Image.Image]) -> None:
    index = ImageIndex()
    fp = fingerprint_image(encoded(pictures["coffee"]))
    index.add("coffee", fp)
    index.add("coffee", fingerprint_image(edited_copy(pictures["coffee"], "thumbnail")))
    index.add("chelsea", fingerprint_image(encoded(pictures["chelsea"])))
    matches = index.query(fp)
    assert index.query(fp) == matches  # RANSAC is seeded: same question, same answer
    assert [m.work_id for m in matches] == ["coffee"]
    assert matches[0].distance == 0 and matches[0].similarity == 1.0


def test_empty_index_and_featureless_query() -> None:
    index = ImageIndex()
    blank = fingerprint_image(encoded(Image.new("RGB", (200, 200), "white")))
    assert index.query(blank) == [] and len(index) == 0
    index.add("blank", blank)
    assert index.query(blank) == []  # nothing to go on: no claim of a match


@pytest.mark.parametrize("cluster_at", [None, 2000], ids=["flat", "clusters-midway"])
def test_concurrent_adds_and_queries_are_consistent(
    originals: dict[str, ImageFingerprint], cluster_at: int | None
) -> None:
    fingerprints = {name: originals[name] for name in ROBUSTNESS_PICTURES}
    unregistered = fingerprint_image(encoded(skimage_picture("moon")))  # matches nothing: reaches the pixel search
    index = (
        ImageIndex() if cluster_at is None else ImageIndex(orb_cluster_at=cluster_at, orb_lists=32, orb_coarse_lists=4)
    )
    errors: list[BaseException] = []

    def add_all(prefix: str) -> None:
        try:
            for name, fp in fingerprints.items():
                index.add(f"{prefix}{name}", fp)
                index.query(fp)
                assert index.query(unregistered) == []
        except BaseException as exc:  # surfaced below; a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=add_all, args=(f"t{i}-",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(index) == 3 * len(ROBUSTNESS_PICTURES)
    assert index._orb.clustered == (cluster_at is not None)
    found = {m.work_id for m in index.query(fingerprints["astronaut"], limit=100)}
    assert found == {f"t{i}-astronaut" for i in range(3)}


def test_queries_go_on_while_the_cells_are_trained_and_the_trained_index_answers_as_one_built_inline(
    originals: dict[str, ImageFingerprint], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training the last ORB cells takes 12 s at 250,000 descriptors; a query must not wait for it (it searches the
    cells before), and the installed cells must be those of a table that trained inline. Fails if the training runs
    under the index's lock: the query would still be waiting when the training is let go on."""
    settings = {"orb_cluster_at": 2000, "orb_lists": 32, "orb_coarse_lists": 4}
    inline = index_module.ClusteredHammingTable(256, cluster_at=2000, lists=32, probes=2, neighbours=16, coarse_lists=4,
                                                coarse_probes=4, early_clusterings=2)  # ImageIndex's defaults else
    training, release = threading.Event(), threading.Event()
    trained = index_module.CellTraining.centroids

    def held_training(self: index_module.CellTraining) -> np.ndarray:
        if self.cells.lists == 32:  # the last cells: held until the query has been answered
            training.set()
            assert release.wait(60)
        return trained(self)

    monkeypatch.setattr(index_module.CellTraining, "centroids", held_training)
    index = ImageIndex(**settings)
    adder = threading.Thread(target=index.add_many, args=(list(originals.items()),))
    adder.start()
    assert training.wait(60)
    answers: list[list[Match]] = []
    query = threading.Thread(target=lambda: answers.append(index.query(originals["astronaut"])))
    query.start()
    query.join(30)
    answered_while_training = not query.is_alive()
    release.set()
    adder.join()
    query.join()
    assert answered_while_training and index._orb.cells == 32
    assert [m.work_id for m in answers[0]] == ["astronaut"]
    for owner, fp in enumerate(originals.values()):
        inline.add(fp.descriptors, owner)
    assert bytes(faiss.serialize_index_binary(index._orb._cells)) == bytes(faiss.serialize_index_binary(inline._cells))


def test_a_training_that_fails_is_started_again_by_the_next_add(
    originals: dict[str, ImageFingerprint], monkeypatch: pytest.MonkeyPatch
) -> None:
    trained, failures = index_module.CellTraining.centroids, iter([MemoryError("no room to train")])

    def failing_once(self: index_module.CellTraining) -> np.ndarray:
        if (failure := next(failures, None)) is not None:
            raise failure
        return trained(self)

    monkeypatch.setattr(index_module.CellTraining, "centroids", failing_once)
    index, images = ImageIndex(orb_cluster_at=2000, orb_lists=32, orb_coarse_lists=4), list(originals.items())
    with pytest.raises(MemoryError):
        index.add_many(images[:-1])
    assert not index._orb.clustered and index.query(originals["astronaut"])[0].work_id == "astronaut"
    index.add_many(images[-1:])
    assert index._orb.cells == 32 and len(index) == len(images)


def test_pixel_search_also_measures_the_keypoint_votes_candidates(
    pictures: dict[str, Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A work the ORB vote proposes is searched pixel by pixel even when its keypoints agree on no transform
    and its windows do not rank (here: the window table answers nothing, keypoints never count on their own)."""
    index = ImageIndex(orb_min_inliers=10**6, orb_pixel_min_inliers=10**6)
    for name in ROBUSTNESS_PICTURES:
        index.add(name, fingerprint_image(encoded(pictures[name])))
    monkeypatch.setattr(index._windows, "nearest_owners", lambda *_args: [])
    for name in ("coffee", "chelsea"):
        matches = index.query(fingerprint_image(edited_copy(pictures[name], "crop_centre")))
        assert [(m.work_id, m.method) for m in matches] == [(name, "pixels")]

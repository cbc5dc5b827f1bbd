"""Robustness benchmark: recall per edit family and false matches, IPX vs imagehash pHash vs plain PDQ.

Usage: .venv/bin/python bench/robustness.py [--photos N] [--clipart N] [--distractors N] [--beyond]

Originals: the tuning set's photos and clip-art (distractors). Every photo is reduced to a longer side of
1600 px (a typical copy found online) and edited by each function of bench/_edits.py; the copies are
queried against an ImageIndex holding every original. Peers run on the same files in the same run:
imagehash.phash on a full decode (match when d <= 10) and PDQ on the reference decode (d <= 31).

False matches count every match between different works over photo x photo, photo x clip-art and
edited copy x other original (clip-art x clip-art is reported apart: openclipart holds recoloured and
mirrored versions of the same drawings). Also printed: for each IPX method the closest distinct pair
(smallest Hamming distance; most ORB inliers), which is the margin left by the chosen thresholds.

--distractors N adds N synthetic pictures (bench/_synthetic.py) to the index before the originals, so the
approximate stages (the ORB vote's and the thumbnail windows' inverted files, the candidate caps) are measured
at catalogue scale: a copy must outvote 100k other works, not 852. Every match of a synthetic work is false.
Building 100k takes about 5 minutes.

--beyond adds the edits of bench/_edits.py's EDITS_BEYOND_THE_ISSUE (perspective, a photo of a print, a 40% crop,
greyscale, WebP and HEIC copies): their recall is printed below the issue's edits and kept out of its mean, their
false matches are counted with the rest.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from multiprocessing import Pool, get_context
from pathlib import Path

import imagehash
import numpy as np
import pdqhash
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _edits import EDITS, EDITS_BEYOND_THE_ISSUE, edited_copy  # noqa: E402
from _synthetic import SYNTHETIC_PREFIX, descriptor_pool, synthetic_works  # noqa: E402

from ipx.fingerprint.image import ImageFingerprint, fingerprint_image, flatten_to_rgb  # noqa: E402
from ipx.fingerprint.index import ImageIndex, Match  # noqa: E402
from ipx.fingerprint.pixels import PixelAgreement  # noqa: E402

PEER_PHASH_MAX = 10
PEER_PDQ_MAX = 31
COPY_SIDE = 1600
SAME_DESIGN = ("MATE-Stripes-", "Ubuntu-Mate-")


_worker_index: ImageIndex | None = None
Answer = tuple[list[Match], list[tuple[str, int]], list[tuple[str, PixelAgreement]]]


@dataclass(frozen=True)
class Sample:
    """One image: an original (edit == "") or an edited copy of a photo."""

    name: str
    work: str
    kind: str  # "photo" or "clipart"
    edit: str
    fingerprint: ImageFingerprint
    peer_phash: bytes
    peer_pdq: bytes


def tuning_set() -> Path:
    """The cached tuning download (fetched on first use)."""
    script = REPO.parent / "shared" / "datasets" / "fetch-tuning-set.sh"
    output = subprocess.run([str(script)], check=True, capture_output=True, text=True).stdout
    return Path(output.strip().splitlines()[-1])


def work_of(name: str) -> str:
    """Files that are one work share a work id (see /work/shared/datasets/README.md)."""
    if name.startswith("Elephants"):
        return "Elephants"
    if name.startswith("Sway_Wallpaper_Blue"):
        return "Sway_Wallpaper_Blue"
    return Path(name).stem


def related(work_a: str, work_b: str) -> bool:
    """Same work, or the dark/light versions of one gnome design (a match there is not false)."""
    strip = {"-d": "", "-l": ""}
    return work_a == work_b or (work_a[:-2] == work_b[:-2] and work_a[-2:] in strip and work_b[-2:] in strip)


def same_design(name_a: str, name_b: str) -> bool:
    """Recolourings of one design that the dataset README labels as distinct works (reported apart)."""
    return any(name_a.startswith(prefix) and name_b.startswith(prefix) for prefix in SAME_DESIGN)


def peer_hashes(data: bytes) -> tuple[bytes, bytes]:
    """imagehash.phash on a full decode; PDQ with the reference decode recipe (pdq/README.md)."""
    image = Image.open(io.BytesIO(data))
    phash = bytes.fromhex(str(imagehash.phash(image)))
    if image.mode in ("LA", "I;16"):
        image = image.convert("RGB")
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    vector, _ = pdqhash.compute(np.ascontiguousarray(pixels[..., :3]))
    return phash, np.packbits(vector.astype(np.uint8)).tobytes()


def load_original(job: tuple[Path, str]) -> Sample:
    path, kind = job
    data = path.read_bytes()
    return Sample(path.name, work_of(path.name), kind, "", fingerprint_image(data), *peer_hashes(data))


def load_copies(path: Path, edits: Sequence[str] = tuple(EDITS)) -> list[Sample]:
    image = Image.open(path)
    image.draft("RGB", (COPY_SIDE, COPY_SIDE))
    image = Image.fromarray(flatten_to_rgb(image))  # as displayed, transparency flattened like IPX does
    image.thumbnail((COPY_SIDE, COPY_SIDE), Image.Resampling.LANCZOS)
    copies = []
    for edit in edits:
        data = edited_copy(image, edit)
        copies.append(Sample(path.name, work_of(path.name), "photo", edit, fingerprint_image(data), *peer_hashes(data)))
    return copies


def index_of(originals: list[Sample], distractors: int = 0) -> ImageIndex:
    """The originals, after `distractors` synthetic pictures (the catalogue they must be found in)."""
    index = ImageIndex()
    for work_id, fingerprint in synthetic_works(descriptor_pool(), np.random.default_rng(0), distractors):
        index.add(work_id, fingerprint)
    for original in originals:
        index.add(original.name, original.fingerprint)
    return index


def query_worker(fingerprint: ImageFingerprint) -> Answer:
    """IPX's answer with default thresholds, plus the scores of every ORB and pixel candidate (for the margin)."""
    assert _worker_index is not None
    return (
        _worker_index.query(fingerprint, limit=1000),
        _worker_index.orb_scores(fingerprint),
        _worker_index.pixel_scores(fingerprint),
    )


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances between rows of two uint8 code arrays."""
    return np.unpackbits(a[:, None, :] ^ b[None, :, :], axis=2).sum(axis=2)


def dihedral_distances(queries: list[Sample], originals: list[Sample], field: str) -> np.ndarray:
    """(queries, originals) smallest distance over the query's 8 variants to each original's hash."""
    stored = np.stack([getattr(s.fingerprint, field)[0] for s in originals])
    result = np.empty((len(queries), len(originals)), dtype=np.int64)
    for row, query in enumerate(queries):
        result[row] = hamming(getattr(query.fingerprint, field), stored).min(axis=0)
    return result


def pdq_usable(queries: list[Sample], originals: list[Sample], min_quality: int) -> np.ndarray:
    """(queries, originals): the pairs whose PDQ hashes the index compares (both of quality >= min_quality)."""
    return (
        np.array([q.fingerprint.pdq_quality >= min_quality for q in queries])[:, None]
        & np.array([o.fingerprint.pdq_quality >= min_quality for o in originals])[None, :]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=0, help="use only the first N photos (0 = all)")
    parser.add_argument("--clipart", type=int, default=0, help="use only the first N clip-art files (0 = all)")
    parser.add_argument("--distractors", type=int, default=0, help="synthetic pictures indexed too (default 0)")
    parser.add_argument(
        "--beyond", action="store_true", help="also measure edits the issue leaves out (perspective, formats...)"
    )
    args = parser.parse_args()
    edits = [*EDITS, *(EDITS_BEYOND_THE_ISSUE if args.beyond else ())]

    root = tuning_set()
    photo_paths = sorted((root / "photos").iterdir())[: args.photos or None]
    clipart_paths = sorted((root / "clipart").glob("*.png"))[: args.clipart or None]
    started = time.perf_counter()
    jobs = [(p, "photo") for p in photo_paths] + [(p, "clipart") for p in clipart_paths]
    with Pool(2) as pool:
        originals = pool.map(load_original, jobs)
        copies = [copy for batch in pool.map(partial(load_copies, edits=edits), photo_paths) for copy in batch]
    print(f"fingerprinted {len(originals)} originals and {len(copies)} copies in {time.perf_counter() - started:.0f} s")
    queries = originals + copies
    started = time.perf_counter()
    global _worker_index  # built once, shared with the query workers by fork
    _worker_index = index_of(originals, args.distractors)
    print(f"indexed {args.distractors:,} synthetic pictures and the originals in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    with get_context("fork").Pool(2) as pool:
        answers = pool.map(query_worker, [q.fingerprint for q in queries], chunksize=8)
    print(f"queried {len(queries)} images in {time.perf_counter() - started:.0f} s")
    if args.distractors:
        answers = without_distractors(answers)
    work = {o.name: o.work for o in originals}
    kind = {o.name: o.kind for o in originals}
    copy_answers = answers[len(originals) :]
    report_recall(originals, copies, [a[0] for a in copy_answers], work, edits)
    report_methods_alone(originals, copies, [a[1] for a in copy_answers], [a[2] for a in copy_answers], work)
    report_false_matches(queries, [a[0] for a in answers], work, kind)
    report_margins(originals, queries, [a[1] for a in answers], [a[2] for a in answers], kind)


def without_distractors(answers: list[Answer]) -> list[Answer]:
    """The answers with synthetic works left out, after reporting how close they came (any match is false)."""

    def real(work_id: str) -> bool:
        return not work_id.startswith(SYNTHETIC_PREFIX)

    matched = sum(not real(m.work_id) for matches, _, _ in answers for m in matches)
    inliers = max((n for _, orb, _ in answers for work_id, n in orb if not real(work_id)), default=0)
    print(f"IPX false matches with synthetic distractors: {matched} (most ORB inliers with one: {inliers})")
    return [
        (
            [m for m in matches if real(m.work_id)],
            [score for score in orb if real(score[0])],
            [score for score in pixels if real(score[0])],
        )
        for matches, orb, pixels in answers
    ]


def category(query: Sample, other_kind: str) -> str:
    if query.edit:
        return "copy x other original"
    return " x ".join(sorted([query.kind, other_kind], key=["photo", "clipart"].index))


def report_recall(
    originals: list[Sample], copies: list[Sample], answers: list[list[Match]], work: dict[str, str], edits: list[str]
) -> None:
    def peer_distances(field: str) -> np.ndarray:
        return hamming(
            np.stack([np.frombuffer(getattr(c, field), np.uint8) for c in copies]),
            np.stack([np.frombuffer(getattr(o, field), np.uint8) for o in originals]),
        )

    peer_phash, peer_pdq = peer_distances("peer_phash"), peer_distances("peer_pdq")
    same = np.array([[c.work == o.work for o in originals] for c in copies])
    allowed = np.array([[related(c.work, o.work) for o in originals] for c in copies])
    rows: dict[str, list[tuple[bool, bool, bool]]] = {edit: [] for edit in edits}
    methods: dict[str, int] = {}
    peer_false = [0, 0]
    missed = []
    for row, (copy, matches) in enumerate(zip(copies, answers, strict=True)):
        correct = [m for m in matches if work[m.work_id] == copy.work]
        if correct:
            methods[correct[0].method] = methods.get(correct[0].method, 0) + 1
        else:
            missed.append(f"{copy.name}/{copy.edit}")
        phash_hits, pdq_hits = peer_phash[row] <= PEER_PHASH_MAX, peer_pdq[row] <= PEER_PDQ_MAX
        rows[copy.edit].append(
            (bool(correct), bool((phash_hits & same[row]).any()), bool((pdq_hits & same[row]).any()))
        )
        peer_false[0] += int((phash_hits & ~allowed[row]).sum())
        peer_false[1] += int((pdq_hits & ~allowed[row]).sum())
    print(
        f"\nRecall on {len(copies)} edited copies of {len(copies) // len(edits)} photos "
        f"(index of {len(originals)} originals: photos + clip-art)"
    )
    print(f"{'edit':<20}{'IPX':>8}{'pHash<=10':>11}{'PDQ<=31':>9}")
    table = {edit: np.array(values, dtype=float).mean(axis=0) for edit, values in rows.items()}
    for edit, (ipx, phash, pdq) in table.items():
        if edit == next(iter(EDITS_BEYOND_THE_ISSUE)):
            print("-- beyond the issue's list (not in the mean) --")
        print(f"{edit:<20}{ipx:>8.3f}{phash:>11.3f}{pdq:>9.3f}")
    targeted = [table[edit] for edit in EDITS]
    mean, worst = np.mean(targeted, axis=0), np.min(targeted, axis=0)
    print(f"{'mean (issue edits)':<20}{mean[0]:>8.3f}{mean[1]:>11.3f}{mean[2]:>9.3f}")
    print(f"{'worst (issue edits)':<20}{worst[0]:>8.3f}{worst[1]:>11.3f}{worst[2]:>9.3f}")
    print(f"peer false matches, copy x other originals: pHash {peer_false[0]}, PDQ {peer_false[1]}")
    print("IPX method that found each copy:", dict(sorted(methods.items())))
    print(f"IPX missed ({len(missed)}):", ", ".join(missed))


def report_methods_alone(
    originals: list[Sample],
    copies: list[Sample],
    orb_scores: list[list[tuple[str, int]]],
    pixel_scores: list[list[tuple[str, PixelAgreement]]],
    work: dict[str, str],
) -> None:
    """Copies each method finds with the others switched off (the pixel search run whatever else matched).

    The recall above cannot show a method getting weaker where another method also finds the copy: 10 ECC
    iterations instead of 40 left it unchanged while the pixel stage alone went from 629 copies to 627.
    """
    defaults = ImageIndex()
    own = np.array([[c.work == o.work for o in originals] for c in copies])
    usable = pdq_usable(copies, originals, defaults.min_quality)
    pdq_close = dihedral_distances(copies, originals, "pdq_variants") <= defaults.pdq_max_distance
    found = {
        "pdq": int((pdq_close & usable & own).any(axis=1).sum()),
        "orb": sum(
            any(work[w] == c.work and n >= defaults.orb_min_inliers for w, n in scores)
            for c, scores in zip(copies, orb_scores, strict=True)
        ),
        "pixels": sum(
            any(
                work[w] == c.work
                and defaults.pixels_agree(a)
                for w, a in scores
            )
            for c, scores in zip(copies, pixel_scores, strict=True)
        ),
    }
    print("IPX copies found by each method alone:", ", ".join(f"{m} {n}/{len(copies)}" for m, n in found.items()))


def report_false_matches(
    queries: list[Sample], answers: list[list[Match]], work: dict[str, str], kind: dict[str, str]
) -> None:
    counts = {"photo x photo": 0, "photo x clipart": 0, "copy x other original": 0, "clipart x clipart": 0}
    recolourings = 0
    pairs: dict[str, int] = {}
    for query, matches in zip(queries, answers, strict=True):
        for m in matches:
            if related(work[m.work_id], query.work) or m.work_id == query.name:
                continue
            if same_design(query.name, m.work_id):
                recolourings += 1
                continue
            counts[category(query, kind[m.work_id])] += 1
            if kind[m.work_id] == "photo" or query.kind == "photo":
                pair = f"{query.name} ~ {m.work_id} ({m.method})"
                pairs[pair] = pairs.get(pair, 0) + 1
    print(f"\nIPX false matches between distinct works: {counts}")
    print(f"   plus {recolourings} between recolourings of one design labelled distinct ({SAME_DESIGN})")
    for pair, count in sorted(pairs.items(), key=lambda item: -item[1]):
        print(f"   {count:>3} x {pair}")


def report_margins(
    originals: list[Sample],
    queries: list[Sample],
    orb_scores: list[list[tuple[str, int]]],
    pixel_scores: list[list[tuple[str, PixelAgreement]]],
    kind: dict[str, str],
) -> None:
    """Closest distinct pair per method, over the pairs that count for false matches."""
    index = _worker_index  # the index this run queried: its thresholds, and how far it is clustered
    assert index is not None
    print("\nThresholds and margins (closest distinct pair; clip-art x clip-art excluded)")
    counted = np.array(
        [
            [
                not related(q.work, o.work) and q.name != o.name and category(q, o.kind) != "clipart x clipart"
                for o in originals
            ]
            for q in queries
        ]
    )
    recoloured = np.array([[same_design(q.name, o.name) for o in originals] for q in queries])
    usable = pdq_usable(queries, originals, index.min_quality)
    scopes = (
        ("all pairs labelled distinct", counted),
        ("without same-design recolourings", counted & ~recoloured),
    )
    for field, label, threshold in (
        ("pdq_variants", "pdq", index.pdq_max_distance),
        ("phash_variants", "phash", index.phash_max_distance),
    ):
        all_distances = dihedral_distances(queries, originals, field)
        setting = "not used for matching" if threshold is None else f"d<={threshold}"
        print(f"  {label}: {setting}")
        for scope, mask in scopes:
            distances = np.where(mask & usable, all_distances, 10**6)
            q, o = np.unravel_index(distances.argmin(), distances.shape)
            closest = int(distances[q, o])
            margin = "" if threshold is None else f", margin {closest - threshold} bits"
            print(f"     {scope}: closest d={closest}{margin} ({describe(queries[q])} ~ {originals[o].name})")
    position = {o.name: i for i, o in enumerate(originals)}
    print(f"  orb: inliers>={index.orb_min_inliers}")
    for scope, mask in scopes:
        most, pair = 0, ""
        for row, (query, scores) in enumerate(zip(queries, orb_scores, strict=True)):
            for work_id, inliers in scores:
                if mask[row, position[work_id]] and inliers > most:
                    most, pair = inliers, f"{describe(query)} ~ {work_id}"
        print(f"     {scope}: most inliers {most}, margin {index.orb_min_inliers - most} ({pair})")
    print(
        f"  pixels: correlation>={index.pixel_min_correlation}, detail>={index.pixel_min_detail}, "
        f"overlap>={index.pixel_min_overlap} (closest: highest share of both thresholds reached)"
    )
    for scope, mask in scopes:
        closest, pair = -1.0, ""
        for row, (query, scores) in enumerate(zip(queries, pixel_scores, strict=True)):
            for work_id, agreement in scores:
                if not mask[row, position[work_id]] or agreement.overlap < index.pixel_min_overlap:
                    continue
                share = min(
                    agreement.correlation / index.pixel_min_correlation, agreement.detail / index.pixel_min_detail
                )
                if share > closest:
                    closest = share
                    pair = (
                        f"{describe(query)} ~ {work_id}: correlation {agreement.correlation:.3f}, "
                        f"detail {agreement.detail:.3f}"
                    )
        print(f"     {scope}: {closest:.3f} of the thresholds ({pair})")
    print(
        f"  pdq used only when both PDQ qualities >= {index.min_quality}; ORB candidates: "
        f"top {index.orb_max_candidates} by split votes "
        f"(descriptor distance <= {index.orb_vote_distance}, >= {index.orb_min_votes} votes; once clustered, "
        f"{index.orb_probes} cells probed (found through coarse cells, {index.orb_coarse_probes} probed), "
        f"{index.orb_neighbours} nearest per descriptor, >= {index.orb_clustered_min_votes} votes; this run's "
        f"index: {len(index._orb):,} descriptors in {index._orb.cells:,} cells (0: a flat scan), up to "
        f"{index.orb_lists:,} cells from {index.orb_cluster_at:,} descriptors)"
    )


def describe(sample: Sample) -> str:
    return f"{sample.name}/{sample.edit}" if sample.edit else sample.name


if __name__ == "__main__":
    main()

"""Speed and memory benchmark for image fingerprints and the Hamming index.

Usage: .venv/bin/python bench/fingerprint_speed.py [--skip-memory]

1. Fingerprinting a 12-megapixel JPEG (every IPX image method) vs imagehash.phash alone, same file, same run:
   first with glibc's default allocator, then with freed memory kept for reuse, phash's best (bench/_peer.py);
   then the same picture as HEIC and AVIF, phones' formats, which neither side can decode at a reduced size, and
   as JPEG 2000 (archives' and cinema's), which IPX decodes with wavelet levels skipped.
2. Peak memory fingerprinting a 100-megapixel PNG, measured as ru_maxrss of a fresh subprocess.
3. Index lookups (8 PDQ variants, radius 31) at 100k and 1M synthetic hashes: FAISS vs brute-force NumPy,
   with recall against brute force; and a full ImageIndex query at 1k and 10k synthetic images (the ORB vote
   is a flat scan at 1k and an inverted file at 10k; bench/verify_speed.py compares the two at 10k and 100k).
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _peer import keep_freed_memory, phash_of  # noqa: E402
from _synthetic import enlarged_photo, jpeg  # noqa: E402

from ipx.fingerprint.image import DEFAULT_MAX_PIXELS, ImageFingerprint, decode_image, fingerprint_image  # noqa: E402
from ipx.fingerprint.index import HammingTable, ImageIndex  # noqa: E402

FINGERPRINT_ROUNDS = 21


def elapsed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    return statistics.median(elapsed(action) for _ in range(repeats))


def bench_fingerprint_speed() -> None:
    photo = enlarged_photo("coffee", 4000, 3000, noise_sigma=4)
    data = jpeg(photo, 92)
    report_fingerprint_rounds(data, "allocator's defaults, as in a plain script (phash maps its pixels anew each call)")
    if not keep_freed_memory():
        print("this C library offers no mallopt: phash could not be timed at its best")
        return
    report_fingerprint_rounds(data, "freed memory kept for reuse (phash at its best)")
    # Phones' formats have no reduced-size decoding (HEVC and AV1 code the whole picture): both sides decode it all.
    # JPEG 2000 has: IPX skips wavelet levels.
    lossy_jpeg2000 = {"irreversible": True, "quality_mode": "rates", "quality_layers": [20]}
    for fmt, options in (("HEIF", {"quality": 80}), ("AVIF", {"quality": 70}), ("JPEG2000", lossy_jpeg2000)):
        encoded = io.BytesIO()
        photo.save(encoded, fmt, **options)
        report_fingerprint_rounds(encoded.getvalue(), "phash at its best", kind=fmt, target="")


def report_fingerprint_rounds(
    data: bytes, allocator: str, *, kind: str = "JPEG", target: str = "; target <= 0.33"
) -> None:
    """IPX's fingerprints vs phash, and IPX's decoding alone: the part no fingerprint of the file can skip.

    A JPEG decoded at 1/8 of its size is almost only libjpeg-turbo's entropy decoding of every byte, which phash's
    full decode does too; how much of phash that is depends on the CPU (0.32 on 2026-12-07's machine, about 0.2 on
    the slower ones of earlier sessions).
    """
    # Alternated, round by round: the load of a shared machine drifts over seconds, and all must see the same.
    rounds = [
        (
            elapsed(lambda: fingerprint_image(data)),
            elapsed(lambda: phash_of(data)),
            elapsed(lambda: decode_image(data, max_pixels=DEFAULT_MAX_PIXELS)),
        )
        for _ in range(FINGERPRINT_ROUNDS)
    ]
    ipx, phash, decoding = (statistics.median(column) for column in zip(*rounds, strict=True))
    low, high = np.percentile([mine / theirs for mine, theirs, _ in rounds], [25, 75])
    print(
        f"12-megapixel {kind} ({len(data) / 1e6:.1f} MB), {FINGERPRINT_ROUNDS} alternated rounds, {allocator}: IPX all "
        f"methods {ipx * 1000:.0f} ms (decoding alone {decoding * 1000:.0f} ms, {decoding / phash:.2f} of phash), "
        f"imagehash.phash alone {phash * 1000:.0f} ms, ratio of medians {ipx / phash:.2f} (per-round ratio "
        f"{low:.2f}-{high:.2f} between quartiles{target})"
    )


MEMORY_PROBE = """
import sys
sys.path.insert(0, {repo!r})
from ipx.fingerprint.image import fingerprint_image


def high_water_mb():  # VmHWM belongs to this process image; ru_maxrss would include the parent's peak
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024


data = open({path!r}, "rb").read()
before = high_water_mb()
fingerprint_image(data)
print(before, high_water_mb())
"""


def bench_peak_memory() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "100mp.png"
        enlarged_photo("coffee", 10000, 10000).save(path, "PNG", compress_level=1)
        size = path.stat().st_size
        probe = MEMORY_PROBE.format(repo=str(REPO), path=str(path))
        output = subprocess.run(
            [sys.executable, "-c", probe], check=True, capture_output=True, text=True
        ).stdout
    before, after = (float(value) for value in output.split())
    print(
        f"100-megapixel PNG ({size / 1e6:.0f} MB file): peak RSS {after:.0f} MB, {after - before:.0f} MB "
        f"above the process with imports and file bytes loaded (the decoded RGB pixels alone are 300 MB)"
    )


def brute_force_within(
    codes: np.ndarray, queries: np.ndarray, max_distance: int
) -> set[tuple[int, int, int]]:
    """(query row, code row, distance) for all pairs within max_distance, by popcount over uint64 words."""
    words = codes.view(np.uint64)
    found = set()
    for row, query in enumerate(queries.view(np.uint64)):
        distances = np.bitwise_count(words ^ query).sum(axis=1)
        for hit in np.flatnonzero(distances <= max_distance):
            found.add((row, int(hit), int(distances[hit])))
    return found


def bench_hash_index(count: int, rng: np.random.Generator) -> None:
    codes = rng.integers(0, 256, (count, 32), dtype=np.uint8)
    planted = rng.choice(count, 8, replace=False)
    queries = codes[planted].copy()
    flips = rng.integers(0, 256 * 8, (8, 20))
    for row, bits in enumerate(flips):  # near-duplicates at distance <= 20 so there is something to find
        unpacked = np.unpackbits(queries[row])
        unpacked[bits % 256] ^= 1
        queries[row] = np.packbits(unpacked)
    table = HammingTable(256)
    started = time.perf_counter()
    table.add(codes, np.arange(count))
    build = time.perf_counter() - started
    faiss_seconds = median_seconds(lambda: table.within(queries, 31), 5)
    brute_seconds = median_seconds(lambda: brute_force_within(codes, queries, 31), 3)
    got = set(zip(*(column.tolist() for column in table.within(queries, 31)), strict=True))
    expected = brute_force_within(codes, queries, 31)
    recall = len(got & expected) / max(1, len(expected))
    print(
        f"{count:>9,} PDQ hashes: FAISS flat {faiss_seconds * 1000:7.1f} ms/query (8 variants), "
        f"NumPy brute force {brute_seconds * 1000:7.1f} ms, build {build:.2f} s, "
        f"recall vs brute force {recall:.3f} ({len(expected)} hits, exact={got == expected})"
    )


def bench_orb_stage(images: int, rng: np.random.Generator) -> None:
    """Full ImageIndex.query on synthetic fingerprints with 500 random ORB descriptors each."""
    index = ImageIndex()
    descriptors = rng.integers(0, 256, (images, 500, 32), dtype=np.uint8)
    points = rng.random((500, 2), dtype=np.float32) * 512
    for image in range(images):
        fp = ImageFingerprint(
            512,
            512,
            512,
            512,
            rng.integers(0, 256, 256, dtype=np.uint8).tobytes(),
            100,
            rng.integers(0, 256, 64, dtype=np.uint8).tobytes(),
            500,
            points.tobytes(),
            descriptors[image].tobytes(),
        )
        index.add(f"work-{image}", fp)
    query = fp
    seconds = median_seconds(lambda: index.query(query), 3)
    print(f"{images:>9,} images ({images * 500:,} ORB descriptors): full query {seconds * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--skip-memory", action="store_true", help="skip the 100-megapixel PNG (slow to encode)"
    )
    args = parser.parse_args()
    bench_fingerprint_speed()
    if not args.skip_memory:
        bench_peak_memory()
    rng = np.random.default_rng(0)
    for count in (100_000, 1_000_000):
        bench_hash_index(count, rng)
    for images in (1_000, 10_000):
        bench_orb_stage(images, rng)
    print(f"this process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()

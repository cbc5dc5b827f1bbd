"""Folder scan throughput: `ipx scan DIR` over camera-sized JPEGs, one file at a time vs several, vs a plain baseline.

Usage: .venv/bin/python bench/scan_speed.py [--files 24] [--rounds 3]

A registry of three works (registered through the API, SQLite and local files in a temporary directory) and a
folder of --files 12-megapixel JPEGs (scikit-image pictures enlarged to 4000 x 3000 with sensor-like noise; every
third one a mirrored copy of a registered work). The command runs in-process through Typer's test runner, so its
figures are the command's own (index load, hashing, fingerprints, matching, the CSV) without Python's start-up.
In the same run, alternating round by round: `--jobs 1`, `--jobs` one per core, and the plain baseline a script
would be, imagehash.phash of each file in turn (no lookup, no report), timed at its best: the process keeps freed
memory for reuse (bench/_peer.py; IPX's fingerprints take the same time either way). Every scan must find the
copies, or no figures are reported.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _peer import keep_freed_memory, phash_of  # noqa: E402
from _synthetic import enlarged_photo, jpeg, skimage_picture  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from ipx.app import create_app  # noqa: E402
from ipx.cli import app as cli_app  # noqa: E402
from ipx.config import Settings  # noqa: E402
from ipx.migrations import upgrade  # noqa: E402
from tests.conftest import ApiUser  # noqa: E402

REGISTERED = ("astronaut", "chelsea", "rocket")
UNREGISTERED = ("coffee", "logo")  # the scikit-image colour pictures neither registered nor in the descriptor pool
SIDE = (4000, 3000)


def build_folder(folder: Path, files: int) -> set[str]:
    """Write the folder; returns the names of the files that copy a registered work (every third one, mirrored)."""
    copies = set()
    for number in range(files):
        if number % 3 == 0:
            name = REGISTERED[number // 3 % len(REGISTERED)]
            picture = ImageOps.mirror(skimage_picture(name)).resize(SIDE)
            filename = f"{number:03d}-copy-of-{name}.jpg"
            copies.add(filename)
        else:
            name = UNREGISTERED[number % len(UNREGISTERED)]
            picture = enlarged_photo(name, *SIDE, noise_sigma=3 + number % 4)
            filename = f"{number:03d}-{name}.jpg"
        (folder / filename).write_bytes(jpeg(picture, 92))
    return copies


def scan_seconds(folder: Path, report: Path, jobs: int, copies: set[str]) -> float:
    started = time.perf_counter()
    result = CliRunner().invoke(cli_app, ["scan", str(folder), "--out", str(report), "--jobs", str(jobs)])
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    matched = {row["path"].rsplit("/", 1)[-1] for row in csv.DictReader(report.open()) if row["status"] == "match"}
    assert matched == copies, f"the scan found {sorted(matched)}, expected {sorted(copies)}"
    return seconds


def elapsed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=24, help="12-megapixel JPEGs in the folder (default 24)")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds of each way (default 3)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    peer_at_best = keep_freed_memory()
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        settings = Settings(data_dir=root / "data", public_url="http://testserver")
        upgrade(settings.resolved_database_url)
        with TestClient(create_app(settings)) as client:
            creator = ApiUser(client, "bench@example.org", "Bench")
            for name in REGISTERED:
                assert creator.register(jpeg(skimage_picture(name)), title=name).status_code == 201
        os.environ.update(IPX_DATABASE_URL=settings.resolved_database_url, IPX_DATA_DIR=str(settings.data_dir))
        folder = root / "folder"
        folder.mkdir()
        copies = build_folder(folder, args.files)
        files = sorted(folder.iterdir())
        megabytes = sum(path.stat().st_size for path in files) / 1e6
        report = root / "report.csv"
        ways: dict[str, Callable[[], float]] = {
            "ipx scan --jobs 1": lambda: scan_seconds(folder, report, 1, copies),
            f"ipx scan --jobs {cores} (the default here)": lambda: scan_seconds(folder, report, cores, copies),
            "imagehash.phash of each file, nothing else": lambda: elapsed(
                lambda: [phash_of(path.read_bytes()) for path in files]
            ),
        }
        rounds = [{way: run() for way, run in ways.items()} for _ in range(args.rounds)]
    print(
        f"folder: {len(files)} 12-megapixel JPEGs ({megabytes:.0f} MB), {len(copies)} of them edited copies of the "
        f"{len(REGISTERED)} registered works; {args.rounds} alternated rounds, medians; {cores} cores; phash "
        + ("at its best (freed memory kept)" if peer_at_best else "with the allocator's defaults (no mallopt here)")
    )
    medians = {way: statistics.median(r[way] for r in rounds) for way in ways}
    baseline = medians["imagehash.phash of each file, nothing else"]
    for way, seconds in medians.items():
        print(
            f"  {way:<45} {seconds:6.2f} s  {len(files) / seconds:5.1f} files/s  "
            f"{seconds / baseline:.2f}x the time of phash alone"
        )


if __name__ == "__main__":
    main()

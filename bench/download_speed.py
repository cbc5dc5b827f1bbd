"""Handing files out: a registered file streamed and checked against its SHA-256, and the evidence archive.

Usage: .venv/bin/python bench/download_speed.py [--megabytes 64] [--works 20] [--requests 7]

The peer of GET /api/v1/works/{id}/file is Starlette's FileResponse of the same stored blob (sendfile-free, through
the same in-process ASGI client): what serving the file costs without the SHA-256 check, the held-back last piece
and the blob store's interface. The archive (GET /api/v1/me/archive) of `--works` pictures plus the big file is
compared with fetching the same files one by one through the file route. Requests alternate between the two sides;
medians are printed with the ratio. SQLite and local files in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Route

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from verify_speed import api_user  # noqa: E402

from ipx.app import create_app  # noqa: E402
from ipx.config import Settings  # noqa: E402
from ipx.migrations import upgrade  # noqa: E402
from tests.conftest import png_bytes  # noqa: E402


def seconds(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def fetched(client: TestClient, path: str, headers: dict[str, str] | None = None) -> int:
    answer = client.get(path, headers=headers or {})
    assert answer.status_code == 200, answer.text
    return len(answer.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=64, help="size of the big registered file (default 64)")
    parser.add_argument("--works", type=int, default=20, help="small pictures in the archive besides it (default 20)")
    parser.add_argument("--requests", type=int, default=7, help="timed requests per side (default 7)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        database_url = f"sqlite:///{folder}/ipx.db"
        upgrade(database_url)
        settings = Settings(data_dir=Path(folder), database_url=database_url, public_url="http://bench")
        with TestClient(create_app(settings)) as client:
            owner = api_user(client)
            big = os.urandom(args.megabytes * 1_048_576)
            work = client.post("/api/v1/works", headers=owner, files={"file": ("tape.bin", big)},
                               data={"title": "Big"}).json()
            small = [
                client.post("/api/v1/works", headers=owner, files={"file": (f"p{i}.png", png_bytes(i, (640, 480)))},
                            data={"title": f"Picture {i}"}).json()
                for i in range(args.works)
            ]
            blob = client.app.state.registry.blobs._path(work["sha256"])  # type: ignore[attr-defined]
            plain = TestClient(Starlette(routes=[Route("/file", lambda request: FileResponse(blob))]))

            ipx_times, plain_times = [], []
            for _ in range(args.requests):
                ipx_times.append(seconds(lambda: fetched(client, f"/api/v1/works/{work['work_id']}/file", owner)))
                plain_times.append(seconds(lambda: fetched(plain, "/file")))
            ipx_file, plain_file = statistics.median(ipx_times), statistics.median(plain_times)
            print(f"{args.megabytes} MiB file: IPX checked stream {ipx_file * 1000:.0f} ms "
                  f"({args.megabytes / ipx_file:.0f} MiB/s), FileResponse {plain_file * 1000:.0f} ms "
                  f"({args.megabytes / plain_file:.0f} MiB/s): ratio {ipx_file / plain_file:.2f}")

            paths = [f"/api/v1/works/{w['work_id']}/file" for w in (work, *small)]
            archive_times, one_by_one_times = [], []
            for _ in range(args.requests):
                archive_times.append(seconds(lambda: fetched(client, "/api/v1/me/archive", owner)))
                one_by_one_times.append(seconds(lambda: [fetched(client, path, owner) for path in paths]))
            archive_size = fetched(client, "/api/v1/me/archive", owner)
            archive, one_by_one = statistics.median(archive_times), statistics.median(one_by_one_times)
            print(f"archive of {len(paths)} works ({archive_size / 1_048_576:.1f} MiB zipped): {archive * 1000:.0f} ms "
                  f"({archive_size / 1_048_576 / archive:.0f} MiB/s), the same files one by one "
                  f"{one_by_one * 1000:.0f} ms: ratio {archive / one_by_one:.2f}")


if __name__ == "__main__":
    main()

"""Thumbnails of image works: served from the preview kept at registration vs made from the stored file.

Usage: .venv/bin/python bench/thumbnail_speed.py [--requests 15]

A 12-megapixel photo is registered as JPEG, HEIC and PNG (FastAPI's TestClient, SQLite and local files in a temporary
directory). GET /works/{id}/thumbnail is then timed with the kept preview (every request now) and with it deleted
before each request, which is what every request cost before previews were kept (decoding the stored file; it is
also what the first request for a work registered before then costs, once). The baseline runs through the same route
in the same run, alternated request by request. Browsers' If-None-Match is not sent: each request draws the picture.

Also the verify page's preview of an upload: made from the fingerprints' decoded copy (now) vs decoding the upload
a second time (before).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import delete

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _synthetic import enlarged_photo  # noqa: E402
from verify_speed import api_user  # noqa: E402

from ipx.app import create_app  # noqa: E402
from ipx.config import Settings  # noqa: E402
from ipx.db import transaction  # noqa: E402
from ipx.fingerprint.image import decode_image  # noqa: E402
from ipx.migrations import upgrade  # noqa: E402
from ipx.registry import previews  # noqa: E402
from ipx.registry.models import WorkPreview  # noqa: E402

FORMATS = {"JPEG": {"quality": 92}, "HEIF": {"quality": 80}, "PNG": {}}
SUFFIXES = {"JPEG": "jpg", "HEIF": "heic", "PNG": "png"}


def encoded(photo: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    photo.save(out, fmt, **FORMATS[fmt])
    return out.getvalue()


def milliseconds(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def median_milliseconds(action: Callable[[], object], repeats: int) -> float:
    return statistics.median(milliseconds(action) for _ in range(repeats))


def bench_thumbnails(photo: Image.Image, requests: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), public_url="http://testserver")
        upgrade(settings.resolved_database_url)
        with TestClient(create_app(settings)) as client:
            headers = api_user(client)
            for fmt in FORMATS:
                data = encoded(photo, fmt)
                response = client.post(
                    "/api/v1/works", headers=headers, files={"file": (f"photo.{SUFFIXES[fmt]}", data)},
                    data={"title": fmt},
                )  # fmt: skip
                assert response.status_code == 201, response.text
                kept_ms, made_ms = time_thumbnail(client, f"/works/{response.json()['work_id']}/thumbnail", requests)
                print(
                    f"12-megapixel {fmt} ({len(data) / 1e6:.1f} MB), GET thumbnail, median of {requests}: kept preview "
                    f"{kept_ms:.1f} ms, made from the file {made_ms:.1f} ms (before), ratio {kept_ms / made_ms:.3f}"
                )


def time_thumbnail(client: TestClient, url: str, requests: int) -> tuple[float, float]:
    """Median ms of a request with the kept preview, and with it deleted first (alternated)."""

    def forget() -> None:
        with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
            session.execute(delete(WorkPreview))

    def drawn() -> None:
        assert client.get(url).status_code == 200

    kept, made = [], []
    for _ in range(requests):
        kept.append(milliseconds(drawn))
        forget()
        made.append(milliseconds(drawn))
    return statistics.median(kept), statistics.median(made)


def bench_verify_page_preview(photo: Image.Image, requests: int) -> None:
    for fmt in FORMATS:
        data = encoded(photo, fmt)
        picture, _ = decode_image(data)
        from_picture = median_milliseconds(partial(previews.preview_jpeg, picture), requests)
        from_file = median_milliseconds(partial(previews.preview_of_file, data, max_pixels=200_000_000), requests)
        print(
            f"verify page, preview of a 12-megapixel {fmt} upload: from the fingerprints' decode "
            f"{from_picture:.1f} ms, decoding the upload again {from_file:.1f} ms (before)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=15)
    args = parser.parse_args()
    photo = enlarged_photo("coffee", 4000, 3000, noise_sigma=4)
    bench_thumbnails(photo, args.requests)
    bench_verify_page_preview(photo, args.requests)


if __name__ == "__main__":
    main()

"""Form parsing of an upload held in memory (IPX's upload_memory_bytes) vs spooled to disk past Starlette's 1 MiB.

Usage: .venv/bin/python bench/upload_spool.py [--requests 40]

POST /api/v1/verify of a 12-megapixel JPEG (2.5 MB), through the ASGI app in this process: the body arrives in 64 kB
messages, as uvicorn hands a loopback upload over, and the app's whole answer is timed (form parsing, spooling, hashing,
fingerprints, the index). Starlette's spool rolls to disk at 1 MiB, and from then on each message is written through
the thread pool; IPX's default keeps the file in memory up to 16 MiB. The two settings alternate request by request
in the same run, on the same app (the setting is Starlette's class attribute), for a registered picture's copy and for
a picture that is not registered (bench/verify_speed.py's pictures are registered first).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from starlette.formparsers import MultiPartParser
from starlette.types import ASGIApp, Message

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from verify_speed import register_pictures, twelve_megapixel_jpeg  # noqa: E402

from ipx.app import create_app  # noqa: E402
from ipx.config import Settings  # noqa: E402
from ipx.migrations import upgrade  # noqa: E402

MESSAGE_BYTES = 64 * 1024
STARLETTE_SPOOL_BYTES = 1024 * 1024


async def timed_verify(app: ASGIApp, upload: bytes) -> float:
    """Seconds for the app to answer POST /api/v1/verify of `upload`, its body delivered in MESSAGE_BYTES pieces."""
    request = httpx.Request("POST", "http://testserver/api/v1/verify", files={"file": ("upload.jpg", upload)})
    body = request.read()
    ends = range(MESSAGE_BYTES, len(body) + MESSAGE_BYTES, MESSAGE_BYTES)
    messages = [
        {"type": "http.request", "body": body[end - MESSAGE_BYTES : end], "more_body": end < len(body)} for end in ends
    ]
    statuses: list[int] = []

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client sent everything; only a disconnect could follow
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/api/v1/verify", "raw_path": b"/api/v1/verify", "query_string": b"", "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in request.headers.items()],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80), "state": {},
    }  # fmt: skip
    started = time.perf_counter()
    await app(scope, receive, send)
    seconds = time.perf_counter() - started
    assert statuses == [200], statuses
    return seconds


async def compare(app: ASGIApp, what: str, upload: bytes, requests: int, in_memory_bytes: int) -> None:
    spools = {"spooled to disk past 1 MiB (Starlette's default)": STARLETTE_SPOOL_BYTES,
              f"in memory up to {in_memory_bytes >> 20} MiB (IPX's default)": in_memory_bytes}  # fmt: skip
    seconds: dict[str, list[float]] = {name: [] for name in spools}
    for size in spools.values():  # warm-up
        MultiPartParser.spool_max_size = size
        await timed_verify(app, upload)
    for _ in range(requests):
        for name, size in spools.items():
            MultiPartParser.spool_max_size = size
            seconds[name].append(await timed_verify(app, upload))
    MultiPartParser.spool_max_size = in_memory_bytes
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"POST /api/v1/verify, {what} ({len(upload) / 1e6:.1f} MB), {requests} requests each, alternated:")
    for name, median in medians.items():
        print(f"  {name}: p50 {median * 1000:.1f} ms, fastest {min(seconds[name]) * 1000:.1f} ms")
    disk, memory = medians.values()
    print(f"  in memory / spooled: {memory / disk:.2f} ({(disk - memory) * 1000:.1f} ms saved a request)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="timed requests per setting and upload (default 40)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), public_url="http://testserver")
        upgrade(settings.resolved_database_url)
        app = create_app(settings)
        with TestClient(app) as client:
            register_pictures(client)
            uploads = {
                "12-megapixel copy of a registered work": twelve_megapixel_jpeg("chelsea"),
                "12-megapixel JPEG of an unregistered picture": twelve_megapixel_jpeg(),
            }
            for what, upload in uploads.items():
                client.portal.call(compare, app, what, upload, args.requests, settings.upload_memory_bytes)


if __name__ == "__main__":
    main()

"""FingerprintEngine's turns: a bounded number of uploads are fingerprinted at once, the rest wait, then 503."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from ipx.errors import InvalidInput, ServiceBusy
from ipx.fingerprint.engine import ComputedFingerprints, FingerprintEngine
from tests.fingerprint.pictures import encoded

TEXT = b"one two three four five six seven eight nine ten eleven twelve"


def engine_whose_work_waits(gate: threading.Event, concurrency: int, queue_seconds: float) -> tuple[
    FingerprintEngine, list[int]
]:
    """An engine whose fingerprinting blocks on `gate`; the list records how many ran at once, after each start."""
    engine = FingerprintEngine(max_image_pixels=1_000_000, concurrency=concurrency, queue_seconds=queue_seconds)
    real = engine._compute
    running, observed, lock = [0], [], threading.Lock()

    def waiting(data: bytes, media_type: str) -> ComputedFingerprints:
        with lock:
            running[0] += 1
            observed.append(running[0])
        gate.wait()
        with lock:
            running[0] -= 1
        return real(data, media_type)

    engine._compute = waiting  # type: ignore[method-assign]
    return engine, observed


def wait_until(condition: Callable[[], bool]) -> None:
    while not condition():
        time.sleep(0.01)


def test_uploads_past_the_concurrency_wait_their_turn_and_all_complete() -> None:
    gate = threading.Event()
    engine, observed = engine_whose_work_waits(gate, concurrency=2, queue_seconds=60)
    with ThreadPoolExecutor(max_workers=5) as pool:
        results = [pool.submit(engine.compute, TEXT, "text/plain") for _ in range(5)]
        wait_until(lambda: len(observed) == 2)
        gate.set()
        computed = [result.result() for result in results]
    assert all(c.methods == ["sha256", "text"] for c in computed)
    assert max(observed) == 2 and len(observed) == 5


def test_an_upload_that_waits_past_the_queue_time_is_told_to_come_back() -> None:
    gate = threading.Event()
    engine, observed = engine_whose_work_waits(gate, concurrency=1, queue_seconds=0.05)
    with ThreadPoolExecutor(max_workers=1) as pool:
        holding = pool.submit(engine.compute, TEXT, "text/plain")
        wait_until(lambda: len(observed) == 1)
        with pytest.raises(ServiceBusy, match=r"waited 0\.05 s for its turn") as busy:
            engine.compute(TEXT, "text/plain")
        gate.set()
        holding.result()
    assert busy.value.status_code == 503 and busy.value.headers == {"Retry-After": "10"}
    assert engine.compute(TEXT, "text/plain").methods == ["sha256", "text"]  # the turn was given back


def test_a_failed_fingerprint_gives_its_turn_back() -> None:
    engine = FingerprintEngine(max_image_pixels=1_000_000, concurrency=1, queue_seconds=0.05)
    truncated = encoded(Image.effect_noise((300, 200), 60).convert("RGB"), "PNG")[:3000]
    for _ in range(3):
        with pytest.raises(InvalidInput, match="truncated or corrupt"):
            engine.compute(truncated, "image/png")
    assert engine.compute(TEXT, "text/plain").methods == ["sha256", "text"]

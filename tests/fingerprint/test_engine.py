"""FingerprintEngine's turns (a bounded number of uploads are fingerprinted at once, the rest wait, then 503) and its
start-up load (on a thread, in batches, stoppable)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select, update
from starlette.datastructures import State

from ipx.app import create_app
from ipx.config import Settings
from ipx.db import transaction
from ipx.errors import InvalidInput, ServiceBusy
from ipx.fingerprint import engine as engine_module
from ipx.fingerprint.engine import ComputedFingerprints, FingerprintEngine
from ipx.registry.models import WorkFingerprint
from tests.conftest import ApiUser
from tests.fingerprint.pictures import encoded, skimage_picture

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


def app_state_with_three_pictures(settings: Settings) -> State:
    """An app's state (not started: its index is empty) over a database where three pictures are registered."""
    with TestClient(create_app(settings)) as client:
        user = ApiUser(client, "three@example.org", "Three")
        for name in ("astronaut", "coffee", "chelsea"):
            assert user.register(encoded(skimage_picture(name)), title=name).status_code == 201
    return create_app(settings).state


def test_a_start_up_load_stopped_mid_way_ends_after_its_batch_and_leaves_nothing_to_wait_for(settings, monkeypatch):
    """A worker shut down during its minute-long load (100k images) must not hang on it, nor run what follows it."""
    monkeypatch.setattr(engine_module, "CATCH_UP_BATCH", 1)
    state = app_state_with_three_pictures(settings)
    engine = FingerprintEngine(max_image_pixels=1_000_000)
    in_first_batch, go_on, add_many = threading.Event(), threading.Event(), engine._images.add_many

    def held(images: list) -> None:
        in_first_batch.set()
        assert go_on.wait(30)
        add_many(images)

    engine._images.add_many = held  # type: ignore[method-assign]
    after_load: list[str] = []
    try:
        engine.start_loading(lambda: transaction(state.session_factory), then=lambda: after_load.append("ran"))
        assert in_first_batch.wait(30)
        stopping = threading.Thread(target=engine.stop_loading)
        stopping.start()
        wait_until(engine._stop_loading.is_set)
        go_on.set()
        stopping.join(30)
        assert not stopping.is_alive()
        assert len(engine._images) == 1 and after_load == []
        engine.wait_for_load()  # returns at once: nothing waits on a stopped load
    finally:
        go_on.set()
        state.engine.dispose()


def test_catch_up_batches_never_split_a_log_index(settings, monkeypatch):
    """Each batch starts after the last log index read: a batch ending inside one index's rows would lose the rest."""
    monkeypatch.setattr(engine_module, "CATCH_UP_BATCH", 2)
    state = app_state_with_three_pictures(settings)
    try:
        with transaction(state.session_factory) as session:
            seqs = session.scalars(select(WorkFingerprint.seq).order_by(WorkFingerprint.seq)).all()
            session.execute(update(WorkFingerprint).where(WorkFingerprint.seq == seqs[2]).values(seq=seqs[1]))
            batches, after = [], -1
            while rows := engine_module._rows_after(session, after):
                batches.append([row.work_id for row in rows])
                after = rows[-1].seq
        # [s0, s1] fills a batch whose last index goes on: s1 waits for the next one, which takes both of its rows
        assert [len(batch) for batch in batches] == [1, 2]
        assert len({work_id for batch in batches for work_id in batch}) == 3
    finally:
        state.engine.dispose()


def test_a_load_says_how_long_it_has_left_at_its_pace(monkeypatch):
    monkeypatch.setattr(engine_module.time, "monotonic", lambda: 100.0)
    assert engine_module.LoadProgress(0, 1000, 90.0).seconds_left() == engine_module.LOAD_RETRY_AFTER_SECONDS
    assert engine_module.LoadProgress(250, 1000, 90.0).seconds_left() == 30  # 10 s for a quarter: 30 s for the rest
    assert engine_module.LoadProgress(1000, 1000, 90.0).seconds_left() == 1

"""Perceptual detection through the API: prior_similar at registration and public POST /verify."""

from __future__ import annotations

import gc
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _edits import PASTED_AT, crop_corner, paste_in_page
from fastapi.testclient import TestClient
from PIL import Image, ImageOps
from skimage import data as skdata
from sqlalchemy.exc import OperationalError

from ipx.app import bootstrap, create_app
from ipx.db import transaction
from ipx.deps import NO_FILE
from ipx.fingerprint import engine as engine_module
from ipx.fingerprint.engine import FingerprintEngine
from ipx.fingerprint.image import MAX_JPEG_SCANS
from ipx.registry.previews import THUMBNAIL_SIDE
from tests.conftest import ApiUser
from tests.fingerprint.documents import pdf_whose_font_maps_a_code_to
from tests.fingerprint.pictures import (
    heif_holding_av1,
    progressive_jpeg_with_scans,
    tiff_with_fractional_strip_offset,
)


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, fmt, **options)
    return out.getvalue()


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skdata.astronaut())


@pytest.fixture(scope="module")
def coffee() -> Image.Image:
    return Image.fromarray(skdata.coffee())


def edited_copy(image: Image.Image, quality: int = 30) -> bytes:
    """A typical infringer's copy: cropped by 15%, mirrored, recompressed hard."""
    width, height = image.size
    cropped = image.crop((int(width * 0.15), int(height * 0.1), width, height))
    return encode(ImageOps.mirror(cropped), quality=quality)


def verify(client: TestClient, data: bytes, name: str = "query.jpg") -> dict:
    response = client.post("/api/v1/verify", files={"file": (name, data)})
    assert response.status_code == 200, response.text
    return response.json()


def test_edited_copy_is_flagged_at_registration_and_found_by_verify(client, make_user, astronaut, coffee):
    alice, mallory = make_user("Alice"), make_user("Mallory")
    original = alice.register(encode(astronaut, "PNG"), title="Astronaut", filename="astronaut.png").json()
    assert set(original["detection"]["methods"]) >= {"sha256", "image"}
    assert set(original["fingerprints"]["image"]) >= {"pdq", "phash"}

    copy = mallory.register(edited_copy(astronaut), title="My astronaut", filename="mine.jpg")
    assert copy.status_code == 201, copy.text
    prior = copy.json()["prior_similar"]
    assert [m["work_id"] for m in prior] == [original["work_id"]]
    assert prior[0]["method"] != "sha256" and 0 < prior[0]["similarity"] <= 1

    found = verify(client, edited_copy(astronaut, quality=40))
    assert found["exact_matches"] == []
    assert original["work_id"] in [m["work_id"] for m in found["similar_matches"]]
    exact = verify(client, encode(astronaut, "PNG"), "astronaut.png")
    assert [m["work_id"] for m in exact["exact_matches"]] == [original["work_id"]]
    assert {"work_id", "title", "registered_at", "method", "distance"} <= set(exact["exact_matches"][0])

    unrelated = verify(client, encode(coffee))
    assert unrelated["exact_matches"] == [] and unrelated["similar_matches"] == []


def sides(region: dict[str, float]) -> list[float]:
    return [region[side] for side in ("left", "top", "right", "bottom")]


def test_verify_says_where_a_picture_was_pasted_and_which_part_a_crop_kept(client, make_user, astronaut):
    original = make_user("Alice").register(encode(astronaut, "PNG"), title="Astronaut", filename="a.png").json()
    [pasted] = verify(client, encode(paste_in_page(astronaut)), "screenshot.jpg")["similar_matches"]
    assert (pasted["work_id"], pasted["method"]) == (original["work_id"], "orb")
    assert sides(pasted["region"]) == pytest.approx(PASTED_AT, abs=0.03)
    assert sides(pasted["registered_region"]) == pytest.approx([0, 0, 1, 1], abs=0.03)
    [cropped] = verify(client, encode(crop_corner(astronaut)), "crop.jpg")["similar_matches"]
    assert sides(cropped["registered_region"]) == pytest.approx([0, 0, 0.75, 0.75], abs=0.03)  # its top-left 75%
    [exact] = verify(client, encode(astronaut, "PNG"), "a.png")["exact_matches"]
    assert exact["region"] is None and exact["registered_region"] is None


def test_a_phone_photo_registered_as_heic_is_previewed_and_its_edited_jpeg_copy_flagged(client, make_user, astronaut):
    original = make_user("Alice").register(encode(astronaut, "HEIF", quality=80), filename="IMG_0001.HEIC").json()
    assert original["media_type"] == "image/heic"
    assert "image" in original["detection"]["methods"] and original["detection"]["note"] is None
    copy = make_user("Mallory").register(edited_copy(astronaut), title="Mine", filename="mine.jpg").json()
    assert [m["work_id"] for m in copy["prior_similar"]] == [original["work_id"]]
    preview = client.get(f"/works/{original['work_id']}/thumbnail")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(preview.content)).size == (THUMBNAIL_SIDE, THUMBNAIL_SIDE)


def test_an_heif_holding_a_picture_ipx_cannot_decode_is_registered_exact_only(client, make_user):
    payload = heif_holding_av1()
    work = make_user().register(payload, title="Scan", filename="scan.heif").json()
    assert work["detection"]["methods"] == ["sha256"]
    assert "coded in a way IPX cannot decode" in work["detection"]["note"]
    assert verify(client, payload, "scan.heif")["exact_matches"][0]["work_id"] == work["work_id"]
    assert client.get(f"/works/{work['work_id']}/thumbnail").status_code == 404


def test_own_edited_copy_is_not_flagged_as_prior_work_of_another(client, make_user, astronaut):
    alice = make_user("Alice")
    alice.register(encode(astronaut, "PNG"), title="Astronaut", filename="a.png")
    again = alice.register(edited_copy(astronaut), title="Astronaut, cropped", filename="b.jpg")
    assert again.status_code == 201 and again.json()["prior_similar"] == []


def test_text_copy_inside_a_longer_article_is_found_with_passages(client, make_user):
    rng = np.random.default_rng(7)
    vocabulary = [f"word{n}" for n in range(3000)]
    original = " ".join(rng.choice(vocabulary, 600))
    filler = " ".join(rng.choice([f"other{n}" for n in range(3000)], 900))
    work = make_user("Writer").register(original.encode(), title="Chapter one", filename="chapter.txt").json()
    assert "text" in work["detection"]["methods"]
    excerpt = " ".join(original.split()[100:300])
    found = verify(client, f"{filler[:2000]} {excerpt} {filler[2000:]}".encode(), "article.txt")
    match = next(m for m in found["similar_matches"] if m["work_id"] == work["work_id"])
    assert match["passages"], match


def test_a_tiny_pdf_that_expands_into_too_much_text_is_registered_exact_only(client, make_user):
    """2 kB whose font turns 40,000 codes into 10 million characters: was 32 s, 7 GB and a 500 in the server."""
    payload = pdf_whose_font_maps_a_code_to("\ufdfa" * 256, codes=40_000)
    work = make_user().register(payload, title="Pamphlet", filename="pamphlet.pdf").json()
    assert work["detection"]["methods"] == ["sha256"]
    assert "too long to fingerprint" in work["detection"]["note"], work
    found = verify(client, payload, "pamphlet.pdf")
    assert found["exact_matches"][0]["work_id"] == work["work_id"]
    assert "too long to fingerprint" in found["detection"]["note"], found


def test_unsupported_kinds_are_honestly_exact_only(client, make_user):
    payload = bytes(range(256)) * 40
    work = make_user().register(payload, title="Firmware", filename="blob.bin").json()
    assert work["detection"]["methods"] == ["sha256"]
    assert "exact SHA-256 only" in work["detection"]["note"]
    assert verify(client, payload, "blob.bin")["exact_matches"][0]["work_id"] == work["work_id"]


def test_verify_without_a_file_or_with_an_empty_one_says_what_to_attach(client):
    response = client.post("/api/v1/verify", data={"title": "no file"})
    assert response.status_code == 422 and response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"] == NO_FILE
    empty = client.post("/api/v1/verify", files={"file": ("empty.wav", b"", "audio/wav")})
    assert empty.status_code == 422 and empty.json()["detail"] == "The file is empty (0 bytes): attach the file itself."


def test_broken_images_get_clear_errors(client, make_user, astronaut):
    user = make_user()
    truncated = encode(astronaut, "PNG")[:5000]
    response = user.register(truncated, title="Broken", filename="broken.png")
    assert response.status_code == 422 and response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"]
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, "PNG")  # 400 megapixels, a few kB compressed
    response = user.register(bomb.getvalue(), title="Bomb", filename="bomb.png")
    assert response.status_code == 413, response.text
    assert "megapixels" in response.json()["detail"]
    many_scans = progressive_jpeg_with_scans(MAX_JPEG_SCANS)  # small, but each scan is a pass over the picture
    response = user.register(many_scans, title="Scans", filename="scans.jpg")
    assert response.status_code == 422 and "progressive scans" in response.json()["detail"], response.text
    verified = client.post("/api/v1/verify", files={"file": ("scans.jpg", many_scans)})
    assert verified.status_code == 422 and verified.json()["detail"] == response.json()["detail"]
    assert client.get("/api/v1/works").json()["total"] == 0


def test_a_picture_its_decoder_chokes_on_is_a_422_in_words_and_stores_nothing(client, make_user):
    hostile = tiff_with_fractional_strip_offset()  # a TypeError inside Pillow: was a 500
    response = make_user().register(hostile, title="Scan", filename="scan.tif")
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert "truncated or corrupt" in response.json()["detail"], response.text
    verified = client.post("/api/v1/verify", files={"file": ("scan.tif", hostile)})
    assert verified.status_code == 422 and verified.json()["detail"] == response.json()["detail"]
    assert client.get("/api/v1/works").json()["total"] == 0


def test_start_up_rebuild_reads_every_kind_in_batches(settings, astronaut, coffee, monkeypatch):
    """The rebuild streams rows CATCH_UP_BATCH at a time; a batch may mix images and texts and end mid-way."""
    monkeypatch.setattr(engine_module, "CATCH_UP_BATCH", 2)
    text = " ".join(np.random.default_rng(3).choice([f"word{n}" for n in range(3000)], 400))
    with TestClient(create_app(settings)) as first:
        user = ApiUser(first, "batches@example.org", "Batches")
        works = [
            user.register(encode(astronaut, "PNG"), title="Astronaut").json()["work_id"],
            user.register(text.encode(), title="Text", filename="text.txt").json()["work_id"],
            user.register(encode(coffee, "PNG"), title="Coffee").json()["work_id"],
        ]
    with TestClient(create_app(settings)) as restarted:
        engine = restarted.app.state.registry.fingerprints
        engine.wait_for_load()
        assert len(engine._images) == 2
        found = [verify(restarted, edited_copy(picture))["similar_matches"] for picture in (astronaut, coffee)]
        found.append(verify(restarted, " ".join(text.split()[50:350]).encode(), "excerpt.txt")["similar_matches"])
        assert [[m["work_id"] for m in matches][:1] for matches in found] == [[works[0]], [works[2]], [works[1]]]


def test_first_start_work_leaves_the_similarity_indexes_to_the_workers(settings, astronaut):
    """`ipx serve` bootstraps before starting workers: a process that serves nothing must not load the index."""
    with TestClient(create_app(settings)) as first:
        ApiUser(first, "boot@example.org", "Boot").register(encode(astronaut, "PNG"), title="A")
    state = create_app(settings).state
    try:
        bootstrap(state, settings)
        with transaction(state.session_factory) as session:
            assert state.registry.fingerprints.catch_up(session) == 1  # nothing was loaded before
    finally:
        state.engine.dispose()


def test_what_start_up_built_is_kept_out_of_the_collectors_scans_while_serving(settings):
    """At 100k images a full collection walked the index for 220 ms in the middle of a request (measured)."""
    with TestClient(create_app(settings)) as client:
        client.app.state.registry.fingerprints.wait_for_load()  # frozen once the index is loaded
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0  # and handed back when the app stops (tests start many apps)


def test_workers_catch_up_with_registrations_made_by_other_workers(settings, astronaut):
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        work = ApiUser(first, "w1@example.org", "Worker one").register(encode(astronaut, "PNG"), title="A").json()
        found = verify(second, edited_copy(astronaut))
        assert work["work_id"] in [m["work_id"] for m in found["similar_matches"]]
    with TestClient(create_app(settings)) as restarted:  # the index is rebuilt from the database at start-up
        assert work["work_id"] in [m["work_id"] for m in verify(restarted, edited_copy(astronaut))["similar_matches"]]


def test_a_restarted_worker_serves_at_once_and_uploads_to_compare_wait_for_its_index(
    make_settings, astronaut, monkeypatch
):
    """At 100k images the start-up load takes a minute. Meanwhile pages, records and exact-only uploads are served;
    verifying or registering a picture waits for the index (a search without it would answer "nothing similar"),
    then gets a 503 saying how far the load got, and nothing is stored."""
    settings = make_settings(fingerprint_queue_seconds=0.2)
    with TestClient(create_app(settings)) as first:
        work = ApiUser(first, "first@example.org", "First").register(encode(astronaut, "PNG"), title="A").json()
    gate, real_catch_up = threading.Event(), FingerprintEngine._catch_up

    def held(engine: FingerprintEngine, session: object) -> int:
        assert gate.wait(30)
        return real_catch_up(engine, session)  # type: ignore[arg-type]

    monkeypatch.setattr(FingerprintEngine, "_catch_up", held)
    with TestClient(create_app(settings)) as restarted:
        try:
            assert restarted.get("/").status_code == 200
            assert restarted.get(f"/api/v1/works/{work['work_id']}").status_code == 200
            exact_only = restarted.post("/api/v1/verify", files={"file": ("notes.zip", zipped("notes.txt", b"notes"))})
            refused = [
                restarted.post("/api/v1/verify", files={"file": ("copy.jpg", edited_copy(astronaut))}),
                ApiUser(restarted, "second@example.org", "Second").register(edited_copy(astronaut), title="B"),
            ]
            page = restarted.post("/verify", files={"file": ("copy.jpg", edited_copy(astronaut))})
        finally:
            gate.set()
        assert exact_only.status_code == 200, exact_only.text
        assert page.status_code == 503 and "still loading the fingerprints of registered works" in page.text
        for response in refused:
            assert response.status_code == 503 and response.headers["content-type"] == "application/problem+json"
            assert "still loading the fingerprints of registered works (0 of 1)" in response.json()["detail"]
            assert response.headers["retry-after"] == str(engine_module.LOAD_RETRY_AFTER_SECONDS)
            assert response.json()["detail"].endswith(f"in about {engine_module.LOAD_RETRY_AFTER_SECONDS} seconds.")
        assert restarted.get("/api/v1/works").json()["total"] == 1
        assert work["work_id"] in [m["work_id"] for m in verify(restarted, edited_copy(astronaut))["similar_matches"]]


def test_when_the_start_up_load_fails_each_request_catches_up_itself(settings, astronaut, monkeypatch, caplog):
    with TestClient(create_app(settings)) as first:
        work = ApiUser(first, "first@example.org", "First").register(encode(astronaut, "PNG"), title="A").json()
    failures, real_catch_up = [], FingerprintEngine._catch_up

    def failing_once(engine: FingerprintEngine, session: object) -> int:
        if not failures:
            failures.append("the database went away")
            raise OperationalError("SELECT", {}, Exception("the database went away"))
        return real_catch_up(engine, session)  # type: ignore[arg-type]

    monkeypatch.setattr(FingerprintEngine, "_catch_up", failing_once)
    with TestClient(create_app(settings)) as restarted:
        assert work["work_id"] in [m["work_id"] for m in verify(restarted, edited_copy(astronaut))["similar_matches"]]
    assert failures and "Loading the similarity indexes failed" in caplog.text


def zipped(name: str, data: bytes) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr(name, data)
    return archive.getvalue()


def test_a_start_up_load_that_fails_mid_batch_leaves_the_batch_to_the_next_catch_up(settings, astronaut, monkeypatch):
    with TestClient(create_app(settings)) as first:
        work = ApiUser(first, "first@example.org", "First").register(encode(astronaut, "PNG"), title="A").json()
    failures, parse = [], engine_module.PARSERS[engine_module.IMAGE]

    def failing_once(data: bytes) -> object:
        if not failures:
            failures.append("out of memory")
            raise MemoryError("out of memory")
        return parse(data)

    monkeypatch.setitem(engine_module.PARSERS, engine_module.IMAGE, failing_once)
    with TestClient(create_app(settings)) as restarted:
        assert work["work_id"] in [m["work_id"] for m in verify(restarted, edited_copy(astronaut))["similar_matches"]]
    assert failures


def stored_files(settings) -> list[Path]:
    return [path for path in (settings.data_dir / "blobs").rglob("*") if path.is_file()]


def test_when_every_fingerprinting_turn_is_taken_uploads_get_a_503_to_retry_and_nothing_is_stored(
    make_settings, astronaut
):
    settings = make_settings(fingerprint_concurrency=1, fingerprint_queue_seconds=0.05)
    photo = encode(astronaut, "PNG")
    with TestClient(create_app(settings)) as client:
        user = ApiUser(client, "busy@example.org", "Busy")
        assert client.app.state.registry.fingerprints._loaded.wait(5)  # the start-up load is not what is busy here
        turns = client.app.state.registry.fingerprints._turns
        assert turns.acquire(timeout=5)  # another upload is being fingerprinted
        try:
            refused = [
                user.register(photo, title="Astronaut", filename="astronaut.png"),
                client.post("/api/v1/verify", files={"file": ("astronaut.png", photo)}),
            ]
            page = client.post("/verify", files={"file": ("astronaut.png", photo)})
        finally:
            turns.release()
        for response in refused:
            assert response.status_code == 503 and response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"] == "10"
            assert "waited 0.05 s for its turn" in response.json()["detail"]
        assert page.status_code == 503 and page.headers["retry-after"] == "10"
        assert "waited 0.05 s for its turn" in page.text
        assert client.get("/api/v1/works").json()["total"] == 0
        assert stored_files(settings) == []
        assert user.register(photo, title="Astronaut", filename="astronaut.png").status_code == 201
        assert len(stored_files(settings)) == 1

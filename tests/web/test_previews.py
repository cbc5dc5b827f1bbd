"""Previews of image works: made at registration from the fingerprints' decode, kept, served without the file."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import delete, func, select

from ipx.db import transaction
from ipx.fingerprint import image as image_fingerprints
from ipx.fingerprint.image import ImageFingerprintError
from ipx.registry import previews
from ipx.registry.models import WorkPreview
from tests.conftest import ApiUser, png_bytes


def kept_previews(client: TestClient, work_id: str) -> list[bytes]:
    with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        return list(session.scalars(select(WorkPreview.jpeg).where(WorkPreview.work_id == work_id)))


def forget_previews(client: TestClient) -> None:
    """What a database upgraded from before previews were kept looks like."""
    with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        session.execute(delete(WorkPreview))


def test_a_preview_is_a_bounded_jpeg_never_enlarged() -> None:
    wide = Image.open(io.BytesIO(previews.preview_of_file(png_bytes(1, size=(1000, 250)), max_pixels=10_000_000)))
    assert wide.format == "JPEG" and wide.size == (previews.THUMBNAIL_SIDE, 120)
    small = Image.open(io.BytesIO(previews.preview_of_file(png_bytes(1, size=(64, 48)), max_pixels=10_000_000)))
    assert small.size == (64, 48)


def test_a_preview_refuses_what_is_not_an_image_or_too_many_pixels() -> None:
    with pytest.raises(ImageFingerprintError):
        previews.preview_of_file(b"not an image", max_pixels=10_000_000)
    with pytest.raises(ImageFingerprintError):
        previews.preview_of_file(png_bytes(1, size=(400, 400)), max_pixels=1000)


def test_registration_keeps_a_preview_so_the_thumbnail_needs_no_decoding(
    client: TestClient, make_user: Callable[..., ApiUser]
) -> None:
    data = png_bytes(21, size=(1200, 800))
    work = make_user().register(data).json()
    [kept] = kept_previews(client, work["work_id"])
    assert kept == previews.preview_of_file(data, max_pixels=10_000_000)  # the same picture a request would make
    client.app.state.registry.blobs.delete(work["sha256"])  # type: ignore[attr-defined]
    response = client.get(f"/works/{work['work_id']}/thumbnail")
    assert response.status_code == 200 and response.content == kept


def test_a_work_registered_before_previews_were_kept_gets_one_on_first_request(
    client: TestClient, make_user: Callable[..., ApiUser]
) -> None:
    work = make_user().register(png_bytes(22, size=(900, 600))).json()
    forget_previews(client)
    first = client.get(f"/works/{work['work_id']}/thumbnail")
    assert first.status_code == 200 and Image.open(io.BytesIO(first.content)).size == (previews.THUMBNAIL_SIDE, 320)
    assert kept_previews(client, work["work_id"]) == [first.content]
    client.app.state.registry.blobs.delete(work["sha256"])  # type: ignore[attr-defined]
    assert client.get(f"/works/{work['work_id']}/thumbnail").content == first.content


def test_no_kept_preview_and_no_stored_file_is_a_404_in_words(
    client: TestClient, make_user: Callable[..., ApiUser]
) -> None:
    work = make_user().register(png_bytes(23)).json()
    forget_previews(client)
    client.app.state.registry.blobs.delete(work["sha256"])  # type: ignore[attr-defined]
    response = client.get(f"/works/{work['work_id']}/thumbnail")
    assert response.status_code == 404 and "not in storage" in response.text
    assert kept_previews(client, work["work_id"]) == []


def test_two_first_requests_for_one_preview_both_answer(
    client: TestClient, make_user: Callable[..., ApiUser], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite takes its write lock at BEGIN, so the second request sees the first one's preview")
    work = make_user().register(png_bytes(24, size=(600, 600))).json()
    forget_previews(client)
    make = previews.preview_of_file

    def made_while_another_request_keeps_it(data: bytes, *, max_pixels: int) -> bytes:
        jpeg = make(data, max_pixels=max_pixels)
        with transaction(client.app.state.session_factory) as other:  # type: ignore[attr-defined]
            previews.keep_preview(other, work["work_id"], jpeg)
        return jpeg

    monkeypatch.setattr(previews, "preview_of_file", made_while_another_request_keeps_it)
    response = client.get(f"/works/{work['work_id']}/thumbnail")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        assert session.scalar(select(func.count()).select_from(WorkPreview)) == 1


def test_the_verify_page_previews_an_upload_from_the_fingerprints_decode(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes = []
    decode = image_fingerprints.decode_image

    def counted(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        decodes.append(args)
        return decode(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(image_fingerprints, "decode_image", counted)
    page = client.post("/verify", files={"file": ("photo.png", png_bytes(25, size=(800, 600)))})
    assert page.status_code == 200 and "data:image/jpeg;base64," in page.text
    assert len(decodes) == 1

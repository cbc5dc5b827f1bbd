"""The public verify page compares an uploaded file with the registry, side by side."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageOps
from skimage import data as skdata

from tests.conftest import ApiUser
from tests.web.test_browser import browser_page, live_server, shot  # noqa: F401  (fixtures)


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def infringing_copy(image: Image.Image) -> bytes:
    """Cropped by a fifth, mirrored and recompressed: what a copier typically posts."""
    width, height = image.size
    return jpeg(ImageOps.mirror(image.crop((width // 5, 0, width, height))), quality=35)


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    return Image.fromarray(skdata.chelsea())


def test_upload_finds_the_registered_original_side_by_side(client, make_user, chelsea):
    work = make_user("Cat Owner").register(jpeg(chelsea), title="Chelsea the cat", filename="chelsea.jpg").json()
    page = client.post("/verify", files={"file": ("found-online.jpg", infringing_copy(chelsea))})
    assert page.status_code == 200
    html = page.text
    assert "found-online.jpg" in html and "Chelsea the cat" in html and "Cat Owner" in html
    assert f"/works/{work['work_id']}" in html and "data:image/jpeg;base64," in html
    assert "1 registered work matches" in html


def test_unrelated_upload_says_no_match_and_bad_files_say_why(client, make_user, chelsea):
    make_user().register(jpeg(chelsea), title="Chelsea", filename="chelsea.jpg")
    unrelated = client.post("/verify", files={"file": ("coffee.jpg", jpeg(Image.fromarray(skdata.coffee())))})
    assert unrelated.status_code == 200 and "No registered work matches this file" in unrelated.text
    empty = client.post("/verify", files={"file": ("empty.jpg", b"")})
    assert empty.status_code == 422 and "The file is empty" in empty.text
    truncated = client.post("/verify", files={"file": ("cut.jpg", jpeg(chelsea)[:3000])})
    assert truncated.status_code == 422 and "truncated or corrupt" in truncated.text


@pytest.mark.browser
def test_verify_page_in_chromium_finds_an_edited_copy(live_server, browser_page, tmp_path: Path, chelsea):  # noqa: F811
    import httpx
    from playwright.sync_api import Page, expect

    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        owner = ApiUser(http, "owner@example.org", "Cat Owner")  # type: ignore[arg-type]
        assert owner.register(jpeg(chelsea), title="Chelsea the cat", filename="chelsea.jpg").status_code == 201
    copy = tmp_path / "found-online.jpg"
    copy.write_bytes(infringing_copy(chelsea))

    page: Page = browser_page  # type: ignore[assignment]
    page.goto(live_server.url + "/verify")
    page.get_by_label("File to compare").set_input_files(str(copy))
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page.locator(".compare-pair")).to_have_count(1)
    expect(page.locator(".compare-pair")).to_contain_text("Chelsea the cat")
    expect(page.locator(".compare-pair")).to_contain_text("Cat Owner")
    shot(page, "20-verify-upload-match")

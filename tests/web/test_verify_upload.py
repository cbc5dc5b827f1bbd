"""The public verify page compares an uploaded file with the registry, side by side."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from _edits import PASTED_AT, paste_in_page
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
    # The copy is all of the query (nothing to outline there) and the right four fifths of the registered picture.
    assert "Outlined: where the registered work appears in it" not in html
    assert "Outlined: the part your file shows" in html
    assert outlines(html) == [pytest.approx([20, 0, 100, 100], abs=3)]


def outlines(html: str) -> list[list[float]]:
    """Each outline drawn on the page, as [left, top, right, bottom] in percent of its picture."""
    rectangles = re.findall(r'<rect x="([\d.]+)%" y="([\d.]+)%" width="([\d.]+)%" height="([\d.]+)%"', html)
    return [[x, y, x + w, y + h] for x, y, w, h in (map(float, found) for found in rectangles)]


def test_a_picture_pasted_into_a_page_is_outlined_where_it_appears(client, make_user, chelsea):
    make_user("Cat Owner").register(jpeg(chelsea), title="Chelsea the cat", filename="chelsea.jpg")
    html = client.post("/verify", files={"file": ("screenshot.jpg", jpeg(paste_in_page(chelsea)))}).text
    assert "Outlined: where the registered work appears in it" in html
    assert "Outlined: the part your file shows" not in html  # all of it
    assert outlines(html) == [pytest.approx([100 * side for side in PASTED_AT], abs=3)]


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
    expect(page.get_by_role("img", name="Chelsea the cat, with the part your file shows outlined")).to_be_visible()
    shot(page, "20-verify-upload-match")

    screenshot = tmp_path / "screenshot.jpg"
    screenshot.write_bytes(jpeg(paste_in_page(chelsea)))
    page.get_by_label("File to compare").set_input_files(str(screenshot))
    page.get_by_role("button", name="Compare", exact=True).click()
    outlined = page.get_by_role("img", name="Your file, with the part where the registered work appears outlined")
    expect(outlined).to_be_visible()
    picture, rectangle = outlined.locator("img").bounding_box(), outlined.locator("rect").bounding_box()
    assert picture and rectangle  # drawn over the picture where it was pasted, not over all of it
    assert picture["x"] < rectangle["x"] and rectangle["x"] + rectangle["width"] < picture["x"] + 0.7 * picture["width"]
    shot(page, "21-verify-upload-outlined")

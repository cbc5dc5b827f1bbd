"""Shared pieces of the browser tests: Debian's Chromium through Playwright, a live server, screenshots.

Playwright cannot download its own browsers here, so every test launches /usr/bin/chromium; with
CI=true a missing Chromium fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from ipx.migrations import upgrade
from tests.conftest import IN_CI
from tests.integration.live import ServerProcess, add_staff, ipx_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
IPX_CLI = Path(sys.executable).parent / "ipx"
SCREENS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screens"
PASSWORD = "correct horse 42"
STAFF_EMAIL, STAFF_PASSWORD = "sam@ipx.example", "staff password 1"


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """uvicorn on a free port with its own data directory and freshly migrated SQLite database."""
    yield from _live_server(tmp_path)


@pytest.fixture
def live_server_with_staff(tmp_path: Path) -> Iterator[ServerProcess]:
    """live_server, with a staff account (STAFF_EMAIL, STAFF_PASSWORD)."""
    yield from _live_server(tmp_path, with_staff=True)


def _live_server(tmp_path: Path, *, with_staff: bool = False) -> Iterator[ServerProcess]:
    database_url = f"sqlite:///{tmp_path / 'ipx.db'}"
    upgrade(database_url)
    if with_staff:
        add_staff(database_url, STAFF_EMAIL, STAFF_PASSWORD)
    server = ipx_server(database_url, tmp_path / "data", workers=1)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def browser_page() -> Iterator[object]:
    """A page with JavaScript off: IPX's pages must work without it."""
    yield from _browser_page(javascript=False)


@pytest.fixture
def scripted_browser_page() -> Iterator[object]:
    """A page with JavaScript on, for the one flow that needs it (Stripe's card form on the order page)."""
    yield from _browser_page(javascript=True)


def _browser_page(*, javascript: bool) -> Iterator[object]:
    if not CHROMIUM.exists():
        message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860}, java_script_enabled=javascript,
                                      accept_downloads=True)
        yield context.new_page()
        context.close()
        browser.close()


def verify_offline(page: object, bundle: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    """`ipx verify` as a visitor runs it: with IPX's signing keys saved from the page's own link."""
    with page.expect_download() as keys_download:  # type: ignore[attr-defined]
        page.get_by_role("link", name="IPX's signing keys").click()  # type: ignore[attr-defined]
    keys = bundle.parent / "ipx-keys.json"
    keys_download.value.save_as(keys)
    return subprocess.run([str(IPX_CLI), "verify", str(bundle), *map(str, files), "--keys", str(keys)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})


def shot(page: object, name: str) -> None:
    """A full-page screenshot, taken from the top: a page scrolled by a click or a fill would draw its sticky
    header over the middle of the picture."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")  # type: ignore[attr-defined]
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def read_qr(locator: object, *, attempts: int = 10, pause_seconds: float = 0.3) -> str:
    """What a phone camera would read from the QR code on screen (OpenCV's detector), "" if nothing.

    Visible is not yet painted: on a loaded machine the first screenshot of a freshly opened certificate
    has come back blank, so it is taken again (a few times, briefly apart) until a code can be read.
    OpenCV's classic detector reads nothing from about 1.6 % of perfectly rendered codes, by their content
    (16 of 1,000 random certificate URLs; a CI run failed on one); its ArUco-based detector read all of them:
    both are asked, the ArUco one first.
    """
    detectors = (cv2.QRCodeDetectorAruco(), cv2.QRCodeDetector())
    for _ in range(attempts):
        png = locator.screenshot()  # type: ignore[attr-defined]
        pixels = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
        for detector in detectors:
            text, _, _ = detector.detectAndDecode(pixels)
            if text:
                return str(text)
        time.sleep(pause_seconds)
    return ""

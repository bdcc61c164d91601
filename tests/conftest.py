"""Shared test fixtures.

Reference data lives in ``../shared`` beside the repository (or where ``SMARTIMAGING_SHARED``
points). Tests that need it take the ``shared_dir`` fixture and are skipped, with the reason
printed, when it is absent.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_root() -> Path:
    env = os.environ.get("SMARTIMAGING_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Root of the shared reference data; skips the test when it is not there."""
    root = _shared_root()
    if not root.is_dir():
        pytest.skip(f"shared reference data not found at {root} (set SMARTIMAGING_SHARED to its path)")
    return root


@dataclass(frozen=True)
class BrowserRender:
    """What headless Chromium saw when it opened a page.

    Attributes
    ----------
    console_errors
        Console messages of type ``error`` and uncaught page errors, in order.
    failed_requests
        URLs the page asked for that did not load (a report must not fetch anything).
    screenshot
        Path of a full-page PNG screenshot.
    width, height
        Size of the screenshot in pixels.
    broken_images
        ``src`` (truncated) of ``<img>`` elements that did not decode (``naturalWidth == 0``).
    n_images
        Number of ``<img>`` elements on the page.
    section_ids
        ``id`` of every ``<section>`` element, in document order.
    """

    console_errors: list[str]
    failed_requests: list[str]
    screenshot: Path
    width: int
    height: int
    broken_images: list[str]
    n_images: int
    section_ids: list[str]


def _chromium_path() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def chromium_render() -> Callable[[Path, Path], BrowserRender]:
    """Open a local HTML file in real headless Chromium (Debian's ``chromium``) via Playwright.

    Skips when Chromium or Playwright is missing, unless ``SMARTIMAGING_REQUIRE_BROWSER`` is set (the
    test command sets it after installing Chromium), in which case the test fails instead.
    """
    executable = _chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - depends on the environment
        sync_playwright = None  # type: ignore[assignment]
    missing = []
    if executable is None:
        missing.append("Chromium (Debian package chromium; scripts/ensure_chromium.sh installs it)")
    if sync_playwright is None:
        missing.append("playwright (pip install -e '.[test]')")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("SMARTIMAGING_REQUIRE_BROWSER"):
            pytest.fail(message + " and SMARTIMAGING_REQUIRE_BROWSER is set")
        pytest.skip(message)

    def render(page_path: Path, screenshot: Path) -> BrowserRender:
        errors: list[str] = []
        failed: list[str] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=executable,
                # as root in a sandbox without a network: no sandbox, no GPU, no background traffic
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
                page.on("requestfailed", lambda r: failed.append(r.url))
                page.goto(page_path.resolve().as_uri(), wait_until="load")
                broken = page.eval_on_selector_all(
                    "img",
                    "els => els.filter(e => !(e.complete && e.naturalWidth > 0)).map(e => e.src.slice(0, 80))",
                )
                n_images = page.eval_on_selector_all("img", "els => els.length")
                sections = page.eval_on_selector_all("section", "els => els.map(e => e.id)")
                page.screenshot(path=str(screenshot), full_page=True)
            finally:
                browser.close()
        with Image.open(screenshot) as png:
            width, height = png.size
        return BrowserRender(errors, failed, screenshot, width, height, broken, n_images, sections)

    return render

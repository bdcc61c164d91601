"""The HTML report in a real browser: headless Chromium opens it offline, draws every image, logs no
console error and asks for nothing over the network; the full-page screenshot is a real page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from test_report_html import SECTIONS, sample_data

from smartimaging.report.html import write_report


def test_report_opens_in_chromium_without_console_errors(tmp_path: Path, chromium_render) -> None:
    page = write_report(sample_data(), tmp_path / "report.html")
    seen = chromium_render(page, tmp_path / "report.png")
    assert seen.console_errors == []
    assert seen.failed_requests == []
    assert seen.n_images >= 1 and seen.broken_images == []
    assert [s for s in seen.section_ids if s in SECTIONS] == SECTIONS
    # a laid-out page, not a blank or error screen: full width, many screens tall, not one colour
    assert seen.width == 1280 and seen.height > 1500
    with Image.open(seen.screenshot) as png:
        pixels = np.asarray(png.convert("L"))
    assert pixels.std() > 10


def test_the_check_catches_a_broken_page(tmp_path: Path, chromium_render) -> None:
    """The browser check is not vacuous: a script error and a missing image are reported."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><body><section id='x'>x</section><img src='missing.png'>"
        "<script>undefined_function()</script></body></html>",
        encoding="utf-8",
    )
    seen = chromium_render(page, tmp_path / "broken.png")
    assert any("undefined_function" in e for e in seen.console_errors)
    assert seen.broken_images and seen.failed_requests

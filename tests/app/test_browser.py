"""The app in a real browser: Debian's chromium driven by Playwright against `streamlit run`.

Skipped only when chromium is not installed (CI: `apt-get install -y chromium`). The server listens
on 127.0.0.1 only; the screenshot lands in test-results/screenshots/ (git-ignored) for a human look.
"""
from __future__ import annotations

import re
import shutil

import pytest

from app.measure import free_port, launch_chromium, start_server, stop_server, wait_ready, wait_idle

from ..conftest import REPO
from .conftest import photo_bytes

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install -y chromium)")
SHOTS = REPO / "test-results" / "screenshots"


@pytest.fixture
def server(models, app_env, tmp_path):
    port = free_port()
    env = {k: str(v) for k, v in {"PRETEXT_LAB_MODELS": models, "PRETEXT_LAB_DATA": app_env["data"], "PRETEXT_LAB_REPORTS": app_env["reports"],
                                  "PRETEXT_LAB_CACHE": tmp_path / "cache"}.items()}
    proc = start_server(port, env=env, log=tmp_path / "server.log")
    try:
        wait_ready(port, proc, timeout=90)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)
        print((tmp_path / "server.log").read_text()[-3000:])


def test_browser__upload_a_flower_photo_and_see_the_rotation_prediction(server, tmp_path):
    from playwright.sync_api import sync_playwright

    name, data = photo_bytes("sunflower")
    photo = tmp_path / name
    photo.write_bytes(data)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 2200})
            page.goto(server)
            page.get_by_role("heading", name="Pretext explorer").wait_for(timeout=60_000)
            wait_idle(page, 60_000)
            page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(photo))
            heading = page.get_by_role("heading", name=re.compile(re.escape(name) + r" — the model names \d of 4 turns right"))
            heading.wait_for(timeout=60_000)
            wait_idle(page, 60_000)
            section = page.locator("[data-testid='stLayoutWrapper']").filter(has=heading).last  # the photo's bordered box
            assert section.get_by_text(re.compile(r"^(✅|❌) says ")).count() == 4
            assert section.get_by_text("upright again").count() + section.get_by_text("still off by").count() == 1
            assert page.locator("[data-testid='stException']").count() == 0
            # another task in the picker: only its panel is on screen, with an answer for the upload
            page.get_by_text("No pretraining", exact=True).click()
            page.get_by_text("Random network").first.wait_for(timeout=60_000)
            wait_idle(page, 60_000)
            assert page.get_by_text(re.compile(r"^(✅|❌) says ")).count() == 0
            assert "task=random_init" in page.url
            page.screenshot(path=str(SHOTS / "browser-explorer-upload.png"), full_page=True)
        finally:
            browser.close()
    assert (SHOTS / "browser-explorer-upload.png").stat().st_size > 10_000

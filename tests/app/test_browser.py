"""The app in a real browser: Debian's chromium driven by Playwright against `streamlit run`.

Skipped only when chromium is not installed (CI: `apt-get install -y chromium`). The server listens
on 127.0.0.1 only; the screenshot lands in test-results/screenshots/ (git-ignored) for a human look.
"""
from __future__ import annotations

import contextlib
import re
import shutil

import pytest

from app.measure import free_port, launch_chromium, start_server, stop_server, wait_ready, wait_idle

from ..conftest import REPO
from .conftest import photo_bytes

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install -y chromium)")
SHOTS = REPO / "test-results" / "screenshots"


@contextlib.contextmanager
def serve(models, data, reports, tmp_path):
    """``streamlit run`` over these folders on a free port; yields its URL, stops it after."""
    port = free_port()
    env = {k: str(v) for k, v in {"PRETEXT_LAB_MODELS": models, "PRETEXT_LAB_DATA": data, "PRETEXT_LAB_REPORTS": reports,
                                  "PRETEXT_LAB_CACHE": tmp_path / "cache"}.items()}
    proc = start_server(port, env=env, log=tmp_path / "server.log")
    try:
        wait_ready(port, proc, timeout=90)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)
        print((tmp_path / "server.log").read_text()[-3000:])


@pytest.fixture
def server(models, app_env, tmp_path):
    with serve(models, app_env["data"], app_env["reports"], tmp_path) as url:
        yield url


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


# plotly's own geometry of a chart's plot area, in page pixels: [left, top, width, height]
PLOT_AREA = """(i) => { const gd = document.querySelectorAll('.js-plotly-plot')[i]; const s = gd._fullLayout._size;
  const r = gd.getBoundingClientRect(); return [r.left + s.l, r.top + s.t, s.w, s.h]; }"""
# page pixels of one photo dot: [x, y, its file] (first trace with customdata, its first point)
FIRST_DOT = """(i) => { const gd = document.querySelectorAll('.js-plotly-plot')[i]; const fl = gd._fullLayout;
  const r = gd.getBoundingClientRect(); const t = gd._fullData.find(d => d.customdata && d.customdata.length);
  return [r.left + fl._size.l + fl.xaxis.l2p(t.x[0]), r.top + fl._size.t + fl.yaxis.l2p(t.y[0]), t.customdata[0][0]]; }"""


def test_browser__map_lasso_fills_the_gallery_highlights_both_maps_and_hover_shows_the_photo(server, app_env):
    from playwright.sync_api import sync_playwright

    from app import photos

    idx = photos.index(app_env["data"])
    n_test = int(idx.is_test.sum())
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server + "/embeddings")
            page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=120_000)
            wait_idle(page, 60_000)
            assert page.locator(".map-gallery").count() == 0
            # a lasso round the whole right map (the default drag mode): every test photo
            page.evaluate("() => document.querySelectorAll('.js-plotly-plot')[1].scrollIntoView({block: 'center'})")
            x, y, w, h = page.evaluate(PLOT_AREA, 1)
            corners = [(x + 2, y + 2), (x + w - 2, y + 2), (x + w - 2, y + h - 2), (x + 2, y + h - 2), (x + 2, y + 4)]
            page.mouse.move(*corners[0])
            page.mouse.down()
            for c in corners[1:]:
                page.mouse.move(*c, steps=10)
            page.mouse.up()
            page.locator(".map-gallery").wait_for(timeout=60_000)
            wait_idle(page, 60_000)
            assert page.get_by_text(f"{n_test} photos selected on the right map").count() == 1
            for cls in idx.classes:  # one test photo per class in the fixture photo set
                assert page.get_by_text(f"1 of {n_test} selected is a {cls}").count() == 1
            assert page.locator(".map-gallery img").count() == n_test
            # the left map (another encoder) highlights the same photos
            names = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => gd.data.map(t => t.name))")
            assert all(f"selected ({n_test})" in n for n in names)
            # hover a dot of the left map: its photo in a card beside the pointer
            page.evaluate("() => document.querySelectorAll('.js-plotly-plot')[0].scrollIntoView({block: 'center'})")
            dx, dy, file = page.evaluate(FIRST_DOT, 0)
            page.mouse.move(dx - 40, dy - 40)
            page.mouse.move(dx, dy, steps=8)
            card = page.locator("#pretext-map-hover")
            card.wait_for(state="visible", timeout=10_000)
            assert file.rsplit("/", 1)[-1] in card.inner_text()
            assert card.locator("img").get_attribute("src").startswith("data:image/jpeg;base64,")
            assert page.evaluate("() => document.querySelector('#pretext-map-hover img').naturalWidth") > 0  # a decodable photo
            page.screenshot(path=str(SHOTS / "browser-map-selection-hover.png"))
            page.mouse.move(5, 5)
            card.wait_for(state="hidden", timeout=10_000)
            # clear selection: the gallery goes, and so do the highlights
            page.get_by_role("button", name="Clear selection").click()
            page.locator(".map-gallery").wait_for(state="detached", timeout=60_000)
            wait_idle(page, 60_000)
            names = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => gd.data.map(t => t.name))")
            assert len(names) == 2 and not any(str(n).startswith("selected") for ns in names for n in ns)
            assert page.locator("[data-testid='stException']").count() == 0
        finally:
            browser.close()


@pytest.fixture
def talk_server(task_models, app_env, tmp_path):
    """The app over every task's model, a learning map and a recorded fine-tune: every slide has its picture."""
    from .test_talk import learning_file, replay_file

    reports = tmp_path / "reports"
    shutil.copytree(app_env["reports"], reports)
    learning_file(task_models)
    replay_file(reports)
    with serve(task_models, app_env["data"], reports, tmp_path) as url:
        yield url


# slow: steps all seven slides in a real browser (~17 s); CI runs it
@pytest.mark.slow
def test_browser__talk_every_slide_fits_720p_in_presenter_mode_and_keys_step(talk_server):
    from playwright.sync_api import sync_playwright

    from app.talk import story
    from app.talk_shots import check_talk

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            recs = check_talk(page, talk_server, 1280, 720, shots=SHOTS)  # steps with →
            assert [r["step"] for r in recs] == list(range(1, len(story.SLIDES) + 1))
            for r, slide in zip(recs, story.SLIDES):
                assert r["title"] == slide.title and f"step={r['step']}" in r["url"]
                assert not r["problems"], (r["step"], r["problems"])
                assert not r["geometry"]["sidebar"]
                assert page.locator("[data-testid='stException']").count() == 0
            # the other keys: PageUp back, Home to the first, End to the last; a reload stays where it was
            for key, expect in (("PageUp", len(story.SLIDES) - 1), ("Home", 1), ("PageDown", 2), ("End", len(story.SLIDES)), ("ArrowLeft", len(story.SLIDES) - 1)):
                page.keyboard.press(key)
                page.wait_for_function("(t) => document.querySelector('h1.talk-title').textContent === t", arg=story.SLIDES[expect - 1].title, timeout=60_000)
                assert f"step={expect}" in page.url
            page.reload()
            page.wait_for_function("(t) => document.querySelector('h1.talk-title')?.textContent === t", arg=story.SLIDES[-2].title, timeout=60_000)
        finally:
            browser.close()


@pytest.fixture
def repo_server(tmp_path):
    """The app over the repository's shipped models, bundled photos and reports (a real fine-tune lasts minutes)."""
    with serve(REPO / "models", REPO / "data" / "flowers", REPO / "reports", tmp_path) as url:
        yield url, tmp_path / "server.log"


# slow: a real fine-tune in a real browser (~20 s); CI runs it
@pytest.mark.slow
def test_browser__closing_the_tab_stops_its_fine_tune_within_seconds(repo_server):
    """A fine-tune is started in the Few-shot lab, then its tab is closed: the server stops the job
    (its log says so) about SESSION_GONE_AFTER seconds later, not minutes."""
    import time

    from playwright.sync_api import sync_playwright

    from app.fewshot import SESSION_GONE_AFTER

    url, log = repo_server
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/fewshot")
            page.get_by_text("100%", exact=True).click(timeout=120_000)  # 1320 steps per arm: minutes of work
            page.get_by_text("Fine-tune the whole network").click()
            page.get_by_role("button", name="▶ Start fine-tuning").click(timeout=120_000)
            page.get_by_role("button", name="⏹ Stop").wait_for(timeout=180_000)  # the job is running
            assert "stopped at step" not in log.read_text()
            page.close()  # the tab goes; the browser (another tab's owner) stays
            closed = time.time()
            while "stopped at step" not in log.read_text() and time.time() - closed < SESSION_GONE_AFTER + 40:
                time.sleep(0.5)
            took = time.time() - closed
        finally:
            browser.close()
    text = log.read_text()
    assert "stopped at step" in text and "browser session ended" in text, text[-2000:]
    assert SESSION_GONE_AFTER - 1 <= took <= SESSION_GONE_AFTER + 40

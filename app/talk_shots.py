"""Talk mode in a real browser: every slide in presenter mode at projector sizes, checked and timed.

    python -m app.talk_shots            # 1920×1080 and 1280×720, shipped models and reports

For each window size it opens ``talk?present=1&step=1`` in chromium, steps through the slides
with the → key, and records per slide: whether anything scrolls, whether the slide's picture or
chart is fully on screen, whether the sidebar shows, and the time from the key press to the next
slide settled. Writes ``reports/talk-latency.json`` (medians per size), screenshots to
``test-results/screenshots/talk-<size>-<n>.jpg`` and a contact sheet
``reports/screenshots/talk-slides.jpg``; opens the offline export (``app.talk_export``) too and
screenshots its slides. ``tests/app/test_browser.py`` runs ``check_talk`` on the fixture models.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from app.config import display
from app.measure import REPO, free_port, launch_chromium, start_server, stop_server, wait_idle, wait_ready
from app.talk import story

SIZES = ((1920, 1080), (1280, 720))
GEOMETRY_JS = """() => {
  const H = innerHeight, W = innerWidth;
  const over = (el) => el ? Math.max(0, el.scrollHeight - el.clientHeight) : 0;
  const scroll = Math.max(over(document.scrollingElement), over(document.querySelector('[data-testid="stMain"]')),
                          over(document.querySelector('[data-testid="stAppViewContainer"]')));
  const sel = '[class*="st-key-talk-visual"] img, [class*="st-key-talk-visual"] .js-plotly-plot, [data-testid="stAlert"]';
  const boxes = [...document.querySelectorAll(sel)].map(e => e.getBoundingClientRect())
      .filter(r => r.width > 0 && r.height > 0).map(r => [r.left, r.top, r.right, r.bottom]);
  const sb = document.querySelector('[data-testid="stSidebar"]');
  const sidebar = !!sb && getComputedStyle(sb).display !== 'none' && sb.getBoundingClientRect().width > 0;
  const next = document.querySelector('[class*="st-key-talk-next"] button');
  const nb = next ? next.getBoundingClientRect() : null;
  const title = document.querySelector('h1.talk-title');
  return {W, H, scroll, boxes, sidebar, nav_bottom: nb ? nb.bottom : null, title: title ? title.textContent : null};
}"""


VISUAL_JS = """() => !!document.querySelector('[class*="st-key-talk-visual"] img, [class*="st-key-talk-visual"] .js-plotly-plot, [data-testid="stAlert"]')"""


def settle(page, timeout_ms: int = 180_000) -> float:
    """Until the slide's visual (or its note) is drawn and the page is idle; returns that time."""
    page.wait_for_function(VISUAL_JS, timeout=timeout_ms)
    return wait_idle(page, timeout_ms)


def slide_ok(g: dict) -> list[str]:
    """What is wrong with one slide's geometry (empty = fits): scrolling, no visual, a visual or the
    navigation off screen."""
    bad = []
    if g["scroll"] > 2:
        bad.append(f"scrolls by {g['scroll']} px")
    if not g["boxes"]:
        bad.append("no picture, chart or note")
    for left, top, right, bottom in g["boxes"]:
        if left < -1 or top < -1 or right > g["W"] + 1 or bottom > g["H"] + 1:
            bad.append(f"visual at ({left:.0f},{top:.0f})–({right:.0f},{bottom:.0f}) is not inside {g['W']}×{g['H']}")
    if g["nav_bottom"] is None or g["nav_bottom"] > g["H"] + 1:
        bad.append(f"navigation below the window (bottom {g['nav_bottom']})")
    return bad


def check_talk(page, base_url: str, width: int, height: int, shots: Path | None = None, key: str = "ArrowRight") -> list[dict]:
    """Open ``talk?present=1&step=1`` at width × height and step through every slide with ``key``.
    Returns per slide {step, title, geometry, problems, step_seconds, url}."""
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{base_url}/talk?present=1&step=1")
    page.locator("h1.talk-title").wait_for(timeout=120_000)
    settle(page)
    out, n = [], len(story.SLIDES)
    for k in range(1, n + 1):
        g = page.evaluate(GEOMETRY_JS)
        rec = {"step": k, "title": g["title"], "geometry": g, "problems": slide_ok(g), "url": page.url}
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / f"talk-{width}x{height}-{k}.jpg"), type="jpeg", quality=80)
        if k < n:
            t0 = time.time()
            page.keyboard.press(key)
            page.wait_for_function("(t) => { const h = document.querySelector('h1.talk-title'); return h && h.textContent !== t; }", arg=g["title"], timeout=120_000)
            rec["step_seconds"] = settle(page) - t0
        out.append(rec)
    return out


def export_shots(browser, html: Path, shots: Path, width: int = 1280, height: int = 720) -> list[dict]:
    """Open the exported HTML from disk (no server) and screenshot each slide; returns what each shows."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(html.resolve().as_uri())
    page.wait_for_load_state("load")
    out = []
    for k in range(1, len(story.SLIDES) + 1):
        page.wait_for_timeout(400)
        info = page.evaluate("""() => { const s = document.querySelector('section.on'); const r = s.getBoundingClientRect();
          return {title: s.querySelector('h1').textContent, plots: s.querySelectorAll('.js-plotly-plot').length,
                  imgs: [...s.querySelectorAll('img')].filter(i => i.naturalWidth > 0).length, fits: r.height <= innerHeight + 1,
                  hash: location.hash}; }""")
        page.screenshot(path=str(shots / f"talk-export-{k}.jpg"), type="jpeg", quality=80)
        out.append(info)
        page.keyboard.press("ArrowRight")
    page.close()
    return out


def contact_sheet(files: list[Path], out: Path, cols: int = 4, width: int = 480) -> None:
    from PIL import Image

    ims = [Image.open(f).convert("RGB") for f in files]
    h = int(width * ims[0].height / ims[0].width)
    rows = (len(ims) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * width + (cols - 1) * 6, rows * h + (rows - 1) * 6), "white")
    for i, im in enumerate(ims):
        sheet.paste(im.resize((width, h), Image.Resampling.LANCZOS), ((i % cols) * (width + 6), (i // cols) * (h + 6)))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, quality=72, optimize=True)


def main(argv: list[str] | None = None) -> int:
    from playwright.sync_api import sync_playwright

    p = argparse.ArgumentParser(prog="python -m app.talk_shots", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(REPO / "reports" / "talk-latency.json"))
    p.add_argument("--shots", default=str(REPO / "test-results" / "screenshots"))
    p.add_argument("--sheet", default=str(REPO / "reports" / "screenshots" / "talk-slides.jpg"))
    a = p.parse_args(argv)
    shots, out = Path(a.shots), Path(a.out)
    port = free_port()
    proc = start_server(port, log=out.with_suffix(".server.log"))
    res: dict = {"command": "python -m app.talk_shots", "sizes": {}}
    try:
        wait_ready(port, proc)
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            page = browser.new_page()
            for w, h in SIZES:
                recs = check_talk(page, f"http://127.0.0.1:{port}", w, h, shots)
                steps = [r["step_seconds"] for r in recs if "step_seconds" in r]
                res["sizes"][f"{w}x{h}"] = {"median_step_seconds": statistics.median(steps), "max_step_seconds": max(steps),
                                            "slides": [{k: r[k] for k in ("step", "title", "problems", "step_seconds") if k in r} for r in recs]}
                print(f"{w}×{h}: median step {statistics.median(steps):.2f} s, problems: {sum(len(r['problems']) for r in recs)}")
            from app import talk_export

            html = shots / "talk.html"
            talk_export.main(["--out", str(html), "--overwrite"])
            res["export"] = {"bytes": html.stat().st_size, "slides": export_shots(browser, html, shots)}
            browser.close()
    finally:
        stop_server(proc)
    out.write_text(json.dumps(res, indent=1) + "\n")
    contact_sheet([shots / f"talk-1280x720-{k}.jpg" for k in range(1, len(story.SLIDES) + 1)], Path(a.sheet))
    print(f"wrote {display(out)} and {display(Path(a.sheet))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

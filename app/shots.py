"""Screenshots of every explorer panel, as a user sees them: ``python -m app.shots``.

Starts the app (``app.measure.start_server``), uploads a real photo and a drawing of a flower
(made here with Pillow: a child's drawing is the classic "unlike the training photos" input), then
opens each model's panel from the task picker and saves what a 1400×1000 window shows to
``test-results/screenshots/panel-<folder>.jpg`` (git-ignored: a dozen full shots would not fit the
clone budget), then one contact sheet of them all to ``reports/screenshots/explorer-panels.jpg``, and
the Few-shot lab's *Classify your photos* with a flower, the drawing, a real non-flower photo and a
black photo to ``reports/screenshots/fewshot-classify.jpg``.
Real chromium, real models from ``$PRETEXT_LAB_MODELS``.
"""
from __future__ import annotations

import argparse
import tempfile
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, ImageDraw

from .config import REPO, data_dir, models_dir
from .measure import free_port, launch_chromium, start_server, stop_server, wait_idle, wait_ready

SHOT_QUALITY = 50  # as app.measure: the tracked repository has a size budget


def flower_drawing(path: Path, size: int = 480) -> Path:
    """A flat-colour drawing of a daisy-like flower (sky, grass, stem, leaves, petals, a disc) → PNG."""
    img = Image.new("RGB", (size, size), (150, 200, 250))
    d = ImageDraw.Draw(img)
    s = size / 480
    d.rectangle([0, 380 * s, size, size], fill=(90, 170, 70))
    d.line([240 * s, 230 * s, 240 * s, 440 * s], fill=(40, 120, 40), width=round(12 * s))
    d.ellipse([240 * s, 320 * s, 330 * s, 360 * s], fill=(60, 150, 60))
    d.ellipse([150 * s, 340 * s, 240 * s, 380 * s], fill=(60, 150, 60))
    cx, cy = 240 * s, 180 * s
    import math

    for k in range(12):
        a = 2 * math.pi * k / 12
        px, py = cx + 80 * s * math.cos(a), cy + 80 * s * math.sin(a)
        d.ellipse([px - 38 * s, py - 38 * s, px + 38 * s, py + 38 * s], fill=(255, 255, 255), outline=(60, 60, 60), width=2)
    d.ellipse([cx - 50 * s, cy - 50 * s, cx + 50 * s, cy + 50 * s], fill=(245, 190, 30), outline=(120, 80, 0), width=3)
    img.save(path)
    return path


@contextmanager
def served_browser(out: Path):
    """One app server (log in ``out``) and one chromium for every shot → (browser, the app's base URL);
    both stopped afterwards. Each shot opens its own page, i.e. its own app session."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    proc = start_server(port, log=out / "shots.server.log")
    try:
        wait_ready(port, proc)
        with sync_playwright() as p:
            browser = launch_chromium(p)
            try:
                yield browser, f"http://127.0.0.1:{port}"
            finally:
                browser.close()
    finally:
        stop_server(proc)


def panels_shots(browser, base: str, out: Path, photo: Path, drawing: Path, width: int = 1400, height: int = 1000) -> list[Path]:
    """The explorer with ``photo`` and ``drawing`` (``flower_drawing``) uploaded: its top, then each
    model's panel → ``out``/explorer-top.jpg and ``out``/panel-<folder>.jpg."""
    from .inference import list_models

    names = [e.name for e in list_models(models_dir()) if e.ok]
    saved = []
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(f"{base}/?task={names[0]}")
    page.get_by_role("heading", name="Pretext explorer").wait_for(timeout=120_000)
    wait_idle(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files([str(photo), str(drawing)])
    page.get_by_text("flower-drawing.png").first.wait_for(timeout=120_000)
    wait_idle(page)
    shot = out / "explorer-top.jpg"
    page.screenshot(path=str(shot), type="jpeg", quality=SHOT_QUALITY)
    saved.append(shot)
    for name in names:
        page.get_by_test_id("stMain").evaluate("e => e.scrollTo(0, 0)")
        page.locator("[data-testid='stButtonGroup'] button").filter(has_text=_label_of(name)).first.click()
        page.wait_for_timeout(300)
        wait_idle(page)
        page.locator("h3").first.scroll_into_view_if_needed()
        page.locator("h3").first.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
        shot = out / f"panel-{name}.jpg"
        page.screenshot(path=str(shot), type="jpeg", quality=SHOT_QUALITY)
        saved.append(shot)
    page.close()
    return saved


def classify_shot(browser, base: str, photo: Path, drawing: Path, path: Path, tmp: Path, width: int = 1400, height: int = 1000) -> Path:
    """The Few-shot lab's *Classify your photos* with a black photo, a real non-flower photo
    (scikit-learn's china.jpg), a bundled flower and a flower drawing uploaded, after the page's own
    linear probe → a 1400×1000 JPEG at ``path``: what each photo is called, and which are flagged."""
    from .novelty import sample_photos

    samples = sample_photos()
    files = []
    for name, key in (("black.png", "black 200×200"), ("china.jpg", "china.jpg (scikit-learn: a pagoda)")):
        (tmp / name).write_bytes(samples[key])
        files.append(tmp / name)
    files += [photo, drawing]  # the flagged one first: on screen
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(f"{base}/fewshot")
    page.get_by_text("Test accuracy").first.wait_for(timeout=180_000)
    wait_idle(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").last.set_input_files([str(f) for f in files])
    page.get_by_text("One flat colour").first.wait_for(timeout=120_000)  # the black photo's verdict
    wait_idle(page)
    page.get_by_role("heading", name="Classify your photos").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), type="jpeg", quality=SHOT_QUALITY)
    page.close()
    return path


def _label_of(name: str) -> str:
    """The picker's label of a model folder (as the explorer writes it)."""
    from . import panels
    from .inference import list_models

    e = next(e for e in list_models(models_dir()) if e.name == name)
    label = panels.panel_for(e.task).label
    return label if e.name == e.task else f"{label} · {e.name}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.shots", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "test-results" / "screenshots"), help="the full screenshots")
    ap.add_argument("--sheet", default=str(REPO / "reports" / "screenshots" / "explorer-panels.jpg"), help="the contact sheet")
    ap.add_argument("--photo", default="", help="the photo to upload (default: a bundled test photo)")
    ap.add_argument("--classify", default=str(REPO / "reports" / "screenshots" / "fewshot-classify.jpg"),
                    help="the Few-shot lab's Classify your photos with a flower, a drawing, a non-flower and a black photo")
    a = ap.parse_args(argv)
    from . import photos

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    photo = Path(a.photo) if a.photo else data_dir() / photos.index(data_dir()).picks(1)[-1]
    with served_browser(out) as (browser, base), tempfile.TemporaryDirectory() as tmp:
        drawing = flower_drawing(Path(tmp) / "flower-drawing.png")
        shots = panels_shots(browser, base, out, photo, drawing)
        for p in shots:
            print(p)
        print(contact_sheet(shots[1:], Path(a.sheet)))
        print(classify_shot(browser, base, photo, drawing, Path(a.classify), Path(tmp)))
    return 0


def contact_sheet(shots: list[Path], path: Path, columns: int = 4, width: int = 1400, quality: int = 60) -> Path:
    """The panels' screenshots side by side, ``columns`` a row, ``width`` px wide in all → JPEG."""
    images = [Image.open(p).convert("RGB") for p in shots]
    w = width // columns
    h = round(w * images[0].height / images[0].width)
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (w * columns, h * rows), "white")
    for i, img in enumerate(images):
        sheet.paste(img.resize((w, h), Image.Resampling.LANCZOS), ((i % columns) * w, (i // columns) * h))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=quality, optimize=True)
    return path


if __name__ == "__main__":
    raise SystemExit(main())

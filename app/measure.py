"""Measure the app as a user meets it, in a real browser: ``python -m app.measure``.

Starts ``streamlit run app/streamlit_app.py`` on a free loopback port, drives Debian's chromium
through Playwright and writes ``reports/app-latency.json`` with, in seconds:

- ``server_ready``: process start → the health endpoint answers;
- ``first_paint``: process start → the explorer's title is on screen;
- ``first_answers``: process start → the rotation panel's answers for the bundled photos on screen
  (the first page run: it imports torch for the tasks' image functions);
- ``pretext_upload``: one photo uploaded, once the first page is drawn → the rotation panel's answer
  for it is on screen
  (``pretext_upload_idle``: → the page is idle);
- ``pretext_switch_task``: click *Colouring* in the task picker → its answer for the upload on screen;
- ``panel_compute_ms``: each model's panel's network work for one photo (``Panel.compute``: onnxruntime
  and the task's image functions, no Streamlit), median over 10 test photos, in this process;
- ``map_first_open``: click on Embedding map → both maps drawn (cold server: first map ever);
- ``linear_probe_page``: click on Few-shot lab → scores of probe and scratch shown (compute included);
- ``linear_probe_compute``: the probe alone (after a warm-up call), in this process, at 10% and 100%;
- ``finetune_10pct``: Start → both fine-tunes (encoder, then scratch) scored, protocol schedule
  (the browser shares the CPU with the server here; ``finetune_10pct_compute`` is the job alone,
  ``finetune_10pct_train_in_server`` the training seconds of each phase that the page itself reports);

and the server's peak resident memory (``VmHWM``) before the fine-tune and at the end. Uses the models in ``$PRETEXT_LAB_MODELS``
(default ``models/``) and the bundled photos.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .config import REPO, data_dir, display, models_dir

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    """``streamlit run`` on 127.0.0.1:port from the repository root (so .streamlit/config.toml applies)."""
    cmd = [sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py", "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    out = open(log, "wb") if log else subprocess.DEVNULL
    return subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    url = f"http://127.0.0.1:{port}/_stcore/health"
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"streamlit did not answer on {url} within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def peak_rss_mb(pid: int, field: str = "VmHWM") -> float | None:
    """Peak (VmHWM) or current (VmRSS) resident memory of a process, MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def launch_chromium(playwright):
    exe = shutil.which("chromium")
    if not exe:
        raise RuntimeError("chromium is not installed (Debian: apt-get install -y chromium)")
    return playwright.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)


IDLE_JS = """() => !document.querySelector('[data-testid="stStatusWidget"], [data-testid="stSkeleton"], [data-stale="true"]')
                && [...document.images].every(i => i.complete)"""


def wait_idle(page, timeout_ms: int = 180_000) -> float:
    """Until the script run has finished and the page has settled: no "running" indicator, no
    skeleton or stale (faded, about to be replaced) element, every image loaded. Checked again
    500 ms later, because the indicator appears only a moment after a rerun starts. Returns the
    ``time.time()`` at which the page was last seen settling (what latencies are measured to)."""
    page.wait_for_timeout(300)
    page.wait_for_function(IDLE_JS, timeout=timeout_ms)
    settled = time.time()
    page.wait_for_timeout(500)
    if not page.evaluate(IDLE_JS):
        page.wait_for_function(IDLE_JS, timeout=timeout_ms)
        settled = time.time()
    return settled


def wait_count(locator, n: int, timeout: float = 180.0) -> None:
    """Until ``locator`` matches at least ``n`` elements."""
    end = time.time() + timeout
    while locator.count() < n:
        if time.time() > end:
            raise TimeoutError(f"fewer than {n} matches after {timeout:.0f} s")
        time.sleep(0.1)


SHOT_QUALITY = 50  # JPEG quality of the screenshots: small enough for the tracked repository's size budget
FIRST_ANSWER = re.compile(r" — the model names \d of 4 turns right")  # the rotation panel's answer line
TRAIN_SECONDS = re.compile(r"steps in ([0-9.]+) s")  # the few-shot page's caption of a finished fine-tune


def screenshot(page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True, type="jpeg", quality=SHOT_QUALITY)


def measure(out: Path, photo: Path, shots: Path | None) -> dict:
    from playwright.sync_api import sync_playwright

    port = free_port()
    res: dict = {"models_dir": display(models_dir()), "data_dir": display(data_dir()), "photo": display(photo),
                 "models": sorted(p.name for p in models_dir().iterdir() if (p / "model.json").is_file())}
    t0 = time.time()
    proc = start_server(port, log=out.with_suffix(".server.log"))
    try:
        wait_ready(port, proc)
        res["server_ready"] = round(time.time() - t0, 2)
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_role("heading", name="Pretext explorer").wait_for(timeout=120_000)
            res["first_paint"] = round(time.time() - t0, 2)
            # the page is ready for an upload once the bundled photos' answers are drawn: an upload before
            # that interrupts the first run and pays its imports (torch, ~1.5 s) on top of its own answer
            page.get_by_text(FIRST_ANSWER).first.wait_for(timeout=120_000)
            res["first_answers"] = round(time.time() - t0, 2)
            wait_idle(page)
            t = time.time()
            page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(photo))
            page.get_by_text(re.compile(re.escape(photo.name) + FIRST_ANSWER.pattern)).first.wait_for(timeout=120_000)
            res["pretext_upload"] = round(time.time() - t, 2)  # upload → the rotation panel's answer for it on screen
            res["pretext_upload_idle"] = round(wait_idle(page) - t, 2)
            if shots:
                screenshot(page, shots / "explorer-upload.jpg")
            # another task: click it in the picker → its panel's answer for the upload on screen
            t = time.time()
            page.get_by_text("Colouring", exact=True).click()
            page.get_by_text(re.compile(r"(Closer|Not closer) to the real colours")).first.wait_for(timeout=120_000)
            res["pretext_switch_task"] = round(time.time() - t, 2)
            wait_idle(page)
            t = time.time()
            page.get_by_role("link", name="Embedding map").click()
            page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=180_000)
            res["map_first_open"] = round(time.time() - t, 2)
            wait_idle(page)
            if shots:
                screenshot(page, shots / "embedding-map.jpg")
            t = time.time()
            page.get_by_role("link", name="Few-shot lab").click()
            page.get_by_text("Test accuracy").first.wait_for(timeout=180_000)
            res["linear_probe_page"] = round(time.time() - t, 2)
            wait_idle(page)
            res["server_peak_rss_mb_before_finetune"] = peak_rss_mb(proc.pid)
            page.get_by_text("Fine-tune the whole network").click()
            page.get_by_role("button", name="Start fine-tuning").wait_for(timeout=60_000)
            t = time.time()
            page.get_by_role("button", name="Start fine-tuning").click()
            page.get_by_role("button", name="Stop").wait_for(timeout=60_000)
            if shots:
                page.wait_for_timeout(6000)
                screenshot(page, shots / "fewshot-finetune-running.jpg")
            page.get_by_text("vs scratch").first.wait_for(timeout=600_000)
            res["finetune_10pct"] = round(time.time() - t, 2)
            wait_idle(page)
            # the page's own "N of M steps in X s" captions: training time inside the server, to tell the
            # browser's share of the wall time from training slowed by sharing the CPU
            res["finetune_10pct_train_in_server"] = [float(m) for text in page.get_by_text(TRAIN_SECONDS).all_inner_texts()
                                                     for m in TRAIN_SECONDS.findall(text)]
            if shots:
                screenshot(page, shots / "fewshot-finetune-done.jpg")  # talk mode: python -m app.talk_shots
            browser.close()
        res["server_peak_rss_mb"] = peak_rss_mb(proc.pid)
    finally:
        stop_server(proc)
    res["panel_compute_ms"] = panel_compute()
    res["linear_probe_compute"] = probe_compute()
    res["finetune_10pct_compute"] = finetune_compute()
    return res


def panel_compute(n_photos: int = 10) -> dict:
    """{model: median ms of its explorer panel's network work for one photo} (``Panel.compute``;
    a warm-up photo first, so model loading and the test photos' gallery are not counted)."""
    import logging
    import statistics

    from . import panels, photos
    from .inference import list_models

    logging.getLogger("streamlit").setLevel(logging.ERROR)  # cached calls outside a server warn once each
    idx = photos.index(data_dir())
    files = idx.picks(3)[: n_photos + 1]
    images = [photos.open_bundled(data_dir(), f) for f in files]
    out = {}
    for e in list_models(models_dir()):
        compute = panels.panel_for(e.task).compute if e.ok else None
        if compute is None:
            continue
        compute(e, images[0])
        times = []
        for img in images[1:]:
            t = time.perf_counter()
            compute(e, img)
            times.append(1000 * (time.perf_counter() - t))
        out[e.name] = round(statistics.median(times), 1)
    return out


def probe_compute() -> dict:
    """The linear probe alone on cached features (10% and 100% labels), seconds."""
    from . import embedding, fewshot, photos
    from .inference import list_models

    idx = photos.index(data_dir())
    out = {}
    for e in list_models(models_dir()):
        lay = embedding.find(e.path, e.card, idx.key, idx.files) if e.ok else None
        if lay is None:
            continue
        fewshot.linear_probe(lay, 0.05, 1)  # warm-up: imports of scikit-learn and the labelled-subset code
        for f in (0.1, 1.0):
            t = time.time()
            fewshot.linear_probe(lay, f, 0)
            out[f"{e.name}@{f:.0%}"] = round(time.time() - t, 3)
    return out


def finetune_compute() -> dict:
    """The 10% fine-tune job alone (the featured pretrained model, then scratch), in this process, no browser."""
    from . import fewshot, photos
    from .inference import list_models

    entries = [e for e in list_models(models_dir()) if e.ok]
    if not entries:
        return {}
    from .inference import featured_model

    e = next((m for m in entries if m.name == featured_model(entries)), entries[0])
    t = time.time()
    data = photos.decoded(data_dir(), int(e.card["input"]["image_size"]))
    job = fewshot.FinetuneJob(model_dir=e.path, card=e.card, data=data, fraction=0.1, seed=0, cfg=fewshot.finetune_config(False), encoder_name=e.name)
    job.start().join()
    return {"model": e.name, "total": round(time.time() - t, 2), "state": job.state,
            "phases": {r.encoder: {"train": r.info.get("train_seconds"), "eval": r.info.get("eval_seconds"), "steps": r.info.get("steps"),
                                   "test_accuracy": round(r.accuracy, 4)} for r in job.results}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.measure", description="Measure app latencies in a real browser.")
    ap.add_argument("--out", default=str(REPO / "reports" / "app-latency.json"))
    ap.add_argument("--photo", default="", help="photo to upload (default: a bundled test photo)")
    ap.add_argument("--screenshots", default="", help="folder for screenshots taken on the way (default: none)")
    a = ap.parse_args(argv)
    from . import photos

    photo = Path(a.photo) if a.photo else data_dir() / photos.index(data_dir()).picks(1)[-1]
    shots = Path(a.screenshots) if a.screenshots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    res = measure(out, photo, shots)
    res.update({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_before": [round(x, 2) for x in load_before]},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    os.replace(tmp, out)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

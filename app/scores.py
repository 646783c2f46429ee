"""How well each shipped model does its own pretext task on the test photos, in plain words with the
chance level — ``python -m app.scores`` writes ``reports/panel-scores.json`` and ``.md``.

Every number is measured with the explorer's own compute (each task's ``Panel.answer`` in
``app/panels/<task>.py``; rotation's ``app.inference.turn_probabilities`` over ``all_rotations``, the
same turns ``rotation_grid`` shows) on the bundled test split (``data/flowers/split.csv``, photos no model trained on), decoded at each model's
own input size by the training package (``app.photos.decoded``), so a panel's "right 80 times in
100" is what a viewer would count over those photos. Each score comes with its baseline: the chance
level of guessing, or the plain answer a reconstruction must beat (grey, a flat fill, bicubic).

Randomness is fixed: jigsaw's puzzle for test photo ``i`` is ``np.random.default_rng([seed, i])``;
PIRL's and SimCLR's views are drawn from ``seed``; the chance level of DeepCluster's group purity
shuffles the labels with ``default_rng([seed, 1])``.

Each task's score, its plain words and its baseline are its panel's (``Panel.score``, ``score_sub``,
``words``, ``baseline``); this module runs them over the model folders and writes the report, and
holds what they share (``Scoring``, ``on_pretext``, ``open_sub``, the words for shares).

The report records, per model, the sha256 of its weights file (from model.json's "files"), so the
app shows a score only for the very weights it was measured on (``load``); ``sentence`` turns a
model's entry into the plain words a panel shows. No Streamlit calls here (the panels are imported
for their plain functions).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .config import data_dir, display, models_dir, reports_dir

FORMAT = "pretext-lab-panel-scores/1"
REPORT_JSON = "panel-scores.json"
REPORT_MD = "panel-scores.md"
DEFAULT_SEED = 0
CONTRAST_LIMIT = 1000  # PIRL / SimCLR: at most this many test photos to find the right one among
VISIBLE_DB = 0.5  # a PSNR gain below this cannot be seen (the super-resolution panel's threshold)
COMMAND = "python -m app.scores"


# -- words -------------------------------------------------------------------------------------------
def in_100(share: float) -> str:
    """A share in [0, 1] → its count in 100 for a reader: 0.804 → "80", 0.125 → "12.5", 0.00144 → "0.1"."""
    n = 100.0 * float(share)
    if n == 0:
        return "0"
    if n < 1:
        return f"{n:.1g}"
    if abs(n - round(n)) < 0.05 or n >= 20:
        return f"{round(n)}"
    return f"{n:.1f}"


def times_in_100(share: float) -> str:
    """0.804 → "80 times in 100"; 0.01 → "1 time in 100"."""
    n = in_100(share)
    return f"{n} time{'' if n == '1' else 's'} in 100"


def guessing(s: dict[str, Any]) -> str:
    """"guessing: 25" for a score with a chance level, else ""."""
    return f"guessing: {in_100(s['chance'])}" if "chance" in s else ""


def _panels() -> dict:
    from . import panels

    return panels.load_all()


def _sentence_one(s: dict[str, Any]) -> str:
    """One score (an item of an entry's "scores") → its plain words (its task's ``Panel.words``)."""
    panel = _panels().get(s.get("kind"))
    return panel.words(s) if panel is not None and panel.words is not None else ""


def place(rank: float) -> str:
    """A median place in plain words: 3 → "3rd", 2.5 → "2.5"."""
    r = float(rank)
    if abs(r - round(r)) > 1e-9:
        return f"{r:g}"
    n = int(round(r))
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def sentence(entry: dict[str, Any]) -> str:
    """A model's entry of the report (what ``load`` returns) → its scores in plain words with the
    chance level or the plain answer to beat, e.g. "names the turn right 80 times in 100 (guessing:
    25)"; a multi-task model's heads are joined with "; " and named. "" when nothing was scored."""
    scores = [s for s in (entry or {}).get("scores") or [] if isinstance(s, dict)]
    parts = []
    for s in scores:
        try:
            words = _sentence_one(s)
        except (KeyError, TypeError, ValueError):
            continue
        if words:
            parts.append(f"{s['head']} head: {words}" if s.get("head") and len(scores) > 1 else words)
    return "; ".join(parts)


# -- reading a report ----------------------------------------------------------------------------------
def weights_sha256(card: dict[str, Any] | None) -> str | None:
    """The sha256 model.json's "files" lists for the model's weights file, else None."""
    card = card or {}
    files = card.get("files") if isinstance(card.get("files"), dict) else {}
    name = (card.get("weights") or {}).get("file", "weights.safetensors") if isinstance(card.get("weights"), dict) else "weights.safetensors"
    v = files.get(name)
    return v if isinstance(v, str) else None


def load(path: str | Path, model_name: str, weights_sha256: str | None) -> dict[str, Any] | None:
    """``model_name``'s entry of the report at ``path`` when it was measured on weights whose
    sha256 is ``weights_sha256``; None when the report is absent or unreadable, lacks the model,
    or was measured on other weights (or ``weights_sha256`` is None)."""
    if not weights_sha256:
        return None
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(report, dict) or report.get("format") != FORMAT or not isinstance(report.get("models"), dict):
        return None
    entry = report["models"].get(model_name)
    if not isinstance(entry, dict) or entry.get("weights_sha256") != weights_sha256:
        return None
    return entry


# -- what the panels' scores share -------------------------------------------------------------------------
@dataclass
class Scoring:
    """One model being scored: ``model`` (``app.inference.OnnxModel``), the test photos at its size
    (``images`` uint8 (N, 3, S, S), ``labels`` (N,)), ``seed`` (puzzles, views, shuffles), ``limit``
    (contrastive tasks: at most this many photos at once) and ``entry``, its report entry, which a
    panel's score adds to (``add``, ``note``)."""

    model: Any
    images: np.ndarray
    labels: np.ndarray
    seed: int
    limit: int
    entry: dict[str, Any]

    def add(self, score: dict[str, Any]) -> None:
        self.entry["scores"].append(score)

    def note(self, line: str) -> None:
        self.entry["notes"].append(line)


def on_pretext(job: Scoring, measure: Callable[[Any], dict[str, Any]],
               meaning: Callable[[Any, dict[str, Any]], str | None] | None = None) -> str | None:
    """The model opened for its panel (``app.pretext.open_pretext``) → ``measure(p)``, its score, added
    with ``meaning(config, card)``'s line on the card's number when there is one; or, when the
    folder lacks what the panel needs, that one line (the model is then skipped)."""
    from . import pretext

    p = pretext.open_pretext(job.model)
    if p.problem:
        return p.problem
    job.add(measure(p))
    line = meaning(p.config, job.model.card) if meaning is not None else None
    if line:
        job.note(line)
    return None


def open_sub(job: Scoring, sub: str):
    """A multi-task model's sub-task ``sub`` opened for its panel (``app.pretext.open_sub_pretext``),
    or None after a note saying why its head cannot be scored."""
    from . import pretext

    try:
        p = pretext.open_sub_pretext(job.model, sub)
    except Exception as e:  # noqa: BLE001
        job.note(f"its {sub} head cannot be opened ({(str(e).splitlines() or [''])[0][:160]}), so it is not scored")
        return None
    if p.problem:
        job.note(f"{sub} head not scored: {p.problem}")
        return None
    return p


def card_acc(card: dict[str, Any]) -> float | None:
    """The card's pretext-test "acc", the number whose meaning a panel may spell out (``on_pretext``'s ``meaning``)."""
    acc = (card.get("pretext_test") or {}).get("acc")
    return acc if isinstance(acc, (int, float)) else None


def spread(n: int, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` of ``n`` photos, evenly spread (as ``app.pretext.test_gallery``)."""
    if n <= limit:
        return np.arange(n)
    return np.linspace(0, n - 1, limit).round().astype(int)


# -- one model ---------------------------------------------------------------------------------------------
def _skip(entry: dict[str, Any], why: str) -> dict[str, Any]:
    entry["skipped"] = why
    return entry


def score_model(model_entry, data_root: str | Path, seed: int = DEFAULT_SEED, limit: int = CONTRAST_LIMIT,
                decode: Callable[[str | Path, int], Any] | None = None) -> dict[str, Any]:
    """A model folder (``app.inference.ModelEntry``) → its report entry: {"model", "task",
    "weights_sha256", "image_size" (px measured at), "test_photos", "scores": [score dicts],
    "notes": [lines], "skipped": why or None, "card_pretext_test", "seconds"}. Nothing raises for a
    model that cannot be scored: it is skipped with the reason."""
    from . import panels, pretext
    from .inference import OnnxModel

    t0 = time.perf_counter()
    card = model_entry.card or {}
    entry: dict[str, Any] = {"model": model_entry.name, "task": card.get("task"), "weights_sha256": weights_sha256(card),
                             "image_size": None, "test_photos": 0, "scores": [], "notes": [], "skipped": None,
                             "card_pretext_test": card.get("pretext_test")}
    try:
        if not model_entry.ok:
            return _skip(entry, f"the model folder cannot be used: {model_entry.error}")
        task = card["task"]
        panel = panels.panel_for(task)
        if panel.unscored:
            return _skip(entry, panel.unscored)
        model = OnnxModel(model_entry.path, card)
        entry["image_size"] = model.image_size
        decode = decode or _decode
        split = decode(data_root, model.image_size)
        gal = pretext.test_gallery(split, None)
        images, labels = gal["images"], np.asarray(gal["labels"])
        entry["test_photos"] = int(len(images))
        if panel.score is None:
            return _skip(entry, f"unknown task {task!r}: no pretext score is defined for it here")
        why = panel.score(Scoring(model, images, labels, int(seed), int(limit), entry))
        if why:
            return _skip(entry, why)
    except Exception as e:  # noqa: BLE001 — one broken model must not stop the report; its line says why
        first = (str(e).splitlines() or [type(e).__name__])[0][:240]
        return _skip(entry, f"could not be scored ({type(e).__name__}: {first})")
    finally:
        entry["seconds"] = round(time.perf_counter() - t0, 1)
    if not entry["scores"]:
        entry["skipped"] = entry["skipped"] or "no head of this model could be scored"
    return entry


def _decode(root: str | Path, size: int):
    from . import photos

    return photos.decoded(root, size)


# -- the report ------------------------------------------------------------------------------------------
def build(models_root: str | Path, data_root: str | Path, seed: int = DEFAULT_SEED, limit: int = CONTRAST_LIMIT,
          only: list[str] | None = None, command: str = COMMAND, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Score every model folder under ``models_root`` (``only``: these names) on the test photos of
    ``data_root`` → the report dict written by ``write``."""
    from . import photos
    from .inference import list_models

    t0 = time.perf_counter()
    index = photos.index(data_root)
    out: dict[str, Any] = {
        "format": FORMAT, "command": command, "made_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": int(seed), "contrast_limit": int(limit),
        "data": {"root": display(Path(data_root)), "split_sha256": index.key, "test_photos": int(index.is_test.sum()),
                 "classes": list(index.classes)},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, onnxruntime CPU",
        "models": {},
    }
    for e in list_models(models_root):
        if only and e.name not in only:
            continue
        if progress:
            progress(f"{e.name}…")
        got = score_model(e, data_root, seed, limit)
        out["models"][e.name] = got
        if progress:
            progress(f"{e.name}: {sentence(got) or got['skipped']} ({got['seconds']} s)")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def _baseline_words(s: dict[str, Any]) -> str:
    """The baseline one score is weighed against, in a few words (its task's ``Panel.baseline``, else its chance level)."""
    panel = _panels().get(s.get("kind"))
    if panel is not None and panel.baseline is not None:
        return panel.baseline(s)
    if "chance" in s:
        return f"guessing: {100 * s['chance']:.3g}%"
    return ""


def markdown(report: dict[str, Any]) -> str:
    """The report for a reader: one row per model with its plain sentence and baseline, then notes."""
    d = report["data"]
    lines = [
        "# Pretext scores in plain words (the explorer's panels)",
        "",
        f"Each model does its own pretext task on the **{d['test_photos']} test photos** of `{d['root']}` (split sha256 "
        f"`{d['split_sha256'][:12]}…`; no model trained on them), through the app's own compute (`app.pretext`, `app.inference`), "
        "at the model's own input size. Each score comes with what guessing — or the plain answer a reconstruction must beat — gets.",
        "",
        f"Made by `{report['command']}` on {report['made_at']} ({report['machine']}) in {report['seconds']:.0f} s; seed {report['seed']}.",
        "",
        "| model | task | measured at | test photos | in plain words | baseline | card's `pretext_test` |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = []
    for name, e in report["models"].items():
        pt = e.get("card_pretext_test") or {}
        card = ", ".join(f"{k} {v:.3g}" for k, v in pt.items() if isinstance(v, (int, float)) and k != "loss") or "—"
        size = f"{e['image_size']} px" if e.get("image_size") else "—"
        if e.get("skipped"):
            words, base = f"*not scored:* {e['skipped']}", "—"
        else:
            words = sentence(e)
            base = "; ".join(b for b in (_baseline_words(s) for s in e["scores"]) if b)
        cell = lambda t: str(t).replace("|", "\\|").replace("\n", " ")  # noqa: E731
        lines.append(f"| {cell(name)} | {cell(e.get('task'))} | {size} | {e.get('test_photos') or '—'} | {cell(words)} | {cell(base)} | {cell(card)} |")
        for n in e.get("notes") or []:
            notes.append(f"- **{name}**: {n}")
    lines += ["", "## How each is measured", "",
              "- *rotation*: every test photo in its 4 turns (0°, 90°, 180°, 270°), each turn named by the model's top answer; guessing names 1 in 4.",
              "- *jigsaw*: each photo's 3×3 puzzle (centred tiles) shuffled by one permutation of the model's set, drawn by "
              "`np.random.default_rng([seed, i])` for photo i; solved = the model names that permutation. Tiles in place: how many of the 9 "
              "tiles its answer puts back right; guessing = a permutation of the set picked at random.",
              "- *context*: all 8 (centre, neighbour) patch pairs of each photo; guessing names 1 position in 8.",
              "- *colorization*: the model sees only the lightness and predicts the colour (Lab a, b on a quarter-size grid); its error against "
              "the real colour vs the error of leaving the photo grey (a = b = 0), root mean square over all photos' pixels.",
              "- *inpainting*: the panel's centred hole; the model's paint vs the hole filled with the mean colour of its 2-px border; root mean "
              "square error in the hole, in brightness levels of 255.",
              f"- *superres*: the photo shrunk by the task's factor and enlarged back by the model vs by bicubic; PSNR (dB, higher is closer) per "
              f"photo, averaged; a gain under {VISIBLE_DB} dB cannot be seen.",
              f"- *pirl* / *simclr*: up to {report['contrast_limit']} test photos at once (evenly spread); PIRL: each photo's jigsaw version must "
              "be closest to its own photo; SimCLR: each photo's first altered view must be closest to its own second view. Guessing: 1 in N. "
              "Median place: where the right one ranks (1st = found).",
              "- *deepcluster*: how often the classifier names the k-means group of the photo's own features (guessing: 1 in k); group purity: "
              "share of photos showing their group's most common flower, against the same groups with the flower labels shuffled.",
              ""]
    if notes:
        lines += ["## Notes", "", *notes, ""]
    lines += ["## Weights measured", "", "The app shows a score only for the weights it was measured on (`app.scores.load`).", "",
              "| model | weights sha256 | seconds |", "|---|---|---|"]
    for name, e in report["models"].items():
        lines.append(f"| {name} | `{e.get('weights_sha256') or '—'}` | {e.get('seconds', 0):.1f} |")
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``panel-scores.json`` and ``panel-scores.md`` into ``out_dir`` (each replaced atomically)."""
    out = Path(out_dir)
    paths = (out / REPORT_JSON, out / REPORT_MD)
    for path, text in zip(paths, (json.dumps(report, indent=1, ensure_ascii=False) + "\n", markdown(report))):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return paths


# -- command line ------------------------------------------------------------------------------------------
def _writable(out: Path) -> str | None:
    """None when files can be written into ``out`` (made if missing), else why not."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".panel-scores-probe-"):
            pass
    except OSError as e:
        return f"cannot write the report into {out} ({e.strerror or type(e).__name__}); pass --out DIR with a writable folder"
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m app.scores [--models DIR] [--data DIR] [--out DIR] [--seed N] [--limit N] [--only NAME…]``
    → 0 after writing the report; 2 (one line on stderr, nothing computed) when the models or data
    folder is missing or the output folder cannot be written."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog=COMMAND, description="Score every shipped model on the bundled test photos, in plain words.")
    ap.add_argument("--models", default=None, help="folder of exported models (default: $PRETEXT_LAB_MODELS or models/)")
    ap.add_argument("--data", default=None, help="bundled photos with split.csv (default: $PRETEXT_LAB_DATA or data/flowers)")
    ap.add_argument("--out", default=None, help="where panel-scores.json/.md go (default: $PRETEXT_LAB_REPORTS or reports/)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="puzzles and views are drawn from it (default 0)")
    ap.add_argument("--limit", type=int, default=CONTRAST_LIMIT, help=f"PIRL/SimCLR: at most this many test photos at once (default {CONTRAST_LIMIT})")
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME", help="score only these model folders (the report then holds only them)")
    args = ap.parse_args(args_list)
    models_root = Path(args.models) if args.models else models_dir()
    data_root = Path(args.data) if args.data else data_dir()
    out = Path(args.out) if args.out else reports_dir()
    if not models_root.is_dir():
        print(f"error: models folder {models_root} does not exist; pass --models DIR or export models first "
              f"(python -m ssl_train export …)", file=sys.stderr)
        return 2
    if args.limit < 2:
        print(f"error: --limit {args.limit} must be at least 2 photos", file=sys.stderr)
        return 2
    from . import photos

    try:
        photos.index(data_root)
    except photos.DataMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    why = _writable(out)
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    command = " ".join([COMMAND, *(shlex.quote(a) for a in args_list)])
    report = build(models_root, data_root, args.seed, args.limit, args.only, command,
                   progress=lambda line: print(line, file=sys.stderr, flush=True))
    j, m = write(report, out)
    print(f"wrote {display(j)} and {display(m)} ({len(report['models'])} models, {report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

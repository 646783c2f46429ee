"""How well each shipped model does its own pretext task on the test photos, in plain words with the
chance level — ``python -m app.scores`` writes ``reports/panel-scores.json`` and ``.md``.

Every number is measured with the explorer's own compute (``app.pretext``: jigsaw, context,
colorization, inpainting, superres, pirl, simclr, deepcluster_assign; ``app.inference``:
``turn_probabilities`` over ``all_rotations``, the same turns ``rotation_grid`` shows) on the
bundled test split (``data/flowers/split.csv``, photos no model trained on), decoded at each model's
own input size by the training package (``app.photos.decoded``), so a panel's "right 80 times in
100" is what a viewer would count over those photos. Each score comes with its baseline: the chance
level of guessing, or the plain answer a reconstruction must beat (grey, a flat fill, bicubic).

Randomness is fixed: jigsaw's puzzle for test photo ``i`` is ``np.random.default_rng([seed, i])``;
PIRL's and SimCLR's views are drawn from ``seed`` (``app.pretext.pirl``/``simclr``); the chance
level of DeepCluster's group purity shuffles the labels with ``default_rng([seed, 1])``.

The report records, per model, the sha256 of its weights file (from model.json's "files"), so the
app shows a score only for the very weights it was measured on (``load``); ``sentence`` turns a
model's entry into the plain words a panel shows. No Streamlit here.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .config import RANDOM_INIT, data_dir, display, models_dir, reports_dir

FORMAT = "pretext-lab-panel-scores/1"
REPORT_JSON = "panel-scores.json"
REPORT_MD = "panel-scores.md"
DEFAULT_SEED = 0
CONTRAST_LIMIT = 1000  # PIRL / SimCLR: at most this many test photos to find the right one among
PURITY_SHUFFLES = 200  # label shuffles behind the chance level of DeepCluster's group purity
VISIBLE_DB = 0.5  # a PSNR gain below this cannot be seen (the super-resolution panel's threshold)
COMMAND = "python -m app.scores"


# -- words -------------------------------------------------------------------------------------------
def _in_100(share: float) -> str:
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
    n = _in_100(share)
    return f"{n} time{'' if n == '1' else 's'} in 100"


def _sentence_one(s: dict[str, Any]) -> str:
    """One score (an item of an entry's "scores") → its plain words."""
    kind = s.get("kind")
    g = f"guessing: {_in_100(s['chance'])}" if "chance" in s else ""
    if kind == "rotation":
        return f"names the turn right {times_in_100(s['share'])} ({g})"
    if kind == "jigsaw":
        return (f"solves the 9-tile puzzle {times_in_100(s['share'])} ({g}); puts {s['tiles_in_place']:.1f} of 9 tiles back "
                f"in place on average (guessing: {s['tiles_in_place_chance']:.1f})")
    if kind == "context":
        return f"names where a neighbouring patch sits {times_in_100(s['share'])} ({g})"
    if kind == "colorization":
        worse = "" if s["model_rmse"] < s["baseline_rmse"] else " — no better than leaving it grey"
        return (f"colours a photo closer to the real one than leaving it grey {times_in_100(s['share_beats_baseline'])}; "
                f"colour error {s['model_rmse']:.1f} vs {s['baseline_rmse']:.1f} for grey (lower is closer){worse}")
    if kind == "inpainting":
        worse = "" if s["model_rms_levels"] < s["baseline_rms_levels"] else " — no better than the flat fill"
        return (f"fills the hole closer to the real photo than a flat fill of the border's colour "
                f"{times_in_100(s['share_beats_baseline'])}; off by {s['model_rms_levels']:.1f} vs {s['baseline_rms_levels']:.1f} "
                f"brightness levels (of 255) in the hole (lower is closer){worse}")
    if kind == "superres":
        gain = s["model_psnr_db"] - s["baseline_psnr_db"]
        worse = "" if gain >= s["visible_db"] else " — no visible gain over bicubic"
        return (f"beats plain enlargement (bicubic) by a visible margin (≥ {s['visible_db']} dB) "
                f"{times_in_100(s['share_beats_baseline'])}; {s['model_psnr_db']:.2f} dB vs bicubic's {s['baseline_psnr_db']:.2f} dB "
                f"on average (higher is closer){worse}")
    if kind == "pirl":
        return (f"finds the photo a jigsaw version came from, among {s['gallery']} test photos, {times_in_100(s['share'])} "
                f"({g}); the right photo's median place is {_place(s['median_rank'])} of {s['gallery']}")
    if kind == "simclr":
        return (f"matches two altered views of the same photo, among {s['gallery']} test photos, {times_in_100(s['share'])} "
                f"({g}); the right view's median place is {_place(s['median_rank'])} of {s['gallery']}")
    if kind == "deepcluster":
        return (f"its classifier names the group that a photo's own features fall in {times_in_100(s['share'])} ({g}); "
                f"{_in_100(s['purity'])} in 100 test photos show their group's most common flower "
                f"(groups of the same sizes drawn at random: {_in_100(s['purity_chance'])})")
    return ""


def _place(rank: float) -> str:
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


# -- the scores, one function per task -------------------------------------------------------------------
def score_rotation(model, images_u8: np.ndarray, batch: int = 64) -> dict[str, Any]:
    """Each test photo (N, 3, S, S) uint8 in its four turns (``ssl_train.tasks.rotation.all_rotations``,
    as ``rotation_grid``), the turn named by ``turn_probabilities``' top class → {"share" of the 4N
    turns named right, "chance" 0.25, "answers" 4N, "photos" N, "all_four" share of photos whose
    four turns are all named right}."""
    import torch

    from ssl_train.tasks.rotation import all_rotations

    from .inference import turn_probabilities

    right = np.zeros((0, 4), bool)
    for i in range(0, len(images_u8), batch):
        chunk = torch.from_numpy(np.ascontiguousarray(images_u8[i : i + batch]))
        x, y = all_rotations(chunk)
        pred = turn_probabilities(model, x.numpy()).argmax(1)
        right = np.concatenate([right, (pred == y.numpy()).reshape(4, -1).T])
    n = len(right)
    return {"kind": "rotation", "head": model.rotation_output, "share": float(right.mean()) if n else 0.0, "chance": 0.25,
            "answers": int(right.size), "photos": n, "all_four": float(right.all(1).mean()) if n else 0.0}


def puzzle_index(seed: int, i: int, n_permutations: int) -> int:
    """The permutation (0..n-1) shuffling test photo ``i``'s puzzle: ``default_rng([seed, i])``."""
    return int(np.random.default_rng([int(seed), int(i)]).integers(n_permutations))


def score_jigsaw(p, images_u8: np.ndarray, seed: int) -> dict[str, Any]:
    """``app.pretext.jigsaw`` on each test photo, shuffled by ``puzzle_index(seed, i, n)`` → {"share"
    of puzzles solved, "chance" 1/n, "tiles_in_place" mean tiles (0..9) the model's answer puts back
    right, "tiles_in_place_chance" the same for a permutation of the set picked at random, "photos",
    "permutations" n}."""
    from . import pretext

    perms = p.task.permutations().numpy()
    n_perm = len(perms)
    agree = (perms[:, None, :] == perms[None, :, :]).sum(-1)  # (n, n) tiles two permutations place alike
    solved, in_place = [], []
    for i, img in enumerate(images_u8):
        r = pretext.jigsaw(p, img, puzzle_index(seed, i, n_perm))
        solved.append(bool(r["correct"]))
        in_place.append(int(r["in_place"]))
    return {"kind": "jigsaw", "share": float(np.mean(solved)) if solved else 0.0, "chance": 1.0 / n_perm,
            "tiles_in_place": float(np.mean(in_place)) if in_place else 0.0, "tiles_in_place_chance": float(agree.mean()),
            "photos": len(solved), "answers": len(solved), "permutations": n_perm, "seed": int(seed)}


def score_context(p, images_u8: np.ndarray) -> dict[str, Any]:
    """``app.pretext.context`` on each test photo: all 8 (centre, neighbour) pairs → {"share" of the
    8N positions named right, "chance" 1/8, "answers" 8N, "photos" N}."""
    from . import pretext

    right = []
    for img in images_u8:
        r = pretext.context(p, img)
        right.append(np.asarray(r["predicted"]) == np.arange(len(r["predicted"])))
    a = np.concatenate(right) if right else np.zeros(0, bool)
    return {"kind": "context", "share": float(a.mean()) if len(a) else 0.0, "chance": 1.0 / 8, "answers": int(len(a)),
            "photos": len(right)}


def score_colorization(p, images_u8: np.ndarray) -> dict[str, Any]:
    """``app.pretext.colorization`` on each test photo → {"model_rmse", "baseline_rmse": root mean
    square ab error (Lab colour units, on the model's S/4 grid) of the predicted colours and of grey
    (a = b = 0) over all photos' pixels, "share_beats_baseline" photos whose predicted colours are
    closer than grey, "photos"}."""
    from . import pretext

    m, g = [], []
    for img in images_u8:
        r = pretext.colorization(p, img)
        m.append(r["ab_rmse"])
        g.append(r["ab_rmse_grey"])
    m_, g_ = np.asarray(m), np.asarray(g)
    return {"kind": "colorization", "baseline": "grey (no colour: a = b = 0)",
            "model_rmse": float(np.sqrt(np.mean(m_ ** 2))) if len(m_) else 0.0,
            "baseline_rmse": float(np.sqrt(np.mean(g_ ** 2))) if len(g_) else 0.0,
            "share_beats_baseline": float(np.mean(m_ < g_)) if len(m_) else 0.0, "photos": len(m)}


def score_inpainting(p, images_u8: np.ndarray, where: str = "center") -> dict[str, Any]:
    """``app.pretext.inpainting`` on each test photo (the hole ``where`` the panel cuts it) →
    {"model_mse", "baseline_mse": mean square error in the hole (RGB in [0, 1]) of the model's
    painting and of the hole filled with the mean colour of its 2-px border, "model_rms_levels",
    "baseline_rms_levels": the same as root mean square in 0..255 levels, "share_beats_baseline"
    photos where the model's hole error is lower, "photos", "hole"}."""
    from . import pretext

    m, f = [], []
    for img in images_u8:
        r = pretext.inpainting(p, img, where)
        m.append(r["hole_mse"])
        f.append(r["hole_mse_flat"])
    m_, f_ = np.asarray(m), np.asarray(f)
    mm, fm = (float(m_.mean()), float(f_.mean())) if len(m_) else (0.0, 0.0)
    return {"kind": "inpainting", "baseline": "the hole filled with the mean colour of its border", "hole": where,
            "model_mse": mm, "baseline_mse": fm, "model_rms_levels": 255 * math.sqrt(mm), "baseline_rms_levels": 255 * math.sqrt(fm),
            "share_beats_baseline": float(np.mean(m_ < f_)) if len(m_) else 0.0, "photos": len(m)}


def score_superres(p, images_u8: np.ndarray) -> dict[str, Any]:
    """``app.pretext.superres`` on each test photo → {"model_psnr_db", "baseline_psnr_db": mean over
    photos of each photo's PSNR (dB) of the model's restoration and of bicubic enlargement,
    "share_beats_baseline": photos where the model beats bicubic by ≥ ``VISIBLE_DB``, "share_worse"
    photos where it is below bicubic, "photos", "factor"}."""
    from . import pretext

    m, b = [], []
    factor = None
    for img in images_u8:
        r = pretext.superres(p, img)
        m.append(r["psnr_model"])
        b.append(r["psnr_bicubic"])
        factor = r["factor"]
    m_, b_ = np.asarray(m), np.asarray(b)
    return {"kind": "superres", "baseline": "bicubic enlargement", "factor": factor, "visible_db": VISIBLE_DB,
            "model_psnr_db": float(m_.mean()) if len(m_) else 0.0, "baseline_psnr_db": float(b_.mean()) if len(b_) else 0.0,
            "share_beats_baseline": float(np.mean(m_ - b_ >= VISIBLE_DB)) if len(m_) else 0.0,
            "share_worse": float(np.mean(m_ < b_)) if len(m_) else 0.0, "photos": len(m)}


def score_contrast(kind: str, p, images_u8: np.ndarray, seed: int) -> dict[str, Any]:
    """``app.pretext.pirl`` or ``simclr`` over N test photos at once (their views drawn from
    ``seed``) → {"share" of photos whose own partner is the most similar of the N (rank 1),
    "chance" 1/N, "median_rank" (1 = first), "top5" share with rank ≤ 5, "gallery" N}."""
    from . import pretext

    r = getattr(pretext, kind)(p, images_u8, seed)
    rank = np.asarray(r["rank"])
    n = len(rank)
    return {"kind": kind, "share": float(np.mean(rank == 1)) if n else 0.0, "chance": 1.0 / max(n, 1),
            "median_rank": float(np.median(rank)) if n else 0.0, "top5": float(np.mean(rank <= 5)) if n else 0.0,
            "top5_chance": min(5, n) / max(n, 1), "gallery": n, "photos": n, "seed": int(seed)}


def group_purity(groups: np.ndarray, labels: np.ndarray) -> float:
    """Share of photos whose class is the most common class of their group: ``groups``, ``labels`` (N,) ints."""
    if len(groups) == 0:
        return 0.0
    top = 0
    for g in np.unique(groups):
        top += int(np.bincount(labels[groups == g]).max())
    return top / len(groups)


def same_flower_rate(groups: np.ndarray, labels: np.ndarray) -> float:
    """Share of the pairs of photos within one group that show the same class (0 when no group has two)."""
    same = total = 0.0
    for g in np.unique(groups):
        lab = labels[groups == g]
        total += len(lab) * (len(lab) - 1) / 2
        same += float(sum(c * (c - 1) / 2 for c in np.bincount(lab)))
    return same / total if total else 0.0


def score_deepcluster(p, images_u8: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, Any]:
    """``app.pretext.deepcluster_assign`` on all test photos → {"share": how often the classifier's
    top group is the group (nearest k-means centroid) of the photo's own features — what the card's
    "acc" measures —, "chance" 1/k, "purity": share of photos showing their group's most common
    flower, "purity_chance": the same with the flower labels shuffled among the photos (same group
    sizes; mean of ``PURITY_SHUFFLES`` shuffles from ``default_rng([seed, 1])``), "same_flower" /
    "same_flower_chance": share of photo pairs within a group that show the same flower / of all
    pairs, "groups_used", "k", "photos"}."""
    from . import pretext

    r = pretext.deepcluster_assign(p, images_u8)
    cluster, guess = np.asarray(r["cluster"]), np.asarray(r["guess"])
    labels = np.asarray(labels, np.int64)
    k = int(p.config.k)
    rng = np.random.default_rng([int(seed), 1])
    shuffled = [group_purity(cluster, rng.permutation(labels)) for _ in range(PURITY_SHUFFLES)]
    n = len(cluster)
    return {"kind": "deepcluster", "share": float(np.mean(guess == cluster)) if n else 0.0, "chance": 1.0 / k, "k": k,
            "purity": group_purity(cluster, labels), "purity_chance": float(np.mean(shuffled)) if n else 0.0,
            "same_flower": same_flower_rate(cluster, labels), "same_flower_chance": same_flower_rate(np.zeros_like(labels), labels),
            "groups_used": int(len(np.unique(cluster))), "photos": n, "seed": int(seed)}


# -- what the cards' numbers mean ---------------------------------------------------------------------
def card_meaning(task: str, config: Any, card: dict[str, Any]) -> str | None:
    """One line saying what the card's pretext-test number of a task whose jargon misleads
    (``pretext_test`` "acc" of DeepCluster, PIRL, SimCLR) measures, with its own chance level."""
    pt = card.get("pretext_test") or {}
    acc = pt.get("acc")
    if not isinstance(acc, (int, float)):
        return None
    batch = 128  # ssl_train.train.pretext_scores' batch of test photos
    if task == "deepcluster":
        k = int(config.k)
        return (f"the card's acc {100 * acc:.1f}% is how often the classifier names the k-means group (of {k}) that the "
                f"test photo's own features fall in — guessing gets {100 / k:.1f}%, so it is {acc * k:.0f}× chance, not a failure; "
                "the groups are remade as training goes on, so the classifier chases a moving target")
    if task == "pirl":
        m = int(config.n_negatives)
        return (f"the card's acc {100 * acc:.1f}% is how often a test photo's jigsaw version is closer to the photo itself "
                f"than to every one of {m} training photos drawn from the memory bank — a 1-in-{m + 1} pick where guessing "
                f"gets {100 / (m + 1):.2f}%, so it is {acc * (m + 1):.0f}× chance")
    if task == "simclr":
        return (f"the card's acc {100 * acc:.1f}% is how often a view's nearest other view among the 2×{batch} views of a "
                f"batch of test photos is its partner — guessing gets {100 / (2 * batch - 1):.1f}%")
    return None


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
    from . import pretext
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
        if task == RANDOM_INIT:
            return _skip(entry, "random init: no pretext task and no head, so nothing to score (the no-pretraining reference)")
        model = OnnxModel(model_entry.path, card)
        entry["image_size"] = model.image_size
        decode = decode or _decode
        split = decode(data_root, model.image_size)
        gal = pretext.test_gallery(split, None)
        images, labels = gal["images"], np.asarray(gal["labels"])
        entry["test_photos"] = int(len(images))
        if task == "multitask":
            _score_multitask(entry, model, images, seed)
        elif task == "rotation":
            if not model.has_rotation_head:
                return _skip(entry, f"its model.onnx has no rotation logits (outputs: {', '.join(model.output_names)})")
            entry["scores"].append(score_rotation(model, images))
        elif task in pretext.PANEL_TASKS:
            p = pretext.open_pretext(model)
            if p.problem:
                return _skip(entry, p.problem)
            entry["scores"].append(_score_task(task, p, images, labels, seed, limit, entry))
            meaning = card_meaning(task, p.config, card)
            if meaning:
                entry["notes"].append(meaning)
        else:
            return _skip(entry, f"unknown task {task!r}: no pretext score is defined for it here")
    except Exception as e:  # noqa: BLE001 — one broken model must not stop the report; its line says why
        first = (str(e).splitlines() or [type(e).__name__])[0][:240]
        return _skip(entry, f"could not be scored ({type(e).__name__}: {first})")
    finally:
        entry["seconds"] = round(time.perf_counter() - t0, 1)
    if not entry["scores"]:
        entry["skipped"] = entry["skipped"] or "no head of this model could be scored"
    return entry


def _score_task(task: str, p, images: np.ndarray, labels: np.ndarray, seed: int, limit: int, entry: dict) -> dict[str, Any]:
    if task == "jigsaw":
        return score_jigsaw(p, images, seed)
    if task == "context":
        return score_context(p, images)
    if task == "colorization":
        return score_colorization(p, images)
    if task == "inpainting":
        return score_inpainting(p, images)
    if task == "superres":
        return score_superres(p, images)
    if task in ("pirl", "simclr"):
        pick = _spread(len(images), limit)
        s = score_contrast(task, p, images[pick], seed)
        s["gallery_limit"] = int(limit)
        return s
    if task == "deepcluster":
        return score_deepcluster(p, images, labels, seed)
    raise ValueError(f"no score for task {task!r}")


def _spread(n: int, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` of ``n`` photos, evenly spread (as ``app.pretext.test_gallery``)."""
    if n <= limit:
        return np.arange(n)
    return np.linspace(0, n - 1, limit).round().astype(int)


def _score_multitask(entry: dict[str, Any], model, images: np.ndarray, seed: int) -> None:
    """Each sub-task of a multi-task model whose head can run: rotation through model.onnx's
    rotation logits, the others through their sub-head graph; the rest get a note."""
    from . import pretext

    for sub, _w in pretext.multitask_parts(model.card):
        if sub == "rotation":
            if model.has_rotation_head:
                entry["scores"].append(score_rotation(model, images))
            else:
                entry["notes"].append("its rotation head is not in model.onnx, so it is not scored")
            continue
        try:
            p = pretext.open_sub_pretext(model, sub)
        except Exception as e:  # noqa: BLE001
            entry["notes"].append(f"its {sub} head cannot be opened ({(str(e).splitlines() or [''])[0][:160]}), so it is not scored")
            continue
        if p.problem:
            entry["notes"].append(f"{sub} head not scored: {p.problem}")
            continue
        if sub == "jigsaw":
            s = score_jigsaw(p, images, seed)
        elif sub == "context":
            s = score_context(p, images)
        else:
            entry["notes"].append(f"its {sub} head is not scored here (only rotation, jigsaw and context sub-heads are)")
            continue
        s["head"] = sub
        entry["scores"].append(s)


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
    kind = s.get("kind")
    if kind == "colorization":
        return f"grey: error {s['baseline_rmse']:.1f}"
    if kind == "inpainting":
        return f"flat fill: {s['baseline_rms_levels']:.0f} levels"
    if kind == "superres":
        return f"bicubic: {s['baseline_psnr_db']:.2f} dB (model {s['model_psnr_db']:.2f} dB)"
    if kind == "jigsaw":
        return f"guessing: {100 * s['chance']:.2g}% solved, {s['tiles_in_place_chance']:.2f} tiles"
    if kind == "deepcluster":
        return f"guessing: {100 * s['chance']:.2g}%; purity by chance {100 * s['purity_chance']:.0f}%"
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

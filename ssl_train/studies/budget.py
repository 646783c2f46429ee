"""Pick a pretraining budget without the test split: ``python -m ssl_train budget``.

How many pretraining epochs to ship is a hyper-parameter, and choosing it by test accuracy would be
tuning on the test split. This command answers it on a *validation* split carved from the training
photos instead (the test photos are never read):

- the training photos are split again, with the same stratified near-duplicate-group rule as the
  fixed test split (``data.make_split``), into fit (80%) and validation (20%);
- for each budget, the task's pretraining run with that many epochs (reused from ``runs/`` when one
  with the same settings exists; pretraining saw the training photos' pixels, never a label) is
  fine-tuned on ``--fraction`` of the *fit* photos' labels, with the protocol's fixed fine-tuning
  schedule, for each seed, and so is a randomly initialised encoder (scratch);
- the score is validation accuracy, and the gain over scratch paired by seed.

The chosen budget is the one with the largest mean gain. It writes ``reports/budget-<task>.json``
and ``.md``.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import VAL_FRACTION, VAL_SEED, SplitData, labelled_subset, validation_split
from ..encoders import EncoderConfig
from ..errors import UserError
from ..evaluate import FinetuneConfig, finetune, predict
from ..paths import portable
from ..protocol import pretrained_encoder
from ..runtime import device_name, resolve_device
from ..tasks import Recipe
from ..train import TrainConfig

def run(tasks: list[str], budgets: list[int], data: SplitData, enc_cfg: EncoderConfig, train_cfg: TrainConfig, ft_cfg: FinetuneConfig,
        runs_dir: Path, fraction: float, seeds: list[int], own: dict[str, Recipe] | None = None) -> list[dict[str, Any]]:
    """Validation accuracy of scratch (fine-tuned once: it is never pretrained) and of each task
    pretrained for each of ``budgets`` epochs, fine-tuned on ``fraction`` of the fit photos' labels,
    per seed → one report per task. ``own``: a task's photos per step, photo size and options beside
    the common ones (``budget --recipes``: its recipe), recorded in its report as ``recipe``."""
    if not budgets or any(b < 1 for b in budgets):
        raise UserError(f"--budgets {budgets} must be positive epoch counts, e.g. 15,30,50")
    if not seeds:
        raise UserError("--seeds needs at least one seed")
    fit, val = validation_split(data)
    labels, images = data.ds.labels, data.ds.images
    n_classes = len(data.ds.classes)
    dev = resolve_device(ft_cfg.device)
    val_u8, val_y = images[torch.as_tensor(val)], labels[val]

    def scores_of(state: dict | None) -> list[float]:
        out = []
        for seed in seeds:
            sub = labelled_subset(fit, labels, fraction, seed)
            model, _ = finetune(state, enc_cfg, images[torch.as_tensor(sub)], labels[sub], n_classes, ft_cfg, seed)
            out.append(float((predict(model, val_u8, dev).argmax(1) == val_y).mean()))
        return out

    t0 = time.time()
    scratch = scores_of(None)
    scratch_seconds = round(time.time() - t0, 1)
    reports = []
    for task in tasks:
        t0 = time.time()
        rows: list[dict[str, Any]] = []
        for b in sorted(set(budgets)):
            recipe = replace((own or {}).get(task, Recipe()), epochs=None)  # the epochs are the budget's
            state, summary = pretrained_encoder(task, data, enc_cfg, replace(train_cfg, epochs=b), runs_dir, recipe, progress=False)
            acc = scores_of(state)
            gain = np.asarray(acc) - np.asarray(scratch)
            rows.append({"epochs": b, "val_accuracy": acc, "gain": gain.tolist(), "gain_mean": float(gain.mean()),
                         "gain_std": float(gain.std(ddof=1)) if len(gain) > 1 else 0.0,
                         "pretraining_minutes": round(summary.get("train_seconds_total", 0) / 60, 1), "run": str(Path(summary["checkpoint"]).parent.name)})
        best = max(rows, key=lambda r: r["gain_mean"])
        reports.append({"task": task, "fraction": fraction, "seeds": list(seeds), "n_fit": int(len(fit)), "n_val": int(len(val)),
                        "val_fraction": VAL_FRACTION, "val_seed": VAL_SEED, "scratch_val_accuracy": scratch,
                        "budgets": rows, "chosen_epochs": best["epochs"], "device": device_name(dev),
                        "wall_seconds": round(time.time() - t0, 1), "scratch_seconds": scratch_seconds,
                        # absent for the common settings: a report made before recipes reads as it did
                        **({"recipe": _recipe_record(own[task])} if task in (own or {}) else {})})
    return reports


def _recipe_record(r: Recipe) -> dict[str, Any]:
    """The settings a budget study pretrained a task with beside the common ones (``budget --recipes``)."""
    return {k: v for k, v in (("batch_size", r.batch_size), ("image_size", r.image_size), ("options", dict(r.options))) if v}


def _pm(values: list[float]) -> str:
    a = np.asarray(values) * 100
    return f"{a.mean():.1f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:.1f}"


def to_markdown(r: dict[str, Any], command: str) -> str:
    lines = [
        f"# Pretraining budget for {r['task']}, chosen on a validation split",
        "",
        f"Fine-tuned on {r['fraction']:.0%} of the labels of {r['n_fit']} fit photos, scored on {r['n_val']} validation photos "
        f"(both from the training split; no test photo is read); seeds {r['seeds']}; {r['device']}."
        + "".join(f" Pretrained {x}." for x in _recipe_words(r.get("recipe") or {})),
        "",
        "| pretraining | validation accuracy % | − scratch (paired by seed) | pretraining time |",
        "|---|---:|---:|---:|",
        f"| scratch | {_pm(r['scratch_val_accuracy'])} | | |",
    ]
    for b in r["budgets"]:
        lines.append(f"| {b['epochs']} epochs | {_pm(b['val_accuracy'])} | {100 * b['gain_mean']:+.1f} ± {100 * b['gain_std']:.1f} | {b['pretraining_minutes']} min |")
    lines += ["", f"Chosen: **{r['chosen_epochs']} epochs** (the largest mean gain).", "", f"Made by `{command}`: this task {r['wall_seconds'] / 60:.1f} min, plus {r['scratch_seconds'] / 60:.1f} min of "
              "scratch fine-tunes shared by every task of the command.", ""]
    return "\n".join(lines)


def _recipe_words(rec: dict[str, Any]) -> list[str]:
    out = [f"in batches of {rec['batch_size']} photos"] if rec.get("batch_size") else []
    out += [f"on {rec['image_size']}-px photos"] if rec.get("image_size") else []
    return out + ([f"with {', '.join(f'{k}={v}' for k, v in sorted(rec['options'].items()))}"] if rec.get("options") else [])


def write(r: dict[str, Any], out_dir: Path, command: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"budget-{r['task']}.json", out_dir / f"budget-{r['task']}.md"
    js.write_text(json.dumps(portable(r | {"command": command}), indent=1) + "\n")
    md.write_text(to_markdown(r, command))
    return js, md

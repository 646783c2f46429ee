"""Record a fine-tune as it happens, for the talk's "Fine-tuning, replayed" slide (#28, slide 6).

Two arms fine-tune on the same labelled subset (``data.labelled_subset``: nested and stratified,
fixed by ``--seed``) with the protocol's own code path and schedule (``evaluate.finetune``): scratch
(random init) and the given pretrained model. Each arm uses the learning rate the protocol
fine-tuned it with: the model card's ``metrics.finetune_lr`` (chosen on a validation split by
``finetune-lr``), else the ``--ft-lrs`` report's, else ``--ft-lr``. At about ``--points`` evenly
spaced steps (step 0 included) the recorder scores the model on the whole test split, so the curves
end on the accuracy the protocol reports for that fraction and seed.

Output (``--out``, written atomically)::

    {"format": "pretext-lab-replay/1", "made_by": <command line>, "fraction", "seed", "n_labelled",
     "n_test", "image_size" (px), "encoder", "seconds" (wall, both arms), "device",
     "arms": [{"name", "label", "lr", "final_test_accuracy",
               "points": [{"step", "epoch", "train_loss", "test_accuracy"}, ...]}, ...]}

``epoch`` counts as the schedule does (⌈labelled / batch⌉ steps per epoch), so the last point sits
at the schedule's epochs; ``train_loss`` is the mean training loss of the steps since the previous
point (null at step 0), with the fine-tune's label smoothing.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .errors import UserError

if TYPE_CHECKING:
    from .data import SplitData
    from .encoders import EncoderConfig
    from .evaluate import FinetuneConfig
    from .pretrained import Pretrained

FORMAT = "pretext-lab-replay/1"
N_POINTS = 30  # recorded intervals per arm (31 points with step 0): smooth curves, a small file
EVAL_BATCH = 64  # test photos per forward pass: the scoring runs ~30 times per arm, keep its memory small
SCRATCH = "scratch"


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse, before any training, an ``out`` whose folder is missing or not writable, or that
    exists without ``overwrite`` (one-line ``UserError``)."""
    folder = out.parent
    if not folder.is_dir():
        raise UserError(f"--out {out}: folder {folder} does not exist; create it or choose another --out")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: folder {folder} is not writable; choose another --out")
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite or choose another --out")


def task_title(task: str) -> str:
    """How a task calls itself: the head of its module's docstring ("SimCLR", "Rotation prediction");
    the name itself for an unregistered one (e.g. random_init)."""
    from .tasks import get_task

    try:
        cls = type(get_task(task))
    except UserError:
        return task
    head = ((sys.modules[cls.__module__].__doc__ or "").strip().splitlines() or [""])[0]
    for stop in (":", " ("):
        head = head.split(stop, 1)[0]
    return head.strip() or task


def arm_lrs(card: dict | None, task: str, ft_lrs: str, default_lr: float) -> tuple[float, float]:
    """(scratch's, the encoder's) fine-tuning learning rate, as the protocol chose them: the card's
    ``metrics.finetune_lr`` (``lr``, ``scratch_lr``), else the ``ft_lrs`` report's (``finetune-lr``;
    "" for none), else ``default_lr`` for both."""
    rec = ((card or {}).get("metrics") or {}).get("finetune_lr") or {}
    own, scratch = rec.get("lr"), rec.get("scratch_lr")
    if all(isinstance(v, (int, float)) and v > 0 for v in (own, scratch)):
        return float(scratch), float(own)
    if not ft_lrs:
        return default_lr, default_lr
    from .studies.finetune_lr import chosen_lrs

    lrs = chosen_lrs(Path(ft_lrs))
    missing = [a for a in (SCRATCH, task) if a not in lrs]
    if missing:
        raise UserError(f"--ft-lrs {ft_lrs} has no learning rate for {', '.join(missing)}; pass a finetune-lr report that covers them, or --ft-lrs '' to use --ft-lr")
    return lrs[SCRATCH], lrs[task]


def recorded_steps(total: int, n_points: int = N_POINTS) -> list[int]:
    """About ``n_points`` + 1 evenly spaced steps from 0 to ``total`` (both included), no repeats."""
    return sorted({int(round(x)) for x in np.linspace(0, total, max(1, n_points) + 1)})


@dataclass
class Recorder:
    """``evaluate.finetune``'s ``watch``: at each of ``steps`` scores the model on ``test_u8``
    (uint8 (N, 3, S, S)) against ``test_y`` (N,) and keeps a point; between points it sums losses."""

    steps: set[int]
    steps_per_epoch: int
    test_u8: torch.Tensor
    test_y: np.ndarray
    device: torch.device
    points: list[dict[str, Any]] = field(default_factory=list)
    _losses: list[float] = field(default_factory=list)

    def __call__(self, step: int, total: int, loss: float | None, model: torch.nn.Module) -> None:
        from .evaluate import predict

        if loss is not None:
            self._losses.append(loss)
        if step not in self.steps:
            return
        pred = predict(model, self.test_u8, self.device, batch=EVAL_BATCH).argmax(1)
        self.points.append({"step": step, "epoch": round(step / self.steps_per_epoch, 4),
                            "train_loss": round(float(np.mean(self._losses)), 5) if self._losses else None,
                            "test_accuracy": round(float((pred == self.test_y).mean()), 6)})
        self._losses.clear()


def record_arm(state: dict[str, torch.Tensor] | None, enc_cfg: EncoderConfig, train_u8: torch.Tensor, train_y: np.ndarray, test_u8: torch.Tensor,
               test_y: np.ndarray, n_classes: int, cfg: FinetuneConfig, seed: int, n_points: int = N_POINTS) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Fine-tune one arm as the protocol does (``evaluate.finetune``: ``state`` None = scratch) and
    record it: (points, finetune's log). The last point is the finished model."""
    from .evaluate import finetune
    from .runtime import resolve_device

    n = len(train_u8)
    total = cfg.steps_for(n)
    rec = Recorder(set(recorded_steps(total, n_points)), math.ceil(n / min(cfg.batch_size, n)), test_u8, test_y, resolve_device(cfg.device))
    _, log = finetune(state, enc_cfg, train_u8, train_y, n_classes, cfg, seed, watch=rec)
    return rec.points, log


def run_replay(pre: Pretrained, data: SplitData, fraction: float, seed: int, cfg: FinetuneConfig, lrs: tuple[float, float], command: str,
               n_points: int = N_POINTS, progress: bool = True) -> dict[str, Any]:
    """Both arms on ``data`` (``SplitData``) at ``fraction`` / ``seed``: scratch with ``lrs[0]``,
    ``pre`` (``pretrained.Pretrained``) with ``lrs[1]``; the replay document (module doc)."""
    from .data import labelled_subset
    from .runtime import device_name, resolve_device

    labels = np.asarray(data.ds.labels)
    sub = labelled_subset(data.train_idx, labels, fraction, seed)
    te = data.test_idx
    train_u8, test_u8 = data.ds.images[torch.as_tensor(sub)], data.ds.images[torch.as_tensor(te)]
    arms_in = [(SCRATCH, "from scratch", None, lrs[0]), (pre.name, f"pretrained with {task_title(pre.task)} (no labels)", pre.state, lrs[1])]
    t0, arms = time.time(), []
    for name, label, state, lr in arms_in:
        t_arm = time.time()
        points, log = record_arm(state, pre.enc_cfg, train_u8, labels[sub], test_u8, labels[te], len(data.ds.classes), replace(cfg, lr=lr), seed, n_points)
        arms.append({"name": name, "label": label, "lr": lr, "final_test_accuracy": points[-1]["test_accuracy"], "points": points})
        if progress:
            print(f"[replay] {name:>10}: {log['steps']} steps at lr {lr:g}, test accuracy {points[0]['test_accuracy']:.3f} → "
                  f"{points[-1]['test_accuracy']:.3f} ({time.time() - t_arm:.0f} s)", flush=True)
    return {"format": FORMAT, "made_by": command, "fraction": fraction, "seed": seed, "n_labelled": int(len(sub)), "n_test": int(len(te)),
            "image_size": int(data.cfg.image_size), "encoder": pre.name, "seconds": round(time.time() - t0, 1),
            "device": device_name(resolve_device(cfg.device)), "arms": arms}


def write_replay(doc: dict[str, Any], out: Path) -> None:
    """Write ``doc`` to ``out`` atomically: a temporary file in the same folder, then ``os.replace``."""
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)  # gone after the replace; a half-written one must not stay behind

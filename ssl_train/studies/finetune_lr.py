"""Pick each encoder's fine-tuning learning rate without the test split: ``python -m ssl_train finetune-lr``.

One fixed learning rate for every encoder is not a neutral choice: a randomly initialised network
and a pretrained one want different step sizes, and a rate that suits one arm handicaps the other —
which would make pretraining look better (or worse) than it is. So each arm (scratch and every
pretrained encoder) gets its own rate, chosen on a *validation* split carved from the training
photos (``data.validation_split``; the test photos are never read):

- for each arm and each rate of ``--lrs``, fine-tune on ``--fraction`` of the fit photos' labels with
  the protocol's schedule, one run per seed, and score validation accuracy;
- the arm's rate is the one with the highest mean validation accuracy (ties: the smaller rate);
  a rate on the edge of the grid is flagged (``at_edge``), since the best rate may then lie beyond it.

Pretrained arms use the pretraining runs in ``runs/`` with the given settings (made when missing).
It writes ``reports/finetune-lr.json`` (read by ``protocol --ft-lrs``) and ``.md``. Entries already in
the output with the same settings and, for a pretrained arm, the same checkpoint (sha256) are kept, so a
killed search continues where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import VAL_FRACTION, VAL_SEED, validation_split
from ..data import SplitData, labelled_subset
from ..encoders import EncoderConfig
from ..errors import UserError
from ..evaluate import FinetuneConfig, finetune, predict
from ..model_files import sha256_file
from ..paths import write_json_atomic
from ..protocol import SCRATCH, STEP_KEYS, TaskOptions, check_tables, own_recipes, own_table, pretrained_encoder, task_train_cfg
from ..runtime import device_name, resolve_device
from ..tasks import Recipe
from ..train import TrainConfig

# 0.01 joined the grid when rotation's chosen rate sat on its lower edge (0.03): a best value on the
# edge of a grid says only that the optimum may lie beyond it
DEFAULT_LRS = (0.01, 0.03, 0.1, 0.3, 1.0)
SEARCH_FRACTION = 0.1  # the labelled fraction the rates are chosen at (the README's headline fraction)


def choose(scores: dict[float, list[float]]) -> float:
    """{lr: validation accuracies per seed} → the lr with the highest mean (ties: the smaller lr)."""
    if not scores:
        raise UserError("no learning rate was scored")
    return min(scores, key=lambda lr: (-float(np.mean(scores[lr])), lr))


def at_edge(chosen: float, lrs: list[float]) -> bool:
    """Whether ``chosen`` is the smallest or largest of more than one tried rate."""
    return len(lrs) > 1 and chosen in (min(lrs), max(lrs))


def settings_hash(arm: str, data: SplitData, enc_cfg: EncoderConfig, train_cfg: TrainConfig, ft_cfg: FinetuneConfig,
                   fraction: float, steps: int, options: dict | None = None, image_size: int | None = None) -> str:
    """What one arm's scores depend on, apart from the rate and the seed: the schedule by the number of
    ``steps`` it gives the labelled subset rather than by its clamps (raising a cap the subset never
    reaches changes nothing)."""
    ft = {k: v for k, v in ft_cfg.to_dict().items() if k not in ("lr", "device", *STEP_KEYS)} | {"steps": steps}
    d = {"ft": ft, "enc": enc_cfg.to_dict(), "split": data.split_sha256, "fraction": fraction, "val": [VAL_FRACTION, VAL_SEED]}
    if arm != SCRATCH:
        d |= {"arm": arm, "train": {k: v for k, v in train_cfg.to_dict().items() if k != "device"}}
        if options:  # absent otherwise: arms searched before options existed keep their hash
            d["options"] = options
        if image_size:  # the same: pretrained on photos of its own size (--task-image-sizes)
            d["pretrain_image_size"] = image_size
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


def search_steps(data: SplitData, ft_cfg: FinetuneConfig, fraction: float, seeds: list[int], fit: np.ndarray | None = None) -> int:
    """The fine-tuning steps of every search run: per class a fixed share of the fit photos
    (``labelled_subset``), the same size for every seed."""
    if fit is None:
        fit, _ = validation_split(data)
    return ft_cfg.steps_for(len(labelled_subset(fit, data.ds.labels, fraction, seeds[0])))


# Long on purpose (~90 lines): the checks, then one loop over the arms (kept, or pretrained and fine-tuned at every
# rate and seed) writing the report after each arm; the loop body reads the settings the checks resolved.
def run(arms: list[str], lrs: list[float], data: SplitData, enc_cfg: EncoderConfig, train_cfg: TrainConfig, ft_cfg: FinetuneConfig,
        runs_dir: Path, fraction: float, seeds: list[int], out_json: Path, command: str = "", progress: bool = True,
        keep: tuple[str, ...] = (), task_epochs: tuple[tuple[str, int], ...] = (), task_options: TaskOptions = (),
        task_batch_sizes: tuple[tuple[str, int], ...] = (), task_image_sizes: tuple[tuple[str, int], ...] = ()) -> dict[str, Any]:
    """Validation accuracy of every arm (``scratch`` or a task name) at every rate and seed → the
    report, written to ``out_json`` after every arm. Arms in ``keep`` take their scores from
    ``out_json`` as they are, without their pretraining run (each must be there with the same
    settings, every rate and seed): a new task joins a search made elsewhere. ``task_epochs``
    ((task, epochs) pairs) pretrains those arms for their own budget instead of ``train_cfg.epochs``,
    ``task_batch_sizes`` ((task, photos per step) pairs) in their own batches instead of
    ``train_cfg.batch_size``, ``task_image_sizes`` ((task, pixels) pairs) on photos decoded at their own size
    (fine-tuned and validated, like every arm, on ``data``'s photos); ``task_options`` ((task, ((option, value), ...)) pairs) with those config fields."""
    if not lrs or any(not lr > 0 for lr in lrs):
        raise UserError(f"--lrs {lrs} must be positive learning rates, e.g. 0.03,0.1,0.3,1")
    if not seeds:
        raise UserError("--seeds needs at least one seed")
    if not arms:
        raise UserError("--arms needs scratch and/or task names")
    stray = [k for k in keep if k not in arms]
    if stray:
        raise UserError(f"--keep {','.join(stray)}: not among --arms; a kept arm must be one of the arms")
    pretrained = [a for a in arms if a != SCRATCH]
    tables = {"task_epochs": task_epochs, "task_batch_sizes": task_batch_sizes, "task_image_sizes": task_image_sizes, "task_options": task_options}
    check_tables(tables, pretrained, "the pretrained --arms")
    own = own_recipes(tables, train_cfg, data.cfg.image_size)
    own_epochs, own_batch = own_table(task_epochs, own, "epochs"), own_table(task_batch_sizes, own, "batch_size")
    own_size, own_opts = own_table(task_image_sizes, own, "image_size"), own_table(task_options, own, "options")
    lrs = sorted(set(float(x) for x in lrs))
    fit, val = validation_split(data)
    labels, images = data.ds.labels, data.ds.images
    n_classes = len(data.ds.classes)
    dev = resolve_device(ft_cfg.device)
    val_u8, val_y = images[torch.as_tensor(val)], labels[val]
    steps = search_steps(data, ft_cfg, fraction, seeds, fit)
    try:
        old = json.loads(out_json.read_text()).get("arms", {})
    except (OSError, json.JSONDecodeError, AttributeError):
        old = {}
    report: dict[str, Any] = {"fraction": fraction, "seeds": list(seeds), "lrs": lrs, "n_fit": int(len(fit)), "n_val": int(len(val)),
                              "val_fraction": VAL_FRACTION, "val_seed": VAL_SEED, "finetune": ft_cfg.to_dict() | {"lr": None},
                              "steps": steps, "pretrain_epochs": train_cfg.epochs,
                              **({"pretrain_epochs_of": own_epochs} if own_epochs else {}),
                              **({"pretrain_batch_size_of": own_batch} if own_batch else {}),
                              **({"pretrain_image_size_of": own_size} if own_size else {}),
                              **({"task_options": own_opts} if own_opts else {}), "device": device_name(dev), "command": command, "arms": {}}
    for arm in arms:
        recipe = own.get(arm, Recipe())
        arm_train = task_train_cfg(train_cfg, recipe)
        h = settings_hash(arm, data, enc_cfg, arm_train, ft_cfg, fraction, steps, own_opts.get(arm), recipe.image_size)
        state, ck_sha = None, None
        if arm in keep:
            prev = old.get(arm) or {}
            have = prev.get("val_accuracy") or {}
            if prev.get("settings_hash") != h or prev.get("seeds") != list(seeds) or any(f"{lr:g}" not in have for lr in lrs):
                raise UserError(f"--keep {arm}: {out_json} has no finished scores of {arm} with these settings, seeds and rates; "
                                f"drop {arm} from --keep so that it is fine-tuned from its checkpoint")
            scores = {f"{lr:g}": have[f"{lr:g}"] for lr in lrs}
            chosen = choose({float(k): v for k, v in scores.items()})
            report["arms"][arm] = prev | {"val_accuracy": scores, "chosen_lr": chosen, "at_edge": at_edge(chosen, lrs)}
            write_json_atomic(out_json, report)
            continue
        if arm != SCRATCH:
            state, summary = pretrained_encoder(arm, data, enc_cfg, train_cfg, runs_dir, recipe, progress=progress)
            ck_sha = sha256_file(summary["checkpoint"])
        t0 = time.time()  # an arm's seconds are its fine-tunes': pretraining has its own record in the run's summary.json
        # scores are kept only if made from this very encoder: a task whose code changed pretrains
        # another one under the same settings
        prev = old.get(arm, {})
        if prev.get("settings_hash") != h or prev.get("checkpoint_sha256") != ck_sha:
            prev = {}
        scores: dict[str, list[float]] = {}
        for lr in lrs:
            key = f"{lr:g}"
            if key in prev.get("val_accuracy", {}) and len(prev["val_accuracy"][key]) == len(seeds) and prev.get("seeds") == list(seeds):
                scores[key] = prev["val_accuracy"][key]
                continue
            accs = []
            for seed in seeds:
                sub = labelled_subset(fit, labels, fraction, seed)
                model, _ = finetune(state, enc_cfg, images[torch.as_tensor(sub)], labels[sub], n_classes, replace(ft_cfg, lr=lr), seed)
                accs.append(float((predict(model, val_u8, dev).argmax(1) == val_y).mean()))
            scores[key] = accs
            if progress:
                print(f"[finetune-lr] {arm:>12} lr {lr:g}: validation {100 * np.mean(accs):.1f}%", flush=True)
        chosen = choose({float(k): v for k, v in scores.items()})
        report["arms"][arm] = {"settings_hash": h, "checkpoint_sha256": ck_sha, **({"pretrain_epochs": arm_train.epochs} if arm != SCRATCH else {}),
                               "seeds": list(seeds), "val_accuracy": scores, "chosen_lr": chosen,
                               "at_edge": at_edge(chosen, lrs),
                               "seconds": round(time.time() - t0 + prev.get("seconds", 0), 1)}
        write_json_atomic(out_json, report)
    return report


def chosen_lrs(path: Path) -> dict[str, float]:
    """``{arm: lr}`` from a finetune-lr report, for ``protocol --ft-lrs``; a clear error when the
    file is missing or is not such a report."""
    try:
        r = json.loads(Path(path).read_text())
        out = {arm: float(v["chosen_lr"]) for arm, v in r["arms"].items()}
    except FileNotFoundError:
        raise UserError(f"--ft-lrs {path}: no such file; make it with `python -m ssl_train finetune-lr` or drop --ft-lrs") from None
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise UserError(f"--ft-lrs {path}: not a finetune-lr report (no arms with a chosen_lr); remake it with `python -m ssl_train finetune-lr`") from None
    if not out or any(not lr > 0 for lr in out.values()):
        raise UserError(f"--ft-lrs {path}: no positive learning rates in it; remake it with `python -m ssl_train finetune-lr`")
    return out


def to_markdown(r: dict[str, Any]) -> str:
    """The search as a table: validation accuracy (mean ± std over seeds) per arm and rate."""
    lrs = [f"{lr:g}" for lr in r["lrs"]]
    ft = r["finetune"]
    own = r.get("pretrain_epochs_of") or {}
    epochs = f"{r['pretrain_epochs']}" + (f" ({', '.join(f'{t} {n}' for t, n in sorted(own.items()))})" if own else "")
    extra = [f"{t} with {', '.join(f'{k}={v}' for k, v in sorted(o.items()))}" for t, o in sorted((r.get("task_options") or {}).items())]
    extra += [f"{t} in batches of {n} photos" for t, n in sorted((r.get("pretrain_batch_size_of") or {}).items())]
    extra += [f"{t} on {n}-px photos" for t, n in sorted((r.get("pretrain_image_size_of") or {}).items())]
    epochs += " epochs" + "".join(f"; {x}" for x in extra)
    lines = [
        "# Fine-tuning learning rate per encoder, chosen on a validation split",
        "",
        f"Fine-tuned on {r['fraction']:.0%} of the labels of {r['n_fit']} fit photos, scored on {r['n_val']} validation photos "
        f"(both from the training split; no test photo is read); seeds {r['seeds']}; pretrained arms after {epochs}; "
        f"schedule otherwise the protocol's ({ft['epochs']} epochs clamped to {ft['min_steps']}–{ft['max_steps']} steps"
        + (f": {r['steps']} here" if r.get("steps") else "") + ", "
        f"batch {ft['batch_size']}, SGD + Nesterov, weight decay {ft['weight_decay']}); {r['device']}.",
        "",
        "| encoder | " + " | ".join(f"lr {x}" for x in lrs) + " | chosen |",
        "|---|" + "---:|" * (len(lrs) + 1),
    ]
    for arm, v in r["arms"].items():
        cells = []
        for x in lrs:
            a = np.asarray(v["val_accuracy"].get(x, [])) * 100
            if not len(a):
                cells.append("–")
                continue
            cell = f"{a.mean():.1f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:.1f}"
            cells.append(f"**{cell}**" if float(x) == v["chosen_lr"] else cell)
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {v['chosen_lr']:g} |")
    total = sum(v.get("seconds", 0) for v in r["arms"].values())
    edge = [arm for arm, v in r["arms"].items() if at_edge(v["chosen_lr"], r["lrs"])]
    if edge:
        lines += ["", f"On the edge of the grid ({', '.join(edge)}): the best rate may lie beyond it; "
                  "rerun with a wider `--lrs` (scores already made are kept)."]
    lines += ["", "Validation accuracy %, mean ± std over seeds; bold: the chosen rate (highest mean; ties go to the smaller rate). "
              "`python -m ssl_train protocol --ft-lrs reports/finetune-lr.json` fine-tunes each encoder with its rate at every fraction.",
              # an arm's seconds add up over every run that scored it, so a --keep rerun is not the whole total
              "", f"Made by `{r['command']}`; its fine-tunes took {total / 60:.0f} min in all, kept arms' included (pretraining not counted).", ""]
    return "\n".join(lines)


def write_markdown(r: dict[str, Any], out_json: Path) -> Path:
    md = out_json.with_suffix(".md")
    md.write_text(to_markdown(r))
    return md

"""``python -m ssl_train release``: every shipped model and the results report, from nothing.

1. pretrain one encoder per registered task on the training split of the data (labels unused), each
   with its recipe (``ssl_train/tasks/<task>.py``: its own budget, photos per step, photo size, options,
   each chosen on validation) over ``--epochs``, ``--batch-size`` and ``--image-size``; the
   ``--task-epochs``, ``--task-batch-sizes``, ``--task-image-sizes`` and ``--task-options`` flags replace them;
   runs live in ``runs/<task>-<settings hash>/`` and a finished run with the same settings is reused,
   so a killed release continues where it stopped;
2. export each to ``models/<task>/`` plus the untrained reference ``models/random_init/`` (int8
   convolution weights by default: ten encoders and the reference fit the 30 MB budget); a folder already exported from
   the very same checkpoint is kept;
3. each encoder's fine-tuning learning rate, scratch's included, chosen on a validation split of the
   training photos (``finetune_lr``: ``reports/finetune-lr.json``; ``--no-ft-lr-search``: one rate for all);
4. the labelled-fraction protocol over every task and scratch, each fine-tuned with its rate →
   ``reports/protocol.json``, the figure, the table and the README's results block;
5. the protocol's downstream accuracies (mean ± std over seeds at 1, 10 and 100% labels where run)
   and the fine-tuning rates into each ``model.json`` under ``metrics``;
6. ``python -m app.precompute`` in its own process (the app and the training package meet through
   files), so the app's maps open at once.

Expected time with the defaults (10 tasks, 30 epochs, colorization, DeepCluster, PIRL and rotation 60, SimCLR 200 —
``--task-epochs``, their budgets chosen on validation —, rotation in batches of 16 photos — ``--task-batch-sizes`` — decoded
at 128 px — ``--task-image-sizes`` —, the learning-rate search, 3 seeds, 6 fractions, three methods): about 7 hours on a
2-core laptop CPU (measured for the shipped report, the sum of the runs it was assembled from: pretraining 169 min, SimCLR's
200 epochs 51, rotation's 60 epochs at 128 px 46, colorization's 60 epochs 17, PIRL's 15 and DeepCluster's 9 of them, the
learning-rate search 49 min, the protocol's 594 runs 209 min — the 33 fine-tunes at 100% labels, 1320 steps each, take 87 of
them — export and the app's maps 2 min; a reduced CPU budget, e.g.
``--epochs 15 --task-epochs '' --fractions 0.01,0.1``, pretrains in about a third of that and leaves a few
percent of the protocol's entries: 13 min when there were nine tasks). On a GPU it runs on CUDA with
bf16; its GPU time is not measured yet. ``--epochs``, ``--task-epochs``, ``--fractions`` and ``--seeds``
trade time for detail; every model.json records the budget it was made with.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import UserError
from .model_files import RANDOM_TASK as RANDOM_NAME  # the untrained reference's folder and task name

CARD_FRACTIONS = (0.01, 0.1, 1.0)  # the downstream accuracies copied into every model.json
# The shipped budget, every task alike, chosen on a validation split of the training photos, not on
# the test split: `python -m ssl_train budget`
# (reports/budget-rotation.md: 30 epochs gave the largest mean gain over scratch; 50 did not add).
RELEASE_EPOCHS = 30
# What a task is pretrained with beside the common budget (its own epochs, photos per step, photo size,
# options), each chosen on a validation split of the training photos, is the task's ``recipe``
# (``ssl_train/tasks/<task>.py``, ``Recipe`` in ``tasks/base.py``), with the report that chose it.
# ``--task-epochs`` and the other per-task flags override the recipes, a whole table at a time.


def shipped_recipes(tasks: list[str] | tuple[str, ...] | None = None) -> dict:
    """``{task: Recipe}`` of ``tasks`` (None: every registered task) that declare anything of their own."""
    from .tasks import Recipe, load_all, recipe_of, task_names

    load_all()
    return {t: r for t in (task_names() if tasks is None else tasks) if (r := recipe_of(t)) != Recipe()}


def shipped_tables(tasks: list[str] | tuple[str, ...] | None = None) -> dict[str, tuple]:
    """The recipes of ``tasks`` as the per-task tables (``protocol.PER_TASK_FIELDS``): release's
    default ``--task-epochs``, ``--task-batch-sizes``, ``--task-image-sizes`` and ``--task-options``."""
    from .protocol import recipe_tables

    return recipe_tables(shipped_recipes(tasks))


RANDOM_NOTE = ("not pretrained: random initialisation (seed 0), the scratch reference; the protocol's scratch runs "
               "start from a fresh random initialisation per seed")


def budget_note(epochs: int, devices: set[str], own_budget_of: str = "", task_epochs: dict[str, int] | None = None,
                batch_size: int = 0, image_size: int = 0, downstream_size: int = 0) -> str:
    """The sentence every model.json carries about the budget its encoder was pretrained with
    (``devices``: where the pretraining runs ran, e.g. ``{"cpu (2 cores, x86_64)"}``; ``own_budget_of``:
    the task, when it was pretrained for its own budget rather than the release's common one;
    ``task_epochs``: every task's own budget in this release, so that the retrain command keeps them;
    the study named is the one the task's recipe says chose its budget (and its photo size), else ``budget``'s;
    ``batch_size``: the photos per step of a task with its own budget, when it has its own;
    ``image_size``: the size of the photos it was pretrained on, when it is its own, and ``downstream_size``
    the protocol's, which every arm is fine-tuned and probed on)."""
    where = ", ".join(sorted(devices)) or "an unknown device"
    photos = f"{image_size}-px photos" if image_size else "photos"
    per_step = f" in batches of {batch_size} {photos}" if batch_size else (f" on {photos}" if image_size else "")
    if image_size and downstream_size:
        per_step += f" (downstream, like every arm, on {downstream_size}-px photos)"
    from .tasks import TASKS, Recipe, load_all

    load_all()
    recipe = TASKS[own_budget_of].recipe if own_budget_of in TASKS else Recipe()
    study = recipe.epochs_chosen_in or f"reports/budget-{own_budget_of}.md"
    if image_size and recipe.image_size_chosen_in:
        study += f"; its photo size: {recipe.image_size_chosen_in}"
    what = (f"{epochs} epochs{per_step}, this task's own budget (chosen on a validation split: {study})"
            if own_budget_of else f"{epochs} epochs per task{per_step}")
    if devices and all(d.startswith("cuda") for d in devices):
        return f"{what.replace(' epochs', ' pretraining epochs', 1)} on {where}"
    others = ",".join(f"{t}={n}" for t, n in sorted((task_epochs or {}).items()) if t != own_budget_of)
    spec = ",".join(x for x in (others, f"{own_budget_of}=N") if x)
    retrain = f"`python -m ssl_train release --task-epochs {spec}`, N larger" if own_budget_of else "`python -m ssl_train release --epochs 200`"
    return (f"pretrained on a CPU ({where}), not a GPU, so with a smaller budget than a GPU affords: {what}; "
            f"on a GPU, retrain with {retrain}")


def card_budget(task: str, own: dict, tasks: list[str], epochs: int, devices: set[str], downstream_size: int) -> dict[str, Any]:
    """A pretrained model card's ``budget`` epochs and note, from the tasks' own settings ``own``
    (``protocol.own_recipes``: each recipe or the flags that override it) beside the common ``epochs``."""
    from .tasks import Recipe

    r = own.get(task, Recipe())
    # the retrain hint names every task's own budget, the shipped ones of tasks outside this release included
    hint_epochs = {**{t: x.epochs for t, x in shipped_recipes().items() if x.epochs and t not in tasks},
                   **{t: x.epochs for t, x in own.items() if x.epochs}}
    # a task with neither its own budget nor its own photo size gets the common note (budget_note says no more of it)
    return {"epochs": r.epochs or epochs,
            "note": budget_note(r.epochs or epochs, devices, own_budget_of=task if r.epochs else "", task_epochs=hint_epochs,
                                batch_size=(r.batch_size or 0) if r.epochs else 0, image_size=r.image_size or 0, downstream_size=downstream_size)}


def finetune_lr_command(tasks: list[str], seeds: tuple[int, ...], own: dict) -> str:
    """The ``finetune-lr`` command equivalent to release's learning-rate step with the tasks' own
    settings ``own``. It holds only for release's defaults (its other options, e.g. --epochs or --data,
    would be missing from it); otherwise the report names the release command itself."""
    from .protocol import PER_TASK_FLAGS, recipe_tables

    out = f"python -m ssl_train finetune-lr --arms scratch,{','.join(tasks)} --seeds {','.join(map(str, seeds))}"
    for table, pairs in recipe_tables(own).items():
        if pairs and table == "task_options":
            out += " --task-options " + ",".join(f"{t}.{k}={v}" for t, o in pairs for k, v in sorted(o))
        elif pairs:
            out += f" {PER_TASK_FLAGS[table]} " + ",".join(f"{t}={n}" for t, n in pairs)
    return out


@dataclass(frozen=True)
class ReleaseConfig:
    tasks: tuple[str, ...] = ()  # empty: every registered task
    models_dir: str = "models"
    report: str = "reports/protocol.json"
    runs_dir: str = "runs"
    weights: str = "int8"  # int8 | float16 | float32
    protocol: bool = True
    precompute: bool = True
    readme: bool = True
    ft_lr_search: str = "reports/finetune-lr.json"  # "": every encoder fine-tunes with --ft-lr

    def __post_init__(self) -> None:
        if self.weights not in ("int8", "float16", "float32"):
            raise UserError(f"--weights {self.weights!r} is not one of int8, float16, float32")

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_tasks(names: tuple[str, ...]) -> list[str]:
    """``names`` checked against the registry; empty → every registered task."""
    from .tasks import get_task, load_all, task_names

    load_all()
    tasks = list(names) or task_names()
    for t in tasks:
        get_task(t)  # a UserError naming the registered tasks
    return tasks


def finetune_lrs_of(config: dict, arm: str) -> dict[str, Any]:
    """The fine-tuning learning rates a protocol report's numbers were made with, for one model card:
    ``{"lr": this encoder's, "scratch_lr": scratch's, "chosen_on": ...}``."""
    from .protocol import SCRATCH, arm_lr

    return {"lr": float(arm_lr(config, arm) or 0.0), "scratch_lr": float(arm_lr(config, SCRATCH) or 0.0),
            "chosen_on": "validation split of the training photos (reports/finetune-lr.md)" if config.get("finetune_lr") else "fixed for every encoder (--ft-lr)"}


def finetune_schedule_of(config: dict) -> dict[str, Any]:
    """The fine-tuning schedule behind a report's fine-tune numbers, for a model card (the rate is in
    ``finetune_lr``): without it "fine-tune at 100%" cannot be compared across releases."""
    ft = config.get("finetune") or {}
    keep = ("epochs", "min_steps", "max_steps", "batch_size", "weight_decay", "label_smoothing", "crop_scale_min")
    return {k: ft[k] for k in keep if k in ft} | {"optimizer": "SGD, Nesterov momentum 0.9, warm-up then cosine"}


def card_metrics(summary: list[dict], task: str, fractions: tuple[float, ...] = CARD_FRACTIONS) -> dict[str, Any]:
    """Protocol summary rows of one encoder (``scratch`` for the random reference) →
    ``{"<mode>": {"<percent>%": {"mean", "std", "n_seeds"}}, "test_split": "..."}`` at ``fractions``."""
    out: dict[str, Any] = {}
    for r in summary:
        if r["task"] != task or not any(abs(r["fraction"] - f) < 1e-9 for f in fractions):
            continue
        pct = f"{r['fraction'] * 100:g}%"
        out.setdefault(r["mode"], {})[pct] = {"mean": round(r["mean"], 4), "std": round(r["std"], 4), "n_seeds": r["n_seeds"]}
    return out


def export_is_current(model_dir: Path, weights: str, *, checkpoint: str | Path | None = None, random_reference: dict | None = None) -> bool:
    """True when ``model_dir`` already holds this export: it verifies (every sha256), its weights are
    stored as ``weights`` (int8 | float16 | float32), and it came from the very ``checkpoint`` file
    (by sha256) — or, for the untrained reference, ``random_reference`` ({encoder, image_size, seed})
    matches its card. A release then keeps the folder instead of writing the same model again
    (re-exporting changes bytes, and every changed model binary stays in the git history)."""
    from .model_files import sha256_file, verify_model_dir

    try:
        card = verify_model_dir(model_dir)
    except Exception:  # noqa: BLE001 — absent, altered or unreadable: export anew
        return False
    stored = (card.get("weights") or {}).get("storage_dtype")
    # what export_model records for each --weights choice; anything else (e.g. mixed dtypes): export anew
    want = {"int8": ["float16", "int8"], "float16": "float16", "float32": "float32"}[weights]
    if stored != want:
        return False
    if checkpoint is not None:
        src = card.get("source_checkpoint") or {}
        return Path(checkpoint).is_file() and src.get("sha256") == sha256_file(checkpoint)
    if random_reference is not None:
        return (card.get("task") == RANDOM_NAME and card.get("encoder") == random_reference["encoder"]
                and (card.get("input") or {}).get("image_size") == random_reference["image_size"] and card.get("seed") == random_reference["seed"])
    return False


def measured_at_px(downstream: int, model_dir: Path) -> dict[str, int]:
    """The photo size, px, each metric of a card was measured at: the protocol's (fine-tune, linear
    probe, kNN) and the stored-weights check at the ``downstream`` size every arm sees; the pretext
    test at the model's own input size (rotation: pretrained and pretext-tested at 128 px, judged
    downstream at 96 px)."""
    card = json.loads((Path(model_dir) / "model.json").read_text())
    own = int(card["input"]["image_size"])
    return {"finetune": downstream, "linear": downstream, "knn": downstream, "stored_weights_check": downstream, "pretext_test": own}


def write_card_metrics(model_dir: Path, metrics: dict[str, Any]) -> None:
    """Replace ``metrics`` in ``model_dir/model.json`` (atomically), paths inside the repository written
    relative to it (``paths.portable``). The card's file hashes do not cover model.json itself, so the
    folder still verifies."""
    from .model_files import CARD_NAME, verify_model_dir
    from .paths import portable

    path = model_dir / CARD_NAME
    card = json.loads(path.read_text())
    card["metrics"] = metrics
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(portable(card), indent=2) + "\n")  # cards of earlier exports become portable too
    os.replace(tmp, path)
    verify_model_dir(model_dir)


def storage_check(state_fp32: dict, model_dir: Path, data, device: str = "cpu") -> dict[str, Any]:
    """What the stored (e.g. int8) weights cost: kNN test accuracy (k = 20, every training label) of
    the float32 encoder ``state_fp32`` vs the encoder rebuilt from ``model_dir``'s weights file, and
    the largest relative feature difference on the test photos."""
    import numpy as np
    import torch

    from .encoders import EncoderConfig, build_encoder
    from .evaluate import extract_features, knn_eval
    from .model_files import load_model_weights
    from .runtime import resolve_device

    dev = resolve_device(device)
    stored, _, card = load_model_weights(model_dir)
    ref = build_encoder(EncoderConfig.from_dict(card["encoder"]))
    ref.load_state_dict(state_fp32)
    y, tr, te = data.ds.labels, data.train_idx, data.test_idx
    out: dict[str, Any] = {"weights": card["weights"]["storage_dtype"]}
    feats = {}
    for name, enc in (("float32", ref), ("stored", stored)):
        f = extract_features(enc, data.ds.images, dev)[-1]
        feats[name] = f
        out[f"knn_test_accuracy_{name}"] = round(knn_eval(f[tr], y[tr], f[te], y[te], len(data.ds.classes))["test_accuracy"], 4)
    a, b = feats["float32"][te], feats["stored"][te]
    out["max_relative_feature_difference"] = float(np.abs(a - b).max() / max(1e-12, float(np.abs(a).max())))
    return out


def _existing_report(path: Path, tasks: list[str]) -> dict | None:
    """A finished protocol report at ``path`` that covers ``tasks`` (to fill model cards without
    rerunning it), else None."""
    try:
        rep = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rep, dict) or "summary" not in rep or not set(tasks) <= {r.get("task") for r in rep.get("runs", [])}:
        return None
    return rep


def learning_map(model_dir: Path, run_dir: Path, data) -> str:
    """Write ``model_dir/learning.npz`` (the talk's "watch it learn") from the run's feature
    snapshots; a run made before snapshots existed has none: say so. Returns a one-line note."""
    from .snapshots import SNAPSHOT_FILE, write_learning

    if not (run_dir / SNAPSHOT_FILE).is_file():
        return f"no feature snapshots in {run_dir} (a run made before --snapshots): no learning map"
    idx = data.test_idx
    out = write_learning(model_dir, run_dir, data.ds.labels[idx], data.ds.classes, [data.ds.files[i] for i in idx])
    return f"learning map {out} ({out.stat().st_size / 1e3:.0f} KB)"


def release_plan(rcfg: ReleaseConfig, data, enc_cfg, train_cfg, ft_cfg, pcfg) -> dict[str, Any]:
    """What ``run_release`` would reuse, found without training or writing anything (``release --dry-run``):
    per task the run it pretrains into (``runs/<task>-<settings hash>``) and whether the shipped model
    card and the protocol report were made from that very run; its learning-rate search entry (settings
    hash and checkpoint); its protocol entries reusable under this release's settings (``reusable_runs``,
    made from the checkpoint the report records). ``{"tasks": {task: {...}}, "config_hash": ..., ...}``."""
    from .studies.finetune_lr import DEFAULT_LRS, SEARCH_FRACTION, search_steps, settings_hash
    from .model_files import verify_model_dir
    from .protocol import SCRATCH, own_recipes, protocol_config, config_hash, reusable_runs, run_dir, task_train_cfg
    from .tasks import Recipe

    tasks = resolve_tasks(rcfg.tasks)
    own = own_recipes(pcfg.tables(), train_cfg, data.cfg.image_size)
    split = data.split_sha256

    def read(path: str) -> dict:
        try:
            return json.loads(Path(path).read_text())
        except (OSError, ValueError):
            return {}

    report, search = read(rcfg.report), read(rcfg.ft_lr_search) if rcfg.ft_lr_search else {}
    steps = search_steps(data, ft_cfg, SEARCH_FRACTION, list(pcfg.seeds)) if search else 0
    lrs = {f"{x:g}" for x in DEFAULT_LRS}
    rows: dict[str, dict[str, Any]] = {}
    for t in [SCRATCH, *tasks]:
        recipe = own.get(t, Recipe())
        row: dict[str, Any] = {}
        if t != SCRATCH:
            run = run_dir(t, data, enc_cfg, train_cfg, Path(rcfg.runs_dir), recipe)
            t_cfg = task_train_cfg(train_cfg, recipe)
            row["run"] = str(run)
            row["settings"] = f"{t_cfg.epochs} epochs, {t_cfg.batch_size} photos per step, {recipe.image_size or data.cfg.image_size}-px photos" + (
                "".join(f", {k}={v}" for k, v in recipe.options))
            row["run_here"] = (run / "summary.json").is_file()
            pre = (report.get("pretraining") or {}).get(t) or {}
            row["report_run"] = Path(pre.get("checkpoint") or "").parent.name == run.name
            row["sha256"] = pre.get("checkpoint_sha256") if row["report_run"] else None  # the checkpoint of this very run
            try:
                card = verify_model_dir(Path(rcfg.models_dir) / t)
            except Exception:  # noqa: BLE001 — absent or altered: export anew
                card = {}
            src = card.get("source_checkpoint") or {}
            row["model_run"] = Path(src.get("path") or "").parent.name == run.name and bool(src.get("sha256")) and src.get("sha256") == row["sha256"]
        arm = (search.get("arms") or {}).get(t) or {}
        if search:
            h = settings_hash(t, data, enc_cfg, task_train_cfg(train_cfg, recipe), ft_cfg, SEARCH_FRACTION, steps, dict(recipe.options) or None,
                              recipe.image_size)
            row["lr_search"] = (arm.get("settings_hash") == h and arm.get("seeds") == list(pcfg.seeds) and lrs <= set(arm.get("val_accuracy") or {})
                                and arm.get("checkpoint_sha256") == row.get("sha256"))
        rows[t] = row
    ft_lrs = {a: v["chosen_lr"] for a, v in (search.get("arms") or {}).items()} if search and "finetune" in pcfg.modes else None
    config = protocol_config(pcfg, enc_cfg, train_cfg, ft_cfg, data.cfg, ft_lrs)
    done = reusable_runs(report, config, split) if report else {}
    for t, row in rows.items():
        keys = [(t, m, f, s) for s in pcfg.seeds for f in pcfg.fractions for m in pcfg.modes]
        row["entries"] = sum(k in done for k in keys) if t == SCRATCH or row["report_run"] else 0
        row["entries_wanted"] = len(keys)
    return {"tasks": rows, "config_hash": config_hash(config, split), "report_config_hash": report.get("config_hash"),
            "report": rcfg.report, "ft_lr_search": rcfg.ft_lr_search}


def plan_lines(plan: dict[str, Any]) -> tuple[list[str], bool]:
    """``release_plan`` as lines, and whether every run, model, search entry and protocol entry is found finished."""
    lines, ok = [], True
    for t, r in plan["tasks"].items():
        found = [r.get(k, True) for k in ("report_run", "model_run", "lr_search")] + [r["entries"] == r["entries_wanted"]]
        ok &= all(found)
        if "run" in r:
            lines.append(f"{t}: {r['settings']} → {r['run']} (sha256 {str(r['sha256'])[:12]}; checkpoint "
                         f"{'here' if r['run_here'] else 'not in this checkout: pretrained again before export'})")
            lines.append(f"    protocol report's run {'=' if r['report_run'] else '≠'} this run; model card's run {'=' if r['model_run'] else '≠'} this run")
        else:
            lines.append(f"{t}: never pretrained")
        if "lr_search" in r:
            lines.append(f"    learning-rate search entry {'finished, same settings and checkpoint' if r['lr_search'] else 'MISSING or other settings'}")
        lines.append(f"    protocol entries reusable: {r['entries']}/{r['entries_wanted']}")
    same = plan["config_hash"] == plan["report_config_hash"]
    ok &= same
    lines.append(f"config hash {plan['config_hash']} {'=' if same else '≠'} {plan['report']}'s {plan['report_config_hash']}")
    pretrained = [r for r in plan["tasks"].values() if "run" in r]
    lines.append(f"checkpoints here: {sum(r['run_here'] for r in pretrained)} of {len(pretrained)} (runs/ is not tracked: without its "
                 "checkpoint a task is pretrained again, and its model and entries kept only if that rerun gives the same checkpoint, by sha256)")
    lines.append("every run, model, search entry and protocol entry found finished" if ok else "NOT everything is found: a release would redo the rest")
    return lines, ok


# Long on purpose (~115 lines): steps 1–6 of the module docstring, in order and each a few lines, every step
# reading what the ones before left (checkpoints, model folders, the rates, the report); split, it would pass them all around.
def run_release(
    rcfg: ReleaseConfig,
    data,
    enc_cfg,
    train_cfg,
    ft_cfg,
    pcfg,
    repo: Path,
    say: Callable[[str], None] = print,
    command: str = "python -m ssl_train release",
) -> dict[str, Any]:
    """Steps 1–6 of the module docstring. Returns ``{"models": {...}, "report": path, "seconds": {...}}``."""
    from .export import export_model, export_random_reference
    from .protocol import SCRATCH, own_recipes, pretrained_encoder, run_protocol, task_train_cfg
    from .report import write_reports
    from .tasks import Recipe

    tasks = resolve_tasks(rcfg.tasks)
    models_dir, runs_dir, report_path = Path(rcfg.models_dir), Path(rcfg.runs_dir), Path(rcfg.report)
    fp16, int8 = rcfg.weights != "float32", rcfg.weights == "int8"
    seconds: dict[str, float] = {}
    t0 = time.time()
    checkpoints: dict[str, str] = {}
    states: dict[str, dict] = {}
    devices: set[str] = set()
    # each task's recipe (or the --task-* flags that override it) where it differs from the common settings
    own = own_recipes(pcfg.tables(), train_cfg, data.cfg.image_size)
    for t in tasks:
        t_cfg = task_train_cfg(train_cfg, own.get(t, Recipe()))
        size = own.get(t, Recipe()).image_size or data.cfg.image_size
        say(f"[release] pretrain {t} ({t_cfg.epochs} epochs, {t_cfg.batch_size} photos per step, {size}-px photos)")
        states[t], summary = pretrained_encoder(t, data, enc_cfg, train_cfg, runs_dir, own.get(t, Recipe()), progress=False)
        checkpoints[t] = summary["checkpoint"]
        devices.add(str(summary.get("device", "unknown device")))
        say(f"[release]   {t}: {summary.get('train_seconds_total', 0) / 60:.1f} min, pretext test {summary.get('pretext_test')}")
    seconds["pretrain"] = time.time() - t0
    budget = {
        "epochs": train_cfg.epochs, "protocol_seeds": list(pcfg.seeds), "protocol_fractions": list(pcfg.fractions),
        "made_by": "python -m ssl_train release", "pretrained_on": sorted(devices), "note": budget_note(train_cfg.epochs, devices),
    }
    budgets = {t: {**budget, **card_budget(t, own, tasks, train_cfg.epochs, devices, data.cfg.image_size)} for t in tasks}

    t0 = time.time()
    exported: dict[str, Path] = {}
    for t in tasks:
        if export_is_current(models_dir / t, rcfg.weights, checkpoint=checkpoints[t]):
            exported[t] = models_dir / t
            say(f"[release] kept {exported[t]} (exported from this very checkpoint, files verified)")
            continue
        exported[t] = export_model(checkpoints[t], models_dir, t, {"budget": budgets[t]}, fp16_storage=fp16, int8=int8)
        say(f"[release] exported {exported[t]}")
    for t in tasks:
        say(f"[release]   {t}: {learning_map(exported[t], Path(checkpoints[t]).parent, data)}")
    # the reference is never pretrained: its card says so instead of carrying the others' budget note
    random_budget = {**budget, "epochs": 0, "pretrained_on": [], "note": RANDOM_NOTE}
    ref = {"encoder": json.loads(json.dumps(enc_cfg.to_dict())), "image_size": int(data.cfg.image_size), "seed": 0}
    if export_is_current(models_dir / RANDOM_NAME, rcfg.weights, random_reference=ref):
        exported[RANDOM_NAME] = models_dir / RANDOM_NAME
        say(f"[release] kept {exported[RANDOM_NAME]}")
    else:
        exported[RANDOM_NAME] = export_random_reference(models_dir, enc_cfg, data.cfg.image_size, seed=0, name=RANDOM_NAME,
                                                        metrics={"budget": random_budget}, fp16_storage=fp16, int8=int8)
    checks = {t: storage_check(states[t], exported[t], data, ft_cfg.device) for t in tasks}
    for t, c in checks.items():
        say(f"[release] {t} stored weights: kNN {c['knn_test_accuracy_float32']:.4f} (float32) → {c['knn_test_accuracy_stored']:.4f} ({c['weights']})")
    seconds["export"] = time.time() - t0

    report = None
    if rcfg.protocol:
        ft_lrs = None
        if rcfg.ft_lr_search and "finetune" in pcfg.modes:
            from .studies.finetune_lr import DEFAULT_LRS, SEARCH_FRACTION, write_markdown
            from .studies.finetune_lr import run as search_lrs
            from .protocol import recipe_tables

            t0 = time.time()
            say(f"[release] fine-tuning learning rate per encoder, on a validation split: {', '.join(f'{x:g}' for x in DEFAULT_LRS)}")
            search = search_lrs([SCRATCH, *tasks], list(DEFAULT_LRS), data, enc_cfg, train_cfg, ft_cfg, runs_dir, SEARCH_FRACTION, list(pcfg.seeds),
                                Path(rcfg.ft_lr_search), progress=False, **recipe_tables(own),
                                command=finetune_lr_command(tasks, pcfg.seeds, own) if command == "python -m ssl_train release" else f"{command} (its learning-rate step)")
            write_markdown(search, Path(rcfg.ft_lr_search))
            ft_lrs = {a: v["chosen_lr"] for a, v in search["arms"].items()}
            say("[release]   chosen: " + ", ".join(f"{a} {lr:g}" for a, lr in ft_lrs.items()))
            seconds["finetune_lr"] = time.time() - t0
        t0 = time.time()
        report = run_protocol(data, pcfg, enc_cfg, train_cfg, ft_cfg, report_path, runs_dir, progress=True, command=command, ft_lrs=ft_lrs)
        write_reports(report_path, repo / "README.md" if rcfg.readme else None)
        seconds["protocol"] = time.time() - t0
    else:
        report = _existing_report(report_path, tasks)
    for name, path in exported.items():
        m: dict[str, Any] = {"budget": random_budget if name == RANDOM_NAME else budgets[name]}
        if report is not None:
            m.update(card_metrics(report["summary"], SCRATCH if name == RANDOM_NAME else name))
            m["test_split"] = f"{report['n_test']} photos of {Path(report['split_file']).name} (sha256 {report['split_sha256'][:12]})"
            m["protocol_report"] = str(report_path.name)
            # every arm's downstream photos, whatever size the encoder was pretrained on (its input.image_size)
            m["downstream_image_size"] = int(report["config"]["data"]["image_size"])
            m["measured_at_px"] = measured_at_px(m["downstream_image_size"], path)
            m["finetune_lr"] = finetune_lrs_of(report["config"], SCRATCH if name == RANDOM_NAME else name)
            m["finetune_schedule"] = finetune_schedule_of(report["config"])
        if name in checks:
            m["stored_weights_check"] = checks[name]
        write_card_metrics(path, m)

    if rcfg.precompute and (repo / "app" / "precompute.py").is_file():
        t0 = time.time()
        say("[release] app layouts: python -m app.precompute")
        env = dict(os.environ, PRETEXT_LAB_MODELS=str(models_dir.resolve()), PRETEXT_LAB_DATA=str(Path(data.cfg.root).resolve()))
        r = subprocess.run([sys.executable, "-m", "app.precompute", *exported], cwd=repo, env=env)
        if r.returncode != 0:
            raise UserError(f"python -m app.precompute failed (exit {r.returncode}); the models are exported — rerun it alone")
        seconds["precompute"] = time.time() - t0
    return {"models": {k: str(v) for k, v in exported.items()}, "report": str(report_path) if report else None, "seconds": seconds}

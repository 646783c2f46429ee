"""``python -m ssl_train release``: every shipped model and the results report, from nothing.

1. pretrain one encoder per registered task on the training split of the data (labels unused), each
   for ``--epochs`` or, for the tasks ``--task-epochs`` names, their own budget, in batches of
   ``--batch-size`` photos or, for the tasks ``--task-batch-sizes`` names, their own;
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
from .export import RANDOM_TASK as RANDOM_NAME  # the untrained reference's folder and task name

CARD_FRACTIONS = (0.01, 0.1, 1.0)  # the downstream accuracies copied into every model.json
# The shipped budget, every task alike, chosen on a validation split of the training photos, not on
# the test split: `python -m ssl_train budget`
# (reports/budget-rotation.md: 30 epochs gave the largest mean gain over scratch; 50 did not add).
RELEASE_EPOCHS = 30
# Tasks whose own validation study (reports/budget-<task>.md) kept gaining past the common budget, each
# pretrained for the budget it chose there. Context, inpainting and superres chose 15 epochs, but
# neither 15 nor 30 gains over scratch on validation (+0.1 to +0.7 ± 0.7–1.7 points), so
# they stay at the common budget rather than be retrained for a difference inside the noise.
RELEASE_TASK_EPOCHS: tuple[tuple[str, int], ...] = (
    ("colorization", 60),  # reports/budget-colorization.md: +8.7 at 60 vs +5.6 at 30
    ("deepcluster", 60),  # reports/budget-deepcluster.md: +2.3 at 60 vs +1.0 at 30
    ("pirl", 60),  # reports/budget-pirl.md: +12.6 at 60 vs +5.9 at 30
    ("rotation", 60),  # reports/rotation-batch.md: pretext 78.0% on validation at 60 vs 75.8% at 30 (16 photos per step)
    ("simclr", 200),  # reports/budget-simclr.md: +20.0 at 200 vs +15.0 at 60
)
# Tasks pretrained in batches of other than the common 128 photos per step, each chosen on a validation
# split of the training photos (``pretrain --holdout validation``).
# reports/rotation-batch.md: rotation at 30 epochs scores 75.8% on validation with 16 photos per step, 75.2%
# with 32, 70.7% with 128 — the same compute in 8× the steps; with 16, 60 epochs reach 78.0% (100: 77.9%;
# 8 photos per step at 60: 77.2%). reports/rotation-settings.md: at 16 and 60, crops to 20%, weight decay 0.002
# and peak rate 0.05 scored lower (76.5–77.1%), weight decay 0.0001 and peak rate 0.2 within a few tenths
# (78.3%, 78.2%; one run each), so rotation keeps the common ones.
RELEASE_TASK_BATCH_SIZES: tuple[tuple[str, int], ...] = (
    ("rotation", 16),
)
# Tasks pretrained on photos decoded at another size than the protocol's 96 px, each chosen on a
# validation split of the training photos (``pretrain --holdout validation --image-size PX``). Downstream
# every arm, scratch included, sees the same 96-px photos.
# reports/rotation-seeds.md, reports/rotation-input.md: rotation trained and judged at 128 px scores 78.9, 77.8
# and 79.4% on validation (seeds 0-2) against 77.6, 76.9 and 78.8% at 96 px: ahead with every seed.
RELEASE_TASK_IMAGE_SIZES: tuple[tuple[str, int], ...] = (
    ("rotation", 128),
)
# Task config fields other than the defaults, per task, each chosen on a validation split of the
# training photos (``pretrain --holdout validation``). None: reports/rotation-head.md found no rotation
# head better than the pooled default at 30 epochs (70.7% pooled, 70.9% hidden layer, 70.6% 2×2 grid). The shape
# is (("rotation", (("grid", "2"),)),).
RELEASE_TASK_OPTIONS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
RANDOM_NOTE = ("not pretrained: random initialisation (seed 0), the scratch reference; the protocol's scratch runs "
               "start from a fresh random initialisation per seed")


# The validation study a task's own budget was chosen in, where it is not ``python -m ssl_train budget``'s
# reports/budget-<task>.md (rotation's budget went with its batch size: pretext accuracy on validation).
BUDGET_STUDIES = {"rotation": "reports/rotation-batch.md"}
# The validation study a task's own photo size (``RELEASE_TASK_IMAGE_SIZES``) was chosen in.
IMAGE_SIZE_STUDIES = {"rotation": "reports/rotation-seeds.md"}


def budget_note(epochs: int, devices: set[str], own_budget_of: str = "", task_epochs: dict[str, int] | None = None,
                batch_size: int = 0, image_size: int = 0, downstream_size: int = 0) -> str:
    """The sentence every model.json carries about the budget its encoder was pretrained with
    (``devices``: where the pretraining runs ran, e.g. ``{"cpu (2 cores, x86_64)"}``; ``own_budget_of``:
    the task, when it was pretrained for its own budget rather than the release's common one;
    ``task_epochs``: every task's own budget in this release, so that the retrain command keeps them;
    ``batch_size``: the photos per step of a task with its own budget, when it has its own;
    ``image_size``: the size of the photos it was pretrained on, when it is its own, and ``downstream_size``
    the protocol's, which every arm is fine-tuned and probed on)."""
    where = ", ".join(sorted(devices)) or "an unknown device"
    photos = f"{image_size}-px photos" if image_size else "photos"
    per_step = f" in batches of {batch_size} {photos}" if batch_size else (f" on {photos}" if image_size else "")
    if image_size and downstream_size:
        per_step += f" (downstream, like every arm, on {downstream_size}-px photos)"
    study = BUDGET_STUDIES.get(own_budget_of, f"reports/budget-{own_budget_of}.md")
    if image_size and own_budget_of in IMAGE_SIZE_STUDIES:
        study += f"; its photo size: {IMAGE_SIZE_STUDIES[own_budget_of]}"
    what = (f"{epochs} epochs{per_step}, this task's own budget (chosen on a validation split: {study})"
            if own_budget_of else f"{epochs} epochs per task{per_step}")
    if devices and all(d.startswith("cuda") for d in devices):
        return f"{what.replace(' epochs', ' pretraining epochs', 1)} on {where}"
    others = ",".join(f"{t}={n}" for t, n in sorted((task_epochs or {}).items()) if t != own_budget_of)
    spec = ",".join(x for x in (others, f"{own_budget_of}=N") if x)
    retrain = f"`python -m ssl_train release --task-epochs {spec}`, N larger" if own_budget_of else "`python -m ssl_train release --epochs 200`"
    return (f"pretrained on a CPU ({where}), not a GPU, so with a smaller budget than a GPU affords: {what}; "
            f"on a GPU, retrain with {retrain}")


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
    from .export import load_model_weights
    from .train import resolve_device

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
    from .protocol import SCRATCH, options_of, own_budgets, pretrained_encoder, run_protocol, task_train_cfg
    from .report import write_reports

    tasks = resolve_tasks(rcfg.tasks)
    models_dir, runs_dir, report_path = Path(rcfg.models_dir), Path(rcfg.runs_dir), Path(rcfg.report)
    fp16, int8 = rcfg.weights != "float32", rcfg.weights == "int8"
    seconds: dict[str, float] = {}
    t0 = time.time()
    checkpoints: dict[str, str] = {}
    states: dict[str, dict] = {}
    devices: set[str] = set()
    own_epochs = own_budgets(pcfg.task_epochs, train_cfg.epochs)
    own_batch = own_budgets(pcfg.task_batch_sizes, train_cfg.batch_size)
    own_size = own_budgets(pcfg.task_image_sizes, data.cfg.image_size)
    own_opts = options_of(pcfg.task_options)
    for t in tasks:
        t_cfg = task_train_cfg(train_cfg, t, own_epochs, own_batch)
        size = own_size.get(t, data.cfg.image_size)
        say(f"[release] pretrain {t} ({t_cfg.epochs} epochs, {t_cfg.batch_size} photos per step, {size}-px photos)")
        states[t], summary = pretrained_encoder(t, data, enc_cfg, t_cfg, runs_dir, task_options=own_opts.get(t), progress=False, image_size=own_size.get(t))
        checkpoints[t] = summary["checkpoint"]
        devices.add(str(summary.get("device", "unknown device")))
        say(f"[release]   {t}: {summary.get('train_seconds_total', 0) / 60:.1f} min, pretext test {summary.get('pretext_test')}")
    seconds["pretrain"] = time.time() - t0
    budget = {
        "epochs": train_cfg.epochs, "protocol_seeds": list(pcfg.seeds), "protocol_fractions": list(pcfg.fractions),
        "made_by": "python -m ssl_train release", "pretrained_on": sorted(devices), "note": budget_note(train_cfg.epochs, devices),
    }
    # the retrain hint names every task's own budget, the shipped ones of tasks outside this release included
    hint_epochs = {**{t: n for t, n in RELEASE_TASK_EPOCHS if t not in tasks}, **own_epochs}
    # a task with neither its own budget nor its own photo size gets the common note (budget_note says no more of it)
    budgets = {t: {**budget, "epochs": own_epochs.get(t, train_cfg.epochs),
                   "note": budget_note(own_epochs.get(t, train_cfg.epochs), devices, own_budget_of=t if t in own_epochs else "", task_epochs=hint_epochs,
                                       batch_size=own_batch.get(t, 0) if t in own_epochs else 0, image_size=own_size.get(t, 0),
                                       downstream_size=data.cfg.image_size)}
               for t in tasks}

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
            from .finetune_lr import DEFAULT_LRS, SEARCH_FRACTION, write_markdown
            from .finetune_lr import run as search_lrs

            t0 = time.time()
            say(f"[release] fine-tuning learning rate per encoder, on a validation split: {', '.join(f'{x:g}' for x in DEFAULT_LRS)}")
            # the equivalent finetune-lr command holds only for release's defaults (its other options, e.g.
            # --epochs or --data, would be missing from it); otherwise the report names this very command
            ftlr = f"python -m ssl_train finetune-lr --arms scratch,{','.join(tasks)} --seeds {','.join(map(str, pcfg.seeds))}"
            for flag, own in (("--task-epochs", own_epochs), ("--task-batch-sizes", own_batch), ("--task-image-sizes", own_size)):
                if own:
                    ftlr += f" {flag} " + ",".join(f"{t}={n}" for t, n in sorted(own.items()))
            if own_opts:
                ftlr += " --task-options " + ",".join(f"{t}.{k}={v}" for t, o in sorted(own_opts.items()) for k, v in sorted(o.items()))
            search = search_lrs([SCRATCH, *tasks], list(DEFAULT_LRS), data, enc_cfg, train_cfg, ft_cfg, runs_dir, SEARCH_FRACTION, list(pcfg.seeds),
                                Path(rcfg.ft_lr_search), progress=False, task_epochs=tuple(own_epochs.items()), task_options=pcfg.task_options,
                                task_batch_sizes=tuple(own_batch.items()), task_image_sizes=tuple(own_size.items()),
                                command=ftlr if command == "python -m ssl_train release" else f"{command} (its learning-rate step)")
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

"""The labelled-fraction protocol (Gidaris et al. 2018, done on a fixed test split with seeds):

1. split the photos into train and test (the saved split file);
2. keep a fraction of the training labels (stratified, seeded, nested);
3. train on that small set alone and score on test (scratch);
4. pretrain on the whole training split, labels unused, with a pretext task;
5. fine-tune that encoder on the same small set (and probe it: linear, kNN);
6. score on test;
7. compare 3 with 6.

``run_protocol`` writes ``protocol.json`` after every run, so a killed protocol continues where it
stopped when run again with the same settings.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .data import FRACTIONS, SplitData, check_fraction, decoded_at, labelled_subset
from .encoders import EncoderConfig, build_encoder
from .errors import UserError
from .evaluate import FinetuneConfig, extract_features, finetune, knn_eval, linear_probe, predict, scores
from .model_files import sha256_file
from .paths import portable, write_json_atomic
from .runtime import device_name, library_versions, peak_rss_mb, resolve_device
from .tasks import DEFAULT_TASK, Recipe, get_task
from .snapshots import auto_schedule
from .train import CHECKPOINT_NAME, TrainConfig, pretrain

MODES = ("finetune", "linear", "knn")
# Linear probes on every stage's pooled features (Gidaris et al.: middle stages can carry the best
# rotation features) at these fractions only; other fractions probe the shipped (last) stage alone,
# because per-stage cross-validated probes on the full training set cost minutes on a laptop CPU.
STAGE_FRACTIONS = (0.1,)
SCRATCH = "scratch"


@dataclass(frozen=True)
class ProtocolConfig:
    tasks: tuple[str, ...] = (DEFAULT_TASK,)
    fractions: tuple[float, ...] = FRACTIONS
    seeds: tuple[int, ...] = (0, 1, 2)
    modes: tuple[str, ...] = MODES
    reuse: tuple[str, ...] = ()  # earlier reports whose finished entries count as done where settings match
    # tasks whose finished entries in the output report are kept as they are, with the pretraining
    # record they were made from, without that run's checkpoint (adding a task to a report made elsewhere)
    keep: tuple[str, ...] = ()
    # (task, epochs) pairs: tasks pretrained for another budget than the pretraining config's, each
    # chosen on a validation split (``python -m ssl_train budget``), never on the test split
    task_epochs: tuple[tuple[str, int], ...] = ()
    # (task, photos per step) pairs: tasks pretrained in other batches than the pretraining config's,
    # each chosen on a validation split (``pretrain --holdout validation``)
    task_batch_sizes: tuple[tuple[str, int], ...] = ()
    # (task, pixels) pairs: tasks pretrained on photos decoded at another size than the protocol's
    # (``data.image_size``), each chosen on a validation split; downstream, every arm sees the
    # protocol's photos, so scratch and every encoder are compared on the same pixels
    task_image_sizes: tuple[tuple[str, int], ...] = ()
    # (task, ((option, value), ...)) pairs: task config fields other than the defaults, e.g. rotation's
    # grid head, each chosen on a validation split (``pretrain --holdout validation``)
    task_options: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()

    def __post_init__(self) -> None:
        for f in self.fractions:
            check_fraction(f)
        bad = [m for m in self.modes if m not in MODES]
        if bad:
            raise UserError(f"unknown mode(s) {', '.join(bad)}; choose from {', '.join(MODES)}")
        if not self.seeds:
            raise UserError("give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"--seeds {self.seeds} repeats a seed; give distinct seeds")
        stray = [t for t in self.keep if t not in self.tasks]
        if stray:
            raise UserError(f"--keep {','.join(stray)}: not among --tasks; a kept task must be one of the report's tasks")
        check_tables(self.tables(), self.tasks)

    def to_dict(self) -> dict:
        return asdict(self)

    def tables(self) -> dict[str, tuple]:
        """Its per-task tables, ``{"task_epochs": ..., "task_batch_sizes": ..., "task_image_sizes": ..., "task_options": ...}``."""
        return {f: getattr(self, f) for f, _ in PER_TASK_FIELDS}


# The per-task tables of ``ProtocolConfig`` (its serialized form, recorded in every report's config and
# behind every run key and entry hash) and of ``studies.finetune_lr.run``, as the ``--task-*`` flags give them,
# and the ``Recipe`` field each holds: one Recipe per task, written as four (task, value) tables.
PER_TASK_FIELDS = (("task_epochs", "epochs"), ("task_batch_sizes", "batch_size"), ("task_image_sizes", "image_size"), ("task_options", "options"))
PER_TASK_FLAGS = {"task_epochs": "--task-epochs", "task_batch_sizes": "--task-batch-sizes", "task_image_sizes": "--task-image-sizes",
                  "task_options": "--task-options"}


def recipe_tables(recipes: Mapping[str, Recipe]) -> dict[str, tuple]:
    """``{task: Recipe}`` → the per-task tables (``PER_TASK_FIELDS``) of the fields each recipe sets, tasks
    sorted: ``{"task_epochs": (("a", 60), ("b", 200)), ..., "task_options": ()}``."""
    out: dict[str, tuple] = {}
    for table, field in PER_TASK_FIELDS:
        out[table] = tuple((t, getattr(r, field)) for t, r in sorted(recipes.items()) if getattr(r, field))
    return out


def own_recipes(tables: Mapping[str, tuple], train_cfg: TrainConfig, image_size: int) -> dict[str, Recipe]:
    """The per-task tables → ``{task: Recipe}`` of what each task is pretrained with beside the common
    ``train_cfg`` and photo size: a number equal to the common one is none of its own (its runs and
    entries stay the common settings'), and empty options are none."""
    common = {"epochs": train_cfg.epochs, "batch_size": train_cfg.batch_size, "image_size": image_size}
    own: dict[str, dict[str, Any]] = {}
    for table, field in PER_TASK_FIELDS:
        for t, v in tables.get(table) or ():
            if field == "options":
                if v:
                    own.setdefault(t, {})[field] = tuple(v)
            elif v != common[field]:
                own.setdefault(t, {})[field] = int(v)
    return {t: Recipe(**kw) for t, kw in own.items()}


def own_table(pairs: tuple, own: Mapping[str, Recipe], field: str) -> dict[str, Any]:
    """``{task: value}`` of ``field`` over the (task, value) ``pairs`` in their order, where the task has a
    value of its own (``own_recipes``): what a report records as its ``pretrain_epochs`` and the like
    (options as ``{option: value}``)."""
    out = {}
    for t, _ in pairs:
        v = getattr(own[t], field) if t in own else None
        if v:
            out[t] = dict(v) if field == "options" else v
    return out


# the per-task numbers of the pretraining config: flag → (least value, what it counts, an example)
PER_TASK_NUMBERS = {"--task-epochs": (1, "epochs", "simclr=60"), "--task-batch-sizes": (2, "photos per step", "rotation=32"),
                    "--task-image-sizes": (16, "pixels", "rotation=128")}


def check_task_epochs(task_epochs: tuple[tuple[str, int], ...], tasks: tuple[str, ...] | list[str], what: str = "--tasks",
                      flag: str = "--task-epochs") -> None:
    """One-line errors for ``flag`` (``PER_TASK_NUMBERS``: ``--task-epochs``, ``--task-batch-sizes``,
    ``--task-image-sizes``) pairs that name a task outside ``tasks``, twice, or give a number below its least value."""
    low, unit, eg = PER_TASK_NUMBERS[flag]
    names = [t for t, _ in task_epochs]
    stray = [t for t in names if t not in tasks]
    if stray:
        raise UserError(f"{flag} {','.join(stray)}: not among {what}; name a task of this run, e.g. {flag} {eg}")
    if len(set(names)) != len(names):
        raise UserError(f"{flag} names {', '.join(sorted({t for t in names if names.count(t) > 1}))} twice; give each task once")
    bad = [f"{t}={n}" for t, n in task_epochs if not isinstance(n, int) or n < low]
    if bad:
        raise UserError(f"{flag} {','.join(bad)}: {unit} must be whole numbers ≥ {low}")
    if flag == "--task-image-sizes":
        for t, n in task_epochs:
            try:
                get_task(t).config.validate(n)
            except UserError as e:
                raise UserError(f"{flag} {t}={n}: {e}") from None


TaskOptions = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


def check_task_options(task_options: TaskOptions, tasks: tuple[str, ...] | list[str], what: str = "--tasks") -> None:
    """One-line errors for ``--task-options`` that name a task outside ``tasks``, or an option its
    config does not have or a value it refuses (building the task checks both)."""
    stray = [t for t, _ in task_options if t not in tasks]
    if stray:
        raise UserError(f"--task-options {','.join(stray)}: not among {what}; name a task of this run, e.g. --task-options rotation.grid=2")
    for t, opts in task_options:
        get_task(t, dict(opts))


def check_tables(tables: Mapping[str, tuple], tasks: tuple[str, ...] | list[str], what: str = "--tasks") -> None:
    """``check_task_epochs`` and ``check_task_options`` over every per-task table."""
    for table, _ in PER_TASK_FIELDS[:3]:
        check_task_epochs(tables.get(table) or (), tasks, what, flag=PER_TASK_FLAGS[table])
    check_task_options(tables.get("task_options") or (), tasks, what)


def task_train_cfg(train_cfg: TrainConfig, recipe: Recipe) -> TrainConfig:
    """The pretraining settings of a task with ``recipe``: ``train_cfg`` with the recipe's epochs and
    photos per step where it has them, else ``train_cfg`` itself (so its runs' settings hash is unchanged)."""
    own = {k: int(v) for k in ("epochs", "batch_size") if (v := getattr(recipe, k)) is not None and v != getattr(train_cfg, k)}
    return replace(train_cfg, **own) if own else train_cfg


def _config_hash(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


def arm_lr(config: dict, arm: str) -> float | None:
    """The fine-tuning learning rate ``arm`` (scratch or a task) used in a report with ``config``: its
    own rate (``finetune_lr``, chosen on validation) when the report has one, else the schedule's."""
    return (config.get("finetune_lr") or {}).get(arm, (config.get("finetune") or {}).get("lr"))


# How many steps a fine-tune takes follows from these and the subset's size; an entry is reused when
# its recorded step count is what the new schedule gives its subset (``reusable_runs``), so raising a
# cap that its subset never reached reruns nothing.
STEP_KEYS = ("epochs", "min_steps", "max_steps")


def entry_hash(config: dict, split_sha256: str, task: str, mode: str) -> str:
    """The settings one protocol entry (``task`` × ``mode``, any fraction and seed) depends on:
    the report's config minus the protocol's lists; minus the pretraining settings for scratch (it is
    never pretrained); minus the fine-tuning schedule for a probe (it fine-tunes nothing); and for a
    fine-tune, the schedule with the arm's own learning rate (``finetune_lr``, else the schedule's)
    minus what only sets the step count (``STEP_KEYS``: checked per entry by ``reusable_runs``)."""
    # portable: an entry written with repository-relative paths is the same entry as one made in memory
    d = portable({k: v for k, v in config.items() if k not in ("protocol", "finetune_lr", "pretrain_epochs", "pretrain_batch_size", "pretrain_image_size", "task_options")})
    opts = (config.get("task_options") or {}).get(task)
    if opts and task != SCRATCH:  # absent otherwise: entries made before options existed keep their hash
        d["task_options"] = opts
    # a task pretrained for its own budget hashes as if the whole report had that budget, so its
    # entries are found in (and reused from) a report made with ``--epochs`` set to it
    # (and so does one pretrained in its own batch size)
    for key, field in (("pretrain_epochs", "epochs"), ("pretrain_batch_size", "batch_size")):
        own = (config.get(key) or {}).get(task)
        if own is not None and isinstance(d.get("pretrain"), dict):
            d["pretrain"] = {**d["pretrain"], field: own}
    # one pretrained on photos of its own size is another encoder, judged downstream on the same photos
    own_size = (config.get("pretrain_image_size") or {}).get(task)
    if own_size is not None and isinstance(d.get("pretrain"), dict):
        d["pretrain"] = {**d["pretrain"], "image_size": own_size}
    if task == SCRATCH:
        d.pop("pretrain", None)
    if mode == "finetune":
        d["finetune"] = {k: v for k, v in dict(d.get("finetune", {})).items() if k not in STEP_KEYS} | {"lr": arm_lr(config, task)}
    else:
        d.pop("finetune", None)
    return _config_hash(d | {"split": split_sha256, "task": task, "mode": mode})


def planned_steps(config: dict, n_labelled: int) -> int:
    """The fine-tuning steps a report with ``config`` gives a subset of ``n_labelled`` photos."""
    ft = config.get("finetune") or {}
    return FinetuneConfig(**{k: ft[k] for k in (*STEP_KEYS, "batch_size") if k in ft}).steps_for(n_labelled)


def reusable_runs(old: dict, config: dict, split_sha256: str) -> dict[tuple, dict]:
    """Entries of an earlier report ``old`` that count as done for a protocol with ``config``, keyed
    (task, mode, fraction, seed): those whose settings (``entry_hash``) are the same under both configs,
    and for a fine-tune, whose step count is the one ``config`` gives its subset. So scratch is reused
    across pretraining budgets, probes across fine-tuning schedules, and a fine-tune whenever its arm's
    learning rate and its own number of steps are unchanged."""
    if "config" not in old:
        return {}
    old_split = old.get("split_sha256", "")
    same: dict[tuple[str, str], bool] = {}
    keep = {}
    for r in old.get("runs", []):
        tm = (r.get("task"), r.get("mode"))
        if tm not in same:
            same[tm] = entry_hash(old["config"], old_split, *tm) == entry_hash(config, split_sha256, *tm)
        if not same[tm]:
            continue
        if tm[1] == "finetune":
            n = r.get("n_labelled")
            if not isinstance(n, int) or n < 1 or r.get("planned_steps") != planned_steps(config, n):
                continue
        keep[(r["task"], r["mode"], r["fraction"], r["seed"])] = r
    return keep


# significant digits of the floats a report's entries and summary store (accuracies, losses, seconds):
# an accuracy of 696 photos moves in steps of 0.0014, and the full 17 digits were a fifth of the file;
# the settings (config, pretraining records) stay exact
MEASURED_DIGITS = 6


def _round_floats(obj: Any, digits: int = MEASURED_DIGITS) -> Any:
    """``obj`` with every float rounded to ``digits`` significant digits (JSON-like values)."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: _round_floats(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_round_floats(v, digits) for v in obj]
    return obj


def run_dir(task_name: str, data: SplitData, enc_cfg: EncoderConfig, train_cfg: TrainConfig, runs_dir: Path,
            recipe: Recipe = Recipe()) -> Path:
    """``runs_dir/<task>-<settings hash>/``: where ``pretrained_encoder`` keeps (and finds) the run of
    ``task_name`` pretrained with ``recipe`` over the common ``train_cfg`` and ``data``'s photo size."""
    task = get_task(task_name, dict(recipe.options) or None)
    t_cfg = task_train_cfg(train_cfg, recipe)
    data_cfg = replace(data.cfg, image_size=int(recipe.image_size or data.cfg.image_size))
    key = _config_hash({"task": task.config_dict(), "train": {k: v for k, v in t_cfg.to_dict().items() if k != "device"}, "enc": enc_cfg.to_dict(), "data": data_cfg.to_dict(), "split": data.split_sha256})
    return runs_dir / f"{task_name}-{key}"


def pretrained_encoder(task_name: str, data: SplitData, enc_cfg: EncoderConfig, train_cfg: TrainConfig, runs_dir: Path, recipe: Recipe = Recipe(),
                       progress: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    """Pretrain ``task_name`` with ``recipe`` over the common ``train_cfg`` (or reuse a finished run
    with identical settings) → encoder state and the run's summary. Runs live in ``run_dir``. The
    recipe's ``image_size``: pretrain on the photos decoded at that size instead of ``data``'s (the
    encoder is fully convolutional and pooled, so it reads photos of any size downstream); they are
    decoded only if it must pretrain."""
    task = get_task(task_name, dict(recipe.options) or None)
    t_cfg = task_train_cfg(train_cfg, recipe)
    out = run_dir(task_name, data, enc_cfg, train_cfg, runs_dir, recipe)
    summary_path = out / "summary.json"
    if not summary_path.exists():
        # feature snapshots for the talk's "watch it learn" map: they change nothing in training (test_snapshots)
        pretrain(task, decoded_at(data, int(recipe.image_size or data.cfg.image_size)), out, enc_cfg, t_cfg, resume=(out / CHECKPOINT_NAME).exists(),
                 progress=progress, snapshots=auto_schedule(t_cfg.epochs))
    summary = json.loads(summary_path.read_text())
    ck = load_checkpoint(out / CHECKPOINT_NAME)
    ck.expect(task=task_name, encoder=enc_cfg.to_dict())
    return ck.encoder_state, summary


# a report's config keys of the tasks' own settings (``own_table``), each absent when no task has one,
# so that a report without them keeps its config hash and its entries theirs
OWN_CONFIG_KEYS = (("pretrain_epochs", "task_epochs", "epochs"), ("pretrain_batch_size", "task_batch_sizes", "batch_size"),
                   ("pretrain_image_size", "task_image_sizes", "image_size"), ("task_options", "task_options", "options"))


def protocol_config(pcfg: ProtocolConfig, enc_cfg: EncoderConfig, train_cfg: TrainConfig, ft_cfg: FinetuneConfig, data_cfg: Any,
                    ft_lrs: dict[str, float] | None = None) -> dict[str, Any]:
    """The ``config`` a protocol report records, which its config hash and every entry hash are made of."""
    config = {
        "protocol": pcfg.to_dict(),
        "pretrain": train_cfg.to_dict(),
        "finetune": ft_cfg.to_dict(),
        "encoder": enc_cfg.to_dict(),
        "data": data_cfg.to_dict(),
        "knn_k": 20,
    }
    if ft_lrs is not None:
        config["finetune_lr"] = {a: float(ft_lrs[a]) for a in (SCRATCH, *pcfg.tasks) if a in ft_lrs}
    own = own_recipes(pcfg.tables(), train_cfg, data_cfg.image_size)
    for key, table, field in OWN_CONFIG_KEYS:
        if recorded := own_table(getattr(pcfg, table), own, field):
            config[key] = recorded
    return config


def config_hash(config: dict, split_sha256: str) -> str:
    """A report's ``config_hash``: its config minus the protocol's lists, with the split."""
    return _config_hash(portable({k: v for k, v in config.items() if k != "protocol"}) | {"split": split_sha256})


# Long on purpose (~150 lines): one pass in the order of the protocol — checks, the entries earlier reports
# already hold, then arm × seed × fraction × mode with the report written after each entry; every block reads the locals the one before set.
def run_protocol(
    data: SplitData,
    pcfg: ProtocolConfig,
    enc_cfg: EncoderConfig,
    train_cfg: TrainConfig,
    ft_cfg: FinetuneConfig,
    out_json: Path,
    runs_dir: Path,
    progress: bool = True,
    command: str = "",
    ft_lrs: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Run every (task ∪ scratch) × seed × fraction × mode and write ``out_json``. ``command`` (the
    command line that made it) is recorded for the report. ``ft_lrs`` ({arm: lr}, from
    ``studies.finetune_lr.chosen_lrs``) gives each arm its own fine-tuning learning rate, chosen on a
    validation split; without it every arm uses ``ft_cfg.lr``."""
    for t in pcfg.tasks:
        get_task(t)  # fail early on unknown task names
    if ft_lrs is not None and "finetune" in pcfg.modes:
        missing = [a for a in (SCRATCH, *pcfg.tasks) if a not in ft_lrs]
        if missing:
            raise UserError(f"--ft-lrs has no learning rate for {', '.join(missing)}; run `python -m ssl_train finetune-lr --arms "
                            f"{','.join((SCRATCH, *pcfg.tasks))}` (rates already searched with the same settings are reused) or drop --ft-lrs")
    dev = resolve_device(ft_cfg.device)
    classes = data.ds.classes
    n_classes = len(classes)
    train_idx, test_idx = data.train_idx, data.test_idx
    labels = data.ds.labels
    images = data.ds.images
    test_u8, test_y = images[torch.as_tensor(test_idx)], labels[test_idx]
    for c in range(n_classes):
        if not (labels[train_idx] == c).any():
            raise UserError(f"class {classes[c]} has no training photo in the split; it cannot be learned — add photos or re-split")

    config = protocol_config(pcfg, enc_cfg, train_cfg, ft_cfg, data.cfg, ft_lrs)
    own = own_recipes(pcfg.tables(), train_cfg, data.cfg.image_size)
    chash = config_hash(config, data.split_sha256)
    report: dict[str, Any] = {
        "version": 1,
        "config": config,
        "config_hash": chash,
        "split_file": str(data.cfg.split_path),
        "split_sha256": data.split_sha256,
        "classes": classes,
        "n_train": int(len(train_idx)),
        "n_test": int(len(test_idx)),
        "device": device_name(dev),
        "command": command,
        "versions": library_versions(),
        "pretraining": {},
        "runs": [],
    }
    done: dict[tuple, dict] = {}
    done_from: dict[tuple, str | None] = {}  # the checkpoint sha256 a reused pretrained entry was made from (None: not recorded)
    kept_pretraining: dict[str, dict] = {}  # --keep: each kept task's pretraining record in the output report
    for i, path in enumerate([out_json, *map(Path, pcfg.reuse)]):
        try:
            old = json.loads(path.read_text())
        except FileNotFoundError:
            if i:
                raise UserError(f"--reuse {path}: no such report; give an existing protocol JSON or drop it") from None
            continue
        except (OSError, json.JSONDecodeError) as e:
            if i:
                raise UserError(f"--reuse {path}: not a readable protocol report ({type(e).__name__}); give a protocol JSON") from None
            continue
        if not isinstance(old, dict):
            continue
        made_from = {t: (v or {}).get("checkpoint_sha256") for t, v in (old.get("pretraining") or {}).items() if isinstance(v, dict)}
        for key, r in reusable_runs(old, config, data.split_sha256).items():
            if key not in done:  # earlier sources win: the output file first
                done[key], done_from[key] = r, made_from.get(r["task"])
        if i == 0 and old.get("config_hash") == chash:
            report["pretraining"] = old.get("pretraining", {})
        if i == 0:
            kept_pretraining = {t: v for t, v in (old.get("pretraining") or {}).items() if t in pcfg.keep and isinstance(v, dict)}
    for t in pcfg.keep:
        rec = kept_pretraining.get(t)
        if not rec or not rec.get("checkpoint_sha256"):
            raise UserError(f"--keep {t}: {out_json} holds no pretraining record of {t} with its checkpoint sha256; "
                            f"drop {t} from --keep so that it is pretrained (or reused from --runs)")
        missing = [k for k in ((t, m, f, s) for s in pcfg.seeds for f in pcfg.fractions for m in pcfg.modes)
                   if k not in done or done_from.get(k) != rec["checkpoint_sha256"]]
        if missing:
            m0 = missing[0]
            raise UserError(f"--keep {t}: {len(missing)} of its entries are not finished in {out_json} with these settings "
                            f"(e.g. {m0[1]} at {m0[2]:g}, seed {m0[3]}); drop {t} from --keep so that they run from its checkpoint")
    t_all = time.time()

    def record(run: dict) -> None:
        report["runs"].append(_round_floats(run))  # as stored: a reused entry equals a fresh one
        report["peak_rss_mb"] = peak_rss_mb()
        write_json_atomic(out_json, report)

    for task_name in [SCRATCH, *pcfg.tasks]:
        state, ck_sha = None, None
        if task_name in pcfg.keep:  # every entry is finished (checked above): no encoder needed
            report["pretraining"][task_name] = kept_pretraining[task_name]
            ck_sha = kept_pretraining[task_name]["checkpoint_sha256"]
        elif task_name != SCRATCH:
            state, summary = pretrained_encoder(task_name, data, enc_cfg, train_cfg, runs_dir, own.get(task_name, Recipe()), progress=progress)
            ck_sha = sha256_file(summary["checkpoint"])
            report["pretraining"][task_name] = {k: summary.get(k) for k in ("epochs", "train_seconds_total", "device", "peak_rss_mb", "peak_cuda_mb", "pretext_test", "config", "checkpoint")}
            report["pretraining"][task_name]["checkpoint_sha256"] = ck_sha
        feats_cache: dict[int, list[np.ndarray]] = {}
        for seed in pcfg.seeds:
            for fraction in pcfg.fractions:
                sub = labelled_subset(train_idx, labels, fraction, seed)
                for mode in pcfg.modes:
                    key = (task_name, mode, fraction, seed)
                    # an entry is reused only if made from this very encoder: a retrained run with the same
                    # settings is another encoder (entries of older reports, without the hash, are taken as they are)
                    if key in done and done_from.get(key) in (None, ck_sha):
                        record(done[key])
                        continue
                    t0 = time.time()
                    run: dict[str, Any] = {"task": task_name, "mode": mode, "fraction": fraction, "seed": seed, "n_labelled": int(len(sub))}
                    if mode == "finetune":
                        arm_cfg = replace(ft_cfg, lr=arm_lr(config, task_name))
                        model, log = finetune(state, enc_cfg, images[torch.as_tensor(sub)], labels[sub], n_classes, arm_cfg, seed)
                        pred = predict(model, test_u8, dev).argmax(1)
                        run.update(scores(pred, test_y, n_classes), **log, lr=arm_cfg.lr)
                    else:
                        fkey = 0 if state is not None else seed  # random init differs per seed
                        if fkey not in feats_cache:
                            torch.manual_seed(seed)
                            enc = build_encoder(enc_cfg)
                            if state is not None:
                                enc.load_state_dict(state)
                            feats_cache[fkey] = extract_features(enc, images, dev)
                        feats = feats_cache[fkey]
                        if mode == "knn":
                            run.update(knn_eval(feats[-1][sub], labels[sub], feats[-1][test_idx], test_y, n_classes))
                        else:
                            probe_stages = feats if any(abs(fraction - f) < 1e-9 for f in STAGE_FRACTIONS) else feats[-1:]
                            stages = [linear_probe(f[sub], labels[sub], f[test_idx], test_y, n_classes, seed) for f in probe_stages]
                            run.update(stages[-1])
                            if len(stages) > 1:
                                run["stage_test_accuracy"] = [s["test_accuracy"] for s in stages]
                            run["feature_stage"] = len(stages)  # the shipped feature vector: last stage, pooled
                    run["wall_seconds"] = time.time() - t0
                    run["device"] = report["device"]
                    record(run)
                    if progress:
                        print(f"[protocol] {task_name:>12} {mode:>8} {fraction:>5.0%} seed {seed}: test acc {run['test_accuracy']:.3f} ({run['wall_seconds']:.1f}s)", flush=True)
    report["wall_seconds"] = time.time() - t_all
    report["summary"] = _round_floats(summarize(report["runs"]))
    write_json_atomic(out_json, report)
    return report


def summarize(runs: list[dict]) -> list[dict]:
    """Mean ± std (sample std, ddof=1; 0 for one seed) of test accuracy per (task, mode, fraction)."""
    groups: dict[tuple, list[float]] = {}
    for r in runs:
        groups.setdefault((r["task"], r["mode"], r["fraction"]), []).append(r["test_accuracy"])
    out = []
    for (task, mode, fraction), accs in sorted(groups.items(), key=lambda kv: (kv[0][0] != SCRATCH, kv[0][0], kv[0][1], kv[0][2])):
        a = np.asarray(accs)
        out.append({"task": task, "mode": mode, "fraction": fraction, "n_seeds": len(a), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0})
    return out

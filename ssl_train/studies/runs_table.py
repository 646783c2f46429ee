"""Pretraining runs side by side: ``python -m ssl_train runs DIR... [--out reports/NAME.md]``.

A settings study (e.g. rotation's head, ``pretrain --task-opt grid=2 --holdout validation``) is a few
pretraining runs; this reads their ``summary.json`` files and tabulates what differs between them:
task, the task options, optimisation settings (learning rate, weight decay, …) and input size that are not the defaults, epochs, photos per step, the photos the pretext task was scored on
(validation or test), the pretext scores and the training time. Nothing is recomputed.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..paths import portable


def _options_off_default(task: str, config: dict) -> dict[str, Any]:
    from ..tasks import get_task

    try:
        default = get_task(task).config_dict()
    except UserError:
        return dict(config)
    return {k: v for k, v in config.items() if default.get(k) != v}


# Optimisation settings a study may vary with `pretrain`'s flags; epochs and photos per step have their own
# columns, the rest (device, amp, compile, …) change speed, not what is learnt, and momentum has no flag.
TRAIN_STUDY_FIELDS = ("optimizer", "lr", "weight_decay", "warmup_epochs", "seed")


def _train_off_default(train: dict) -> dict[str, Any]:
    from ..train import TrainConfig

    default = TrainConfig().to_dict()
    return {k: train[k] for k in TRAIN_STUDY_FIELDS if k in train and train[k] != default[k]}


# Data settings a study may vary; the rest (where the photos are, how they are split) must match for runs to compare.
DATA_STUDY_FIELDS = ("image_size",)


def _data_off_default(data: dict) -> dict[str, Any]:
    from ..data import DataConfig

    default = DataConfig()
    return {k: data[k] for k in DATA_STUDY_FIELDS if k in data and data[k] != getattr(default, k)}


def _as_flag(field: str, value: Any) -> str:
    """A TrainConfig field as the `pretrain` flag that sets it: ("weight_decay", 0.002) → "--weight-decay 0.002"."""
    return f"--{field.replace('_', '-')} {f'{value:g}' if isinstance(value, float) else value}"


def collect(run_dirs: list[Path]) -> list[dict[str, Any]]:
    """One row per finished run folder, in the order given; a clear error for a folder that is not one."""
    rows = []
    for d in run_dirs:
        path = Path(d) / "summary.json"
        try:
            s = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"{path}: no such file; {d} is not a finished pretraining run (it writes summary.json when done)") from None
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: not a readable run summary ({type(e).__name__}); rerun that pretraining") from None
        holdout = s.get("holdout", "test")
        config = s.get("config") or {}
        train = config.get("train") or {}
        rows.append({
            "run": Path(d).name,
            "task": s.get("task", "?"),
            "options": _options_off_default(s.get("task", "?"), config.get("task") or {}),
            "train_options": _train_off_default(train),
            "data_options": _data_off_default(config.get("data") or {}),
            "epochs": s.get("completed_epochs"),
            "batch_size": train.get("batch_size"),
            "holdout": holdout,
            "pretext": s.get(f"pretext_{holdout}") or {},
            "train_minutes": round(float(s.get("train_seconds_total") or 0.0) / 60, 2),
            "device": s.get("device", "?"),
        })
    return rows


def _score(p: dict) -> str:
    if "acc" in p:
        return f"{100 * p['acc']:.1f}%"
    return ", ".join(f"{k} {v:.4g}" for k, v in sorted(p.items())) or "–"


def to_markdown(rows: list[dict[str, Any]], command: str) -> str:
    lines = [
        "# Pretraining runs side by side",
        "",
        "| run | task | options (not the defaults) | epochs | photos per step | scored on | pretext score | pretext loss | training time | device |",
        "|---|---|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        # task options as `--task-opt` takes them, optimisation settings as their flags (`--weight-decay 0.002`)
        opts = ", ".join([f"{k}={v}" for k, v in sorted(r["options"].items())]
                         + [_as_flag(k, v) for k, v in sorted(r.get("train_options", {}).items())]
                         + [_as_flag(k, v) for k, v in sorted(r.get("data_options", {}).items())]) or "defaults"
        loss = r["pretext"].get("loss")
        lines.append(f"| {r['run']} | {r['task']} | {opts} | {r['epochs']} | {r.get('batch_size') or '–'} | {r['holdout']} | {_score(r['pretext'])} | "
                     f"{'' if loss is None else f'{loss:.3f}'} | {r['train_minutes']:.1f} min | {r['device']} |")
    lines += ["", "Scored on *validation*: trained on the fit photos of the training split, scored on its validation photos "
              "(`pretrain --holdout validation`; no test photo is read). *test*: trained on the whole training split, scored on the test split.",
              "", f"Made by `{command}` from the runs' summary.json files."]
    return "\n".join(lines) + "\n"


def write(rows: list[dict[str, Any]], out_md: Path, command: str) -> tuple[Path, Path]:
    out_md.parent.mkdir(parents=True, exist_ok=True)
    js = out_md.with_suffix(".json")
    js.write_text(json.dumps(portable({"command": command, "runs": rows}), separators=(",", ":")))
    out_md.write_text(portable(to_markdown(rows, command)))
    return js, out_md

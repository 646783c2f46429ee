"""The protocol's results (``reports/protocol.json``) as reference curves: mean ± std over seeds.

The file may be incomplete while a benchmark runs (fewer seeds, fractions or modes) or absent;
``load`` then returns what there is and a note, never raises.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from app import palette

SCRATCH = "scratch"  # = ssl_train.protocol.SCRATCH: the protocol's name for the random-init encoder
MODE_TITLES = {"finetune": "fine-tune", "linear": "linear probe", "knn": "kNN (k=20)"}
MODE_DASH = {"finetune": "solid", "linear": "dash", "knn": "dot"}
SCRATCH_COLOUR = palette.SCRATCH


def task_colour(task: str) -> str:
    """Grey for scratch; a fixed colour per pretext task name (``app.palette``: one for every chart)."""
    return palette.encoder_colour(task)


def load(path: str | Path) -> tuple[pd.DataFrame | None, str]:
    """(summary table with columns task, mode, fraction, mean, std, seeds — or None, a one-line note)."""
    path = Path(path)
    if not path.is_file():
        return None, f"no reference results yet ({path.name} not found; `python -m ssl_train protocol` writes it)"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        runs = report["runs"]
        df = pd.DataFrame([{k: r[k] for k in ("task", "mode", "fraction", "seed", "test_accuracy")} for r in runs])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        return None, f"{path.name} could not be read ({type(e).__name__}); rerun `python -m ssl_train report` or the protocol"
    if df.empty:
        return None, f"{path.name} has no runs yet (the protocol is probably still running)"
    df["fraction"] = df["fraction"].astype(float)
    df["test_accuracy"] = df["test_accuracy"].astype(float)
    summ = (
        df.groupby(["task", "mode", "fraction"])["test_accuracy"]
        .agg(mean="mean", std=lambda s: float(s.std(ddof=1)) if len(s) > 1 else 0.0, seeds="count")  # sample std, as the report
        .reset_index()
    )
    planned = report.get("config", {}).get("protocol", {})
    n_planned = len(planned.get("tasks", [])) + 1 if planned.get("tasks") else None
    n_planned = n_planned * len(planned.get("fractions", [])) * len(planned.get("seeds", [])) * len(planned.get("modes", [])) if n_planned else None
    done = len(df)
    note = f"{done} runs from {path.name}" + (f" ({done} of {n_planned} planned: the protocol is still running)" if n_planned and done < n_planned else "")
    return summ, note


def rotation_limits(path: str | Path, weights_sha256: str | None) -> dict | None:
    """``reports/rotation-limits.json`` (``python -m ssl_train rotation-limits``) when it was made
    from the weights with ``weights_sha256``, else None (absent, unreadable, or about other weights)."""
    try:
        r = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(r, dict) or not weights_sha256 or r.get("weights_sha256") != weights_sha256:
        return None
    return r


def rotation_accuracy_per_class(report: dict | None) -> dict[str, float] | None:
    """{class: pretext accuracy} from a ``rotation_limits`` report, else None."""
    try:
        return None if report is None else {c: float(v["accuracy"]) for c, v in report["per_class"].items() if v.get("accuracy") is not None}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def rotation_accuracy_with_mirror(report: dict | None) -> float | None:
    """The test-split share of views judged right together with their mirror image, from a
    ``rotation_limits`` report, else None."""
    v = None if report is None else report.get("accuracy_with_mirror")
    return float(v) if isinstance(v, (int, float)) else None

"""Watch it learn: the test photos' pooled features saved at a few points of pretraining, and the
aligned 2-D layouts made from them that ship with a model (``models/<name>/learning.npz``).

Snapshots are written by ``pretrain(..., snapshots=...)`` into ``<run>/snapshots.safetensors``
(one float16 tensor (N_test, D) per snapshot, keyed by the number of epochs done: ``e0000`` is the
freshly initialised encoder). Taking one runs the encoder in eval mode under ``no_grad`` and draws no
random number, so a run with snapshots trains exactly as one without (same weights, bit for bit).

``learning_layouts`` turns them into one 2-D layout per snapshot with umap-learn's ``AlignedUMAP``
(frames stay comparable: a photo moves, the map does not spin between frames). The model folder
stores coordinates only (float16, a few KB per frame) with the test photos' labels.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors import safe_open

from . import tensorfile
from .errors import UserError

SNAPSHOT_FILE = "snapshots.safetensors"
LEARNING_FILE = "learning.npz"
LEARNING_FORMAT = "pretext-lab-learning/1"
# AlignedUMAP settings: fixed, and seeded, so the same snapshots always give the same frames
ALIGNED_UMAP = dict(n_neighbors=15, min_dist=0.1, alignment_regularisation=0.01, alignment_window_size=3, random_state=0)


def auto_schedule(epochs: int) -> tuple[int, ...]:
    """Epochs done at which to snapshot: dense early (where the map changes most), then every tenth
    of the run, always 0 (the random start) and the last epoch. ``auto_schedule(60)`` →
    (0, 1, 2, 3, 5, 10, 15, 20, 30, 40, 50, 60)."""
    if epochs < 1:
        raise UserError(f"snapshots need a run of at least 1 epoch, not {epochs}")
    early = {0, 1, 2, 3, 5, 10, 15, 20}
    step = max(1, round(epochs / 6, -1) if epochs >= 30 else 5)
    late = set(range(0, epochs + 1, int(step)))
    return tuple(sorted(e for e in early | late | {epochs} if e <= epochs))


def parse_schedule(text: str, epochs: int) -> tuple[int, ...]:
    """``"auto"`` or comma-separated epoch counts (0 = before training) → sorted unique counts.
    Raises UserError (before any training) for a count outside 0..epochs."""
    text = (text or "").strip()
    if not text:
        return ()
    if text == "auto":
        return auto_schedule(epochs)
    try:
        counts = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UserError(f"--snapshots {text!r}: give 'auto' or epoch counts like 0,1,5,{epochs}") from None
    bad = [c for c in counts if not 0 <= c <= epochs]
    if bad:
        raise UserError(f"--snapshots {bad[0]} is outside 0..{epochs} (the run's --epochs); give counts of epochs done, 0 = before training")
    return tuple(counts)


def save_snapshot(run_dir: Path, epochs_done: int, features: torch.Tensor, test_idx: Sequence[int], image_size: int) -> None:
    """Add (or replace) one snapshot in ``run_dir/snapshots.safetensors``, atomically.
    ``features``: (N_test, D) pooled features of the test photos in ``test_idx`` order."""
    path = Path(run_dir) / SNAPSHOT_FILE
    tensors = dict(load_snapshots(path)) if path.exists() else {}
    tensors = {f"e{k:04d}": v for k, v in tensors.items()}
    tensors[f"e{epochs_done:04d}"] = features.detach().to("cpu", torch.float16).contiguous()
    tensors["test_idx"] = torch.as_tensor(np.asarray(test_idx, np.int64))
    tmp = path.with_name(path.name + ".tmp")
    tensorfile.save(tensors, tmp, metadata={"format": "pretext-lab-snapshots/1", "image_size": str(image_size)})
    os.replace(tmp, path)


def load_snapshots(path: Path) -> dict[int, torch.Tensor]:
    """``{epochs_done: (N_test, D) float16}`` from a snapshots file, in epoch order."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist: pretrain with --snapshots auto to make it")
    with safe_open(str(path), framework="pt") as f:
        return {int(k[1:]): f.get_tensor(k) for k in sorted(f.keys()) if k.startswith("e")}


def snapshot_test_idx(path: Path) -> np.ndarray:
    with safe_open(str(path), framework="pt") as f:
        return f.get_tensor("test_idx").numpy()


def learning_layouts(frames: Sequence[np.ndarray]) -> np.ndarray:
    """(F, N, D) features → (F, N, 2) float32 aligned UMAP layouts, each frame scaled into [-1, 1]
    by one common factor (so a spreading cloud is seen to spread). Rows are L2-normalised first,
    as the app's maps are."""
    from umap import AlignedUMAP

    mats = []
    for x in frames:
        x = np.asarray(x, np.float32)
        mats.append(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8))
    n = len(mats[0])
    relations = [{i: i for i in range(n)} for _ in range(len(mats) - 1)]
    emb = AlignedUMAP(n_components=2, **ALIGNED_UMAP).fit(mats, relations=relations).embeddings_
    xy = np.stack([np.asarray(e, np.float32) for e in emb])
    xy -= xy.reshape(-1, 2).mean(0)
    return xy / max(float(np.abs(xy).max()), 1e-8)


def write_learning(model_dir: Path, run_dir: Path, labels: np.ndarray, classes: Sequence[str], files: Sequence[str]) -> Path:
    """Write ``model_dir/learning.npz`` from ``run_dir``'s snapshots: epochs (F,), xy (F, N, 2)
    float16, the test photos' labels (N,) int16, classes and photo files (relative to the data
    folder), and a JSON ``meta``. Returns the path."""
    src = Path(run_dir) / SNAPSHOT_FILE
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    out = Path(model_dir) / LEARNING_FILE
    same = same_training(model_dir, run_dir)
    old = _meta(out)
    if old.get("snapshots_sha256") == digest and old.get("same_training_as_model") == same:
        return out  # made from these very snapshots: kept byte for byte
    snaps = load_snapshots(src)
    if len(snaps) < 2:
        raise UserError(f"{run_dir} has {len(snaps)} snapshot(s); a learning map needs at least 2 (pretrain with --snapshots auto)")
    epochs = np.asarray(sorted(snaps), np.int16)
    xy = learning_layouts([snaps[int(e)].float().numpy() for e in epochs])
    meta = {"format": LEARNING_FORMAT, "made_by": f"python -m ssl_train learning-map --run {run_dir} --model {model_dir}",
            "layout": "umap-learn AlignedUMAP", "params": ALIGNED_UMAP, "n_photos": int(xy.shape[1]), "snapshots_sha256": digest,
            # whether the run is the model's own training (its per-epoch losses equal the card's history): a talk
            # says so when the map comes from a rerun of the model's settings instead
            "same_training_as_model": same}
    tmp = out.with_name("learning.tmp.npz")
    np.savez_compressed(tmp, epochs=epochs, xy=xy.astype(np.float16), labels=np.asarray(labels, np.int16),
                        classes=np.asarray(list(classes)), files=np.asarray(list(files)), meta=np.asarray(json.dumps(meta)))
    os.replace(tmp, out)
    return out


def _meta(path: Path) -> dict:
    """A learning.npz's JSON meta ({} when the file is absent or unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return {}


def same_training(model_dir: Path, run_dir: Path) -> bool:
    """True when ``run_dir``'s metrics.jsonl has exactly the per-epoch training losses of the model's
    card ("history"): the run is the model's own training, or a rerun that reproduced it bit for bit
    (pretraining is seeded). False otherwise, or when either record is missing."""
    try:
        card = json.loads((Path(model_dir) / "model.json").read_text())
        run = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return False
    hist = [h.get("train_loss") for h in card.get("history") or [] if isinstance(h, dict)]
    return bool(hist) and hist == [r.get("train_loss") for r in run]


def learning_source(path: Path) -> str | None:
    """The sha256 of the snapshots file a learning.npz was made from (None: no file, or unreadable)."""
    return _meta(path).get("snapshots_sha256")


def snapshot_image_size(path: Path) -> int:
    """The photo side (px) the snapshots' test photos were decoded at."""
    with safe_open(str(path), framework="pt") as f:
        return int((f.metadata() or {}).get("image_size", 96))

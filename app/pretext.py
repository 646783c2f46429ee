"""What every task's panel shares to ask a photo of an exported model — plain arrays, no Streamlit calls.

Each task's own function (what it asks of a photo, what the model answers) lives in its panel file,
``app/panels/<task>.py`` (``Panel.answer``); here is what they share: the model folder opened for
the panel (``open_pretext``: what the panel ``Needs`` is checked, a missing piece becomes one line),
tensor conversions, pictures. Every image operation of a task is the task's own pure function from
``ssl_train/tasks/<task>.py``; every network output comes from onnxruntime on the model folder:
``model.onnx`` (through ``inference.EncoderGraph``: the encoder at any input size, with its feature
maps) and, for tasks with a custom ``forward``, ``head.onnx`` (``inference.HeadGraph``), fed exactly
the tensors the task's ``forward`` hands to its head. Nothing here imports the training loop,
checkpoints or optimisers; torch is used for the task functions only.

Pictures come back as uint8 arrays (3, H, W) at the model's resolution; ``enlarge`` makes them big
enough to see.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .inference import EncoderGraph, HeadGraph, ModelFileError, OnnxModel


# -- loading ---------------------------------------------------------------------------------------
@dataclass
class Pretext:
    """An exported model ready for its task's panel. ``problem`` (one line) says what the model
    folder lacks for the panel and how to re-export; the graphs are None then."""

    model: OnnxModel
    task: Any  # ssl_train.tasks.base.PretextTask, rebuilt from model.json's task and task_config
    encoder: EncoderGraph | None = None
    head: HeadGraph | None = None
    problem: str | None = None

    @property
    def config(self):
        return self.task.config


def task_of(card: dict):
    """The card's task with its saved config (``ssl_train.tasks.get_task``: the registry only)."""
    from ssl_train.tasks import get_task

    return get_task(card["task"], dict(card.get("task_config") or {}))


def reexport(model: OnnxModel) -> str:
    cmd = model.card.get("regenerate") or f"python -m ssl_train export --checkpoint RUN/checkpoint.safetensors --name {model.name}"
    return f"re-export it with the current ssl_train: `{cmd}`"


def open_pretext(model: OnnxModel) -> Pretext:
    """Build what ``model``'s task panel needs (its ``panels.Needs``); a missing piece becomes
    ``problem``, not an error."""
    from . import panels

    task = task_of(model.card)
    p = Pretext(model, task)
    needs = panels.panel_for(task.name).needs
    note = model.card.get("head_note")
    if needs.output:
        if needs.output not in model.output_names:
            p.problem = (f"{model.name}'s model.onnx has no '{needs.output}' output (outputs: {', '.join(model.output_names)}), "
                         f"so {needs.lacking}; {reexport(model)}")
        return p
    if needs.head:
        if not model.card.get("head_graph"):
            why = f" ({note})" if note else ""
            p.problem = f"{model.name} has no head.onnx{why}, so the pretext head cannot run; {reexport(model)}"
            return p
        p.encoder = EncoderGraph(model)
        p.head = HeadGraph(model)
        if needs.stage_maps and p.encoder.stage_maps is None:
            p.problem = (f"{model.name}'s model.onnx does not expose the encoder's stage maps that {needs.stage_maps} "
                         f"reads; {reexport(model)}")
    return p


def open_sub_pretext(model: OnnxModel, sub: str) -> Pretext:
    """One sub-task of a multi-task model ready for that sub-task's panel: the sub-task with its
    saved config, the encoder graph and the sub-head's own graph (model.json "sub_head_graphs",
    written by ``ssl_train.export``); a missing graph becomes ``problem``."""
    multi = task_of(model.card)
    subtasks = getattr(multi, "subtasks", None) or {}
    if sub not in subtasks:
        raise ModelFileError(f"{model.name} has no sub-task {sub!r} (its sub-tasks: {', '.join(subtasks) or 'none'})")
    p = Pretext(model, subtasks[sub])
    if sub not in (model.card.get("sub_head_graphs") or {}):
        p.problem = f"{model.name} has no graph for its {sub} head, so that head cannot run here; {reexport(model)}"
        return p
    p.encoder = EncoderGraph(model)
    p.head = HeadGraph(model, sub=sub)
    return p


# -- small shared helpers ----------------------------------------------------------------------------
def as_tensor(images_u8: np.ndarray):
    """uint8 (N, 3, H, W) or (3, H, W) → torch float32 (N, 3, H, W) in [0, 1], as ``eval_batch`` sees photos."""
    import torch

    a = np.asarray(images_u8)
    if a.ndim == 3:
        a = a[None]
    return torch.from_numpy(np.ascontiguousarray(a)).float().div(255.0)


def to_u8(x) -> np.ndarray:
    """torch/numpy float in [0, 1] (…, 3, H, W) → uint8."""
    a = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


def to_np(x) -> np.ndarray:
    """torch tensor → contiguous float32 numpy, as onnxruntime takes it."""
    return np.ascontiguousarray(x.detach().cpu().numpy().astype(np.float32))


def fmap_for_head(p: Pretext, fmap: np.ndarray, i: int = 0) -> np.ndarray:
    """Check that a feature map has the channels and spatial size head.onnx was exported with."""
    want = p.head.input_shapes[i] if p.head else []
    for d, (w, g) in enumerate(zip(want[1:], fmap.shape[1:]), start=1):
        if isinstance(w, int) and w != g:
            raise ModelFileError(f"{p.model.name}: head.onnx wants input {i} of shape {want}, the encoder gives {list(fmap.shape)}; "
                                 f"{reexport(p.model)}")
    return fmap


def first_output(out: dict[str, np.ndarray], i: int = 0) -> np.ndarray:
    """The ``i``-th output of a graph's answer (heads name their outputs per export)."""
    return list(out.values())[i]


def enlarge(image_u8: np.ndarray, side: int = 192, smooth: bool = False) -> Image.Image:
    """uint8 (3, H, W) → PIL image scaled so its longer side is ``side`` px (nearest neighbour by
    default, so the pixels the model saw stay visible)."""
    a = np.ascontiguousarray(np.asarray(image_u8).transpose(1, 2, 0))
    img = Image.fromarray(a)
    h, w = a.shape[:2]
    s = side / max(h, w)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BICUBIC if smooth else Image.Resampling.NEAREST)


def draw_boxes(image_u8: np.ndarray, boxes: np.ndarray, side: int = 240, colours: dict[int, str] | None = None,
               width: int = 3) -> Image.Image:
    """A photo (3, S, S) enlarged to ``side`` px with rectangles ``boxes`` (K, 4) = (top, left,
    bottom, right) in the photo's pixels; ``colours`` {row: colour} (default white)."""
    img = enlarge(image_u8, side, smooth=True)
    s = side / max(image_u8.shape[1:])
    d = ImageDraw.Draw(img)
    for k, (t, l, b, r) in enumerate(np.asarray(boxes).tolist()):
        d.rectangle([l * s, t * s, r * s - 1, b * s - 1], outline=(colours or {}).get(k, "white"), width=width)
    return img


# -- shared by the two contrastive tasks' panels --------------------------------------------------
def contrast_join(new: dict[str, Any], gallery: dict[str, Any], keep: np.ndarray | list[int]) -> dict[str, Any]:
    """A contrastive task's answer (``query`` and ``key`` rows per photo) computed for new photos and, once, for a gallery of test photos →
    the same as computing both together: rows ``keep`` of the gallery follow the new photos, the
    similarity (N, N) and ranks are over them all, and every per-photo array is joined."""
    keep = np.asarray(keep, dtype=int)
    out = {k: np.concatenate([np.asarray(v), np.asarray(gallery[k])[keep]]) for k, v in new.items()
           if k not in ("similarity", "rank") and isinstance(v, np.ndarray) and len(v) == len(new["query"])}
    sim = out["query"] @ out["key"].T
    out["similarity"] = sim
    out["rank"] = 1 + (sim > np.diag(sim)[:, None]).sum(1)
    return out


# -- the gallery of test photos (the photos a panel compares with) --------------------------------
def test_gallery(split_data, limit: int | None = None) -> dict[str, Any]:
    """Test-split photos of ``ssl_train.data.SplitData`` (no model trained on them), evenly spread
    when ``limit`` is set: {"images" uint8 (M, 3, S, S), "labels" (M,), "files", "classes"}."""
    idx = np.asarray(split_data.test_idx)
    if limit is not None and len(idx) > limit:
        idx = idx[np.linspace(0, len(idx) - 1, limit).round().astype(int)]
    ds = split_data.ds
    return {"images": ds.images[idx].numpy(), "labels": np.asarray(ds.labels)[idx], "files": [ds.files[i] for i in idx],
            "classes": list(ds.classes)}

"""What each pretext task asks of a photo and what an exported model answers — plain arrays, no Streamlit.

One function per task. Every image operation is the task's own pure function from
``ssl_train/tasks/<task>.py`` (cut and shuffle tiles, Lab split, hole mask, downsampling, neighbour
patches); every network output comes from onnxruntime on the model folder: ``model.onnx`` (through
``inference.EncoderGraph``: the encoder at any input size, with its feature maps) and, for tasks
with a custom ``forward``, ``head.onnx`` (``inference.HeadGraph``), fed exactly the tensors the
task's ``forward`` hands to its head. Nothing here imports the training loop, checkpoints or
optimisers; torch is used for the task functions only.

Pictures come back as uint8 arrays (3, H, W) at the model's resolution; ``enlarge`` makes them big
enough to see.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .inference import EncoderGraph, HeadGraph, ModelFileError, OnnxModel, softmax
from .novelty import unit_rows

# the tasks with a panel on the explorer (rotation's lives in app.inference and the page itself)
PANEL_TASKS = ("rotation", "jigsaw", "colorization", "context", "inpainting", "superres", "pirl", "simclr", "deepcluster", "multitask")
# tasks whose head is exported as head.onnx and is fed the encoder's last feature map(s)
_HEAD_ON_FMAP = ("jigsaw", "colorization", "context", "pirl", "deepcluster")
# tasks whose panel needs only one head output of model.onnx: {task: (output name, what is missing without it)}
_OUTPUT_IN_MODEL = {"inpainting": ("prediction", "there is no filling to show"),
                    "simclr": ("projection", "there are no view embeddings to compare")}


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


def _reexport(model: OnnxModel) -> str:
    cmd = model.card.get("regenerate") or f"python -m ssl_train export --checkpoint RUN/checkpoint.safetensors --name {model.name}"
    return f"re-export it with the current ssl_train: `{cmd}`"


def open_pretext(model: OnnxModel) -> Pretext:
    """Build what ``model``'s task panel needs; a missing piece becomes ``problem``, not an error."""
    task = task_of(model.card)
    p = Pretext(model, task)
    name = task.name
    note = model.card.get("head_note")
    if name in _OUTPUT_IN_MODEL:
        out, lacking = _OUTPUT_IN_MODEL[name]
        if out not in model.output_names:
            p.problem = (f"{model.name}'s model.onnx has no '{out}' output (outputs: {', '.join(model.output_names)}), "
                         f"so {lacking}; {_reexport(model)}")
        return p
    if name in (*_HEAD_ON_FMAP, "superres"):
        if not model.card.get("head_graph"):
            why = f" ({note})" if note else ""
            p.problem = f"{model.name} has no head.onnx{why}, so the pretext head cannot run; {_reexport(model)}"
            return p
        p.encoder = EncoderGraph(model)
        p.head = HeadGraph(model)
        if name == "superres" and p.encoder.stage_maps is None:
            p.problem = (f"{model.name}'s model.onnx does not expose the encoder's stage maps that the super-resolution head "
                         f"reads; {_reexport(model)}")
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
        p.problem = f"{model.name} has no graph for its {sub} head, so that head cannot run here; {_reexport(model)}"
        return p
    p.encoder = EncoderGraph(model)
    p.head = HeadGraph(model, sub=sub)
    return p


# -- small shared helpers ----------------------------------------------------------------------------
def _t(images_u8: np.ndarray):
    """uint8 (N, 3, H, W) or (3, H, W) → torch float32 (N, 3, H, W) in [0, 1], as ``eval_batch`` sees photos."""
    import torch

    a = np.asarray(images_u8)
    if a.ndim == 3:
        a = a[None]
    return torch.from_numpy(np.ascontiguousarray(a)).float().div(255.0)


def _u8(x) -> np.ndarray:
    """torch/numpy float in [0, 1] (…, 3, H, W) → uint8."""
    a = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


def _np(x) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().numpy().astype(np.float32))


def _fmap_for_head(p: Pretext, fmap: np.ndarray, i: int = 0) -> np.ndarray:
    """Check that a feature map has the channels and spatial size head.onnx was exported with."""
    want = p.head.input_shapes[i] if p.head else []
    for d, (w, g) in enumerate(zip(want[1:], fmap.shape[1:]), start=1):
        if isinstance(w, int) and w != g:
            raise ModelFileError(f"{p.model.name}: head.onnx wants input {i} of shape {want}, the encoder gives {list(fmap.shape)}; "
                                 f"{_reexport(p.model)}")
    return fmap


def _first(out: dict[str, np.ndarray], i: int = 0) -> np.ndarray:
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


# -- jigsaw ------------------------------------------------------------------------------------------
def jigsaw(p: Pretext, image_u8: np.ndarray, perm_index: int) -> dict[str, Any]:
    """Cut the photo's 3×3 puzzle (centred tiles, as on the test split), shuffle it by permutation
    ``perm_index`` of the model's set, let the model name the permutation, put the tiles back with
    its answer.

    → {"original", "shuffled", "answer": uint8 (3, H, W) grids, "target", "predicted": indices into
    "perms" (n, 9), "probs" (n,), "correct": bool, "in_place": tiles the answer puts right (0..9),
    "logits" (1, n), "tiles_input" (9, 3, t, t) float32 (what the encoder saw)}."""
    from ssl_train.tasks import jigsaw as J

    cfg = p.config
    x = _t(image_u8)
    perms = p.task.permutations()
    target = int(perm_index) % len(perms)
    tiles = J.cut_tiles(x, cfg.tile_size, cfg.gap)  # (1, 9, 3, t, t) reading order
    shuffled = J.apply_permutation(tiles, perms[target])
    inp = J.standardize_tiles(shuffled).reshape(-1, *shuffled.shape[2:])
    fmap = _fmap_for_head(p, p.encoder.run(_np(inp))["fmap"])
    logits = _first(p.head.run(fmap))
    if logits.shape != (1, len(perms)):
        raise ModelFileError(f"{p.model.name}: head.onnx gives {list(logits.shape)} scores for a {len(perms)}-permutation set; {_reexport(p.model)}")
    probs = softmax(logits)[0]
    pred = int(np.argmax(probs))
    answer = J.reassemble(shuffled, perms[pred])
    return {
        "original": _u8(J.tiles_to_grid(tiles)[0]), "shuffled": _u8(J.tiles_to_grid(shuffled)[0]), "answer": _u8(J.tiles_to_grid(answer)[0]),
        "target": target, "predicted": pred, "probs": probs, "perms": perms.numpy(), "correct": pred == target,
        "in_place": int((perms[pred] == perms[target]).sum()), "logits": logits, "tiles_input": _np(inp),
    }


# -- context prediction ------------------------------------------------------------------------------
def context(p: Pretext, image_u8: np.ndarray) -> dict[str, Any]:
    """All 8 (centre, neighbour) pairs of the photo (centred patches, as on the test split), each
    classified by the model into one of the 8 positions.

    → {"centre" uint8 (3, t, t), "neighbours" uint8 (8, 3, t, t) in label order, "probs" (8, 8):
    row = true position, column = the model's probability for each position, "predicted" (8,),
    "boxes" (9, 4) pixel boxes of the 9 cells' patches (row 4 = centre), "names", "cells": label →
    cell 0..8 in reading order, "logits" (8, 8)}."""
    import torch

    from ssl_train.tasks import context as C
    from ssl_train.tasks.jigsaw import standardize_tiles

    cfg = p.config
    x = _t(image_u8)
    labels = torch.arange(8)
    pairs = C.cut_pair(x.expand(8, -1, -1, -1), labels, cfg.tile_size, cfg.gap)  # (8, 2, 3, t, t)
    inp = standardize_tiles(pairs).reshape(-1, *pairs.shape[2:])  # rows 2i / 2i+1 = centre / neighbour
    fmap = _fmap_for_head(p, p.encoder.run(_np(inp))["fmap"])
    logits = _first(p.head.run(fmap))
    probs = softmax(logits)
    return {
        "centre": _u8(pairs[0, 0]), "neighbours": _u8(pairs[:, 1]), "probs": probs, "predicted": probs.argmax(1),
        "boxes": C.patch_boxes(x.shape[-1], cfg.tile_size, cfg.gap).numpy(), "names": C.POSITION_NAMES,
        "cells": C.NEIGHBOUR_CELLS, "logits": logits,
    }


# -- colorization ------------------------------------------------------------------------------------
def colorization(p: Pretext, image_u8: np.ndarray) -> dict[str, Any]:
    """The photo's lightness L (all the encoder sees), the colours the model predicts for it
    (annealed mean of its colour-bin probabilities, put back on L) and the original.

    → {"grey", "predicted", "original": uint8 (3, S, S), "ab_rmse": error of the predicted colour
    (ab units, on the model's S/4 grid), "logits" (1, Q, S/4, S/4), "ab" (1, 2, S/4, S/4)}."""
    import torch

    from ssl_train.tasks import colorization as Co

    cfg = p.config
    x = _t(image_u8)
    L, ab = Co.rgb_to_l_ab(x)
    fmap = _fmap_for_head(p, p.encoder.run(_np(Co.l_to_input(L)))["fmap"])
    logits = _first(p.head.run(fmap))
    bins = Co.ab_bins()
    if logits.ndim != 4 or logits.shape[1] != len(bins):
        raise ModelFileError(f"{p.model.name}: head.onnx gives {list(logits.shape)}, not scores over the {len(bins)} colour bins; {_reexport(p.model)}")
    ab_pred = Co.decode_ab(torch.from_numpy(logits), bins, cfg.temperature)
    target = Co.make_views(x, cfg, None, train=False).ab
    rmse = float(((ab_pred - target) ** 2).sum(1).mean().sqrt())
    rmse_grey = float((target ** 2).sum(1).mean().sqrt())  # the no-colour answer: a = b = 0 everywhere
    return {
        "grey": _u8(Co.l_ab_to_rgb(L, torch.zeros_like(ab))[0]), "predicted": _u8(Co.colorize(L, ab_pred)[0]),
        "original": np.asarray(image_u8), "ab_rmse": rmse, "ab_rmse_grey": rmse_grey, "logits": logits, "ab": _np(ab_pred),
    }


# -- inpainting --------------------------------------------------------------------------------------
def inpainting(p: Pretext, image_u8: np.ndarray, where: str = "center") -> dict[str, Any]:
    """Cut the task's square hole (``where`` "center", or "random" with a fixed seed), let the
    model repaint the whole photo from the rest, keep its painting inside the hole.

    → {"masked", "filled", "prediction", "original": uint8 (3, S, S), "box" (top, left, bottom,
    right), "hole_mse", "context_mse", "raw" (1, 3, S, S) float32 model output}."""
    import torch

    from ssl_train.tasks import inpainting as I
    from ssl_train.tasks.base import normalize

    cfg = p.config
    x = _t(image_u8)
    s = x.shape[-1]
    side = I.hole_side(s, cfg.hole_fraction)
    pos = I.hole_positions(1, s, side, where, torch.Generator().manual_seed(0), "cpu")
    mask = I.box_mask(pos, side, s)
    masked = I.mask_image(x, mask)
    m = p.model
    raw = m.session.run(["prediction"], {m.input_name: _np(normalize(masked))})[0]
    pred = torch.from_numpy(raw)
    filled = I.fill_hole(x, pred, mask)
    se = ((pred - x) ** 2).mean(1, keepdim=True)
    t, l = (int(v) for v in pos[0])
    # the plain answer to beat: the hole filled with the mean colour of the pixels around it
    ring = (I.box_mask(pos - 2, side + 4, s) - mask).clamp_min(0)
    flat = (x * ring).sum((2, 3), keepdim=True) / ring.sum().clamp_min(1)
    se_flat = ((flat - x) ** 2).mean(1, keepdim=True)
    return {
        "masked": _u8(masked[0]), "filled": _u8(filled[0]), "prediction": _u8(pred[0]), "original": np.asarray(image_u8),
        "box": (t, l, t + side, l + side), "hole_mse": float((se * mask).sum() / mask.sum()),
        "hole_mse_flat": float((se_flat * mask).sum() / mask.sum()),
        "flat": _u8(x * (1 - mask) + flat * mask)[0],
        "context_mse": float((se * (1 - mask)).sum() / (1 - mask).sum().clamp_min(1)), "raw": raw,
    }


# -- super-resolution --------------------------------------------------------------------------------
def superres(p: Pretext, image_u8: np.ndarray) -> dict[str, Any]:
    """Shrink the photo by the task's factor, let the model restore it, compare with plain bicubic.

    → {"small" uint8 (3, S/f, S/f), "bicubic", "restored", "original" uint8 (3, S, S),
    "psnr_bicubic", "psnr_model" (dB), "factor", "raw" (1, 3, S, S) float32 head output}."""
    import torch

    from ssl_train.tasks import superres as SR
    from ssl_train.tasks.base import normalize

    cfg = p.config
    x = _t(image_u8)
    small, up = SR.degrade(x, cfg.factor)
    enc_in = normalize(up if cfg.input_mode == "upsampled" else small)
    stages = p.encoder.run(_np(enc_in), stages=True)["stages"]
    for i, st in enumerate(stages):
        _fmap_for_head(p, st, i)
    raw = _first(p.head.run(*stages, _np(up)))  # = bicubic + the predicted residual
    restored = SR.restore(up, torch.from_numpy(raw) - up)
    # what the model changed on top of bicubic, amplified ×4 around mid-grey so a viewer can see it
    change = (restored - up)[0].abs().mean(0, keepdim=True).mul(4).clamp(0, 1).expand(3, -1, -1)
    return {
        "small": _u8(small[0]), "bicubic": _u8(up[0]), "restored": _u8(restored[0]), "original": np.asarray(image_u8),
        "change": _u8(change),
        "psnr_bicubic": SR.psnr(up, x), "psnr_model": SR.psnr(restored, x), "factor": cfg.factor, "raw": raw,
    }


# -- PIRL --------------------------------------------------------------------------------------------
def pirl(p: Pretext, images_u8: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Each photo and its own jigsaw version (centred tiles, shuffled — ``pirl.make_views``, test
    mode), embedded by the model's two branches. PIRL trains a photo's jigsaw version to land
    next to the photo itself and away from every other photo.

    → {"f" (N, d) photo embeddings, "g" (N, d) jigsaw-version embeddings (both unit length),
    "similarity" (N, N): row i = photo i's jigsaw version against every photo (cosine),
    "rank" (N,): 1 = its own photo is the most similar, "puzzles" uint8 (N, 3, H, W) the shuffled
    tiles}."""
    import torch
    import torch.nn.functional as F

    from ssl_train.tasks import pirl as P
    from ssl_train.tasks.base import normalize
    from ssl_train.tasks.jigsaw import tiles_to_grid

    x = _t(images_u8)
    v = P.make_views(x, p.config, torch.Generator().manual_seed(int(seed)), train=False)
    n = x.shape[0]
    img_map = _fmap_for_head(p, p.encoder.run(_np(normalize(v.image)))["fmap"], 0)
    tile_map = _fmap_for_head(p, p.encoder.run(_np(normalize(v.tiles.reshape(n * v.tiles.shape[1], *v.tiles.shape[2:]))))["fmap"], 1)
    out = p.head.run(img_map, tile_map)
    f = F.normalize(torch.from_numpy(_first(out, 0)).float(), dim=1)
    g = F.normalize(torch.from_numpy(_first(out, 1)).float(), dim=1)
    sim = (g @ f.T).numpy()
    own = np.diag(sim)
    rank = 1 + (sim > own[:, None]).sum(1)
    return {"f": f.numpy(), "g": g.numpy(), "similarity": sim, "rank": rank, "puzzles": _u8(tiles_to_grid(v.tiles)),
            "query": g.numpy(), "key": f.numpy()}


# -- SimCLR ------------------------------------------------------------------------------------------
def simclr(p: Pretext, images_u8: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Two augmented views of each photo (``simclr.two_views``, the training augmentation, drawn
    from ``seed``), embedded by model.onnx's projection head. SimCLR trains the two views of a photo
    to embed alike and unlike the views of every other photo.

    → {"first", "second": uint8 (N, 3, S, S) the views, "similarity" (N, N): row i = photo i's
    first view against every photo's second view (cosine), "rank" (N,): 1 = its own second view is
    the most similar}."""
    import torch

    from ssl_train.tasks import simclr as S

    x = _t(images_u8)
    n = x.shape[0]
    views = _u8(S.two_views(x, p.config, torch.Generator().manual_seed(int(seed))))  # uint8, as model.onnx takes photos
    z = unit_rows(p.model.run(views, ["projection"])["projection"])
    sim = z[:n] @ z[n:].T
    own = np.diag(sim)
    return {"first": views[:n], "second": views[n:], "similarity": sim, "rank": 1 + (sim > own[:, None]).sum(1),
            "query": z[:n], "key": z[n:]}


def contrast_join(new: dict[str, Any], gallery: dict[str, Any], keep: np.ndarray | list[int]) -> dict[str, Any]:
    """``pirl`` or ``simclr`` computed for new photos and, once, for a gallery of test photos →
    the same as computing both together: rows ``keep`` of the gallery follow the new photos, the
    similarity (N, N) and ranks are over them all, and every per-photo array is joined."""
    keep = np.asarray(keep, dtype=int)
    out = {k: np.concatenate([np.asarray(v), np.asarray(gallery[k])[keep]]) for k, v in new.items()
           if k not in ("similarity", "rank") and isinstance(v, np.ndarray) and len(v) == len(new["query"])}
    sim = out["query"] @ out["key"].T
    out["similarity"] = sim
    out["rank"] = 1 + (sim > np.diag(sim)[:, None]).sum(1)
    return out


# -- DeepCluster -------------------------------------------------------------------------------------
def deepcluster_assign(p: Pretext, images_u8: np.ndarray) -> dict[str, np.ndarray]:
    """Photos (N, 3, S, S) → {"cluster" (N,) the nearest k-means centroid of the last clustering
    (what training used as the pseudo-label), "probs" (N, k) the classifier's probabilities,
    "guess" (N,) its top cluster}."""
    from ssl_train.tasks.base import normalize

    x = _t(images_u8)
    if len(x) == 0:
        return {"cluster": np.zeros(0, np.int64), "probs": np.zeros((0, 0), np.float32), "guess": np.zeros(0, np.int64)}
    fmap = _fmap_for_head(p, p.encoder.run(_np(normalize(x)))["fmap"])
    out = p.head.run(fmap)
    logits, nearest = _first(out, 0), _first(out, 1)
    probs = softmax(logits)
    return {"cluster": np.asarray(nearest, np.int64), "probs": probs, "guess": probs.argmax(1)}


def cluster_members(cluster: int, gallery_clusters: np.ndarray, gallery_labels: np.ndarray, classes: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The gallery photos in ``cluster``: {"members" indices, "size", "composition": [(class,
    count)] most common first, "n_clusters_used": clusters holding any gallery photo}."""
    members = np.flatnonzero(gallery_clusters == cluster)
    counts = np.bincount(gallery_labels[members], minlength=len(classes)) if len(members) else np.zeros(len(classes), int)
    comp = [(classes[i], int(counts[i])) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
    return {"members": members, "size": int(len(members)), "composition": comp, "n_clusters_used": int(len(np.unique(gallery_clusters)))}


# -- multitask ---------------------------------------------------------------------------------------
def multitask_parts(card: dict) -> list[tuple[str, float]]:
    """[(sub-task, loss weight)] of a multitask model (``multitask.parse_tasks`` on its config)."""
    from ssl_train.tasks.multitask import parse_tasks

    return parse_tasks(str((card.get("task_config") or {}).get("tasks", "")))


# -- the gallery of test photos (PIRL's "other photos", DeepCluster's clusters) ----------------------
def test_gallery(split_data, limit: int | None = None) -> dict[str, Any]:
    """Test-split photos of ``ssl_train.data.SplitData`` (no model trained on them), evenly spread
    when ``limit`` is set: {"images" uint8 (M, 3, S, S), "labels" (M,), "files", "classes"}."""
    idx = np.asarray(split_data.test_idx)
    if limit is not None and len(idx) > limit:
        idx = idx[np.linspace(0, len(idx) - 1, limit).round().astype(int)]
    ds = split_data.ds
    return {"images": ds.images[idx].numpy(), "labels": np.asarray(ds.labels)[idx], "files": [ds.files[i] for i in idx],
            "classes": list(ds.classes)}

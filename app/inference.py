"""Exported models → predictions, with onnxruntime only (no Streamlit, no training machinery).

A model folder is read through ``ssl_train.model_files`` (torch-free): its ``model.json`` says the
input size, the normalisation and the output names; every file is checked against its sha256
before a session is built. Photos are prepared exactly as the card's "preprocessing" says, with the
training package's own functions (``open_rgb`` upstream in ``app.uploads``, ``square_resize``,
``to_uint8_chw``), then ``(x / scale - mean) / std``.

Pretext visualisations use the task's own pure functions (``ssl_train.tasks.rotation``): torch is
imported only when such a visualisation runs, never by listing or embedding.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ssl_train.images import square_resize, to_uint8_chw
from ssl_train.model_files import CARD_NAME, FEATURE_OUTPUT, ModelFileError, read_card, verify_model_dir

from .config import PROTAGONIST, RANDOM_INIT, display

BATCH = 64
ANGLE_LABELS = ("0°", "90° ↺", "180°", "270° ↺")  # index k = turned k·90° counter-clockwise (torch.rot90)


@dataclass(frozen=True)
class ModelEntry:
    """One sub-folder of the models directory: its card when intact, else the one-line error."""

    name: str
    path: Path
    card: dict[str, Any] | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.card is not None

    @property
    def task(self) -> str:
        return str((self.card or {}).get("task", "?"))

    @property
    def is_reference(self) -> bool:
        return self.task == RANDOM_INIT

    def label(self) -> str:
        """``rotation (rotation, 50 epochs)`` — how pages name a model."""
        if not self.card:
            return self.name
        if self.is_reference:
            return f"{self.name} (random init, no pretraining)"
        ep = self.card.get("epochs")
        return f"{self.name} ({self.task}, {ep} epoch{'s' if ep != 1 else ''})" if self.name != self.task else f"{self.name} ({ep} epoch{'s' if ep != 1 else ''})"


def list_models(models_dir: str | Path) -> list[ModelEntry]:
    """Every model folder under ``models_dir`` (sorted; hidden folders skipped), verified.

    A folder that fails ``verify_model_dir`` is listed with the error message, which names the bad
    file and the command that regenerates it. A missing ``models_dir`` gives an empty list.
    """
    root = Path(models_dir)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        if not p.is_dir() or p.name.startswith((".", "_")):
            continue
        try:
            card = verify_model_dir(p)
            _check_card(p, card)
            out.append(ModelEntry(p.name, p, card, None))
        except ModelFileError as e:
            out.append(ModelEntry(p.name, p, None, str(e)))
    return out


def featured_model(entries: list[ModelEntry], method: str = "finetune") -> str | None:
    """The pretrained model a newcomer should see first: the best ``method`` test accuracy at 10%
    labels recorded in the model cards (``metrics[method]["10%"].mean``; "finetune" for the few-shot
    lab, "knn" for the embedding map, which shows frozen features), else the story's task
    (``config.PROTAGONIST``, rotation), else the first pretrained model; None when there is none."""
    pretrained = [e for e in entries if not e.is_reference]

    def score(e: ModelEntry) -> float:
        m = ((e.card or {}).get("metrics") or {}).get(method) or {}
        v = (m.get("10%") or {}).get("mean")
        return float(v) if isinstance(v, (int, float)) else -1.0

    if not pretrained:
        return None
    best = max(pretrained, key=score)
    if score(best) >= 0:
        return best.name
    return next((e.name for e in pretrained if e.name == PROTAGONIST), pretrained[0].name)


def folder_signature(model_dir: str | Path) -> tuple:
    """(name, size, mtime) of every file in the folder: changes whenever a file is replaced, so
    caches keyed by it never serve a stale model."""
    p = Path(model_dir)
    try:
        return tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in p.iterdir() if f.is_file()))
    except OSError:
        return ()


def _regen(model_dir: Path, card: dict | None) -> str:
    cmd = (card or {}).get("regenerate") or f"python -m ssl_train export --checkpoint RUN/checkpoint.safetensors --name {model_dir.name} --out {display(model_dir.parent)}"
    return f"regenerate the folder with `{cmd}`"


def _check_card(model_dir: Path, card: dict) -> None:
    """Fields the app relies on, beyond what verify_model_dir checks."""
    try:
        size = int(card["input"]["image_size"])
        norm = card["normalization"]
        mean, std = [float(v) for v in norm["mean"]], [float(v) for v in norm["std"]]
        float(norm.get("scale", 255.0))
        outputs = list(card["output_names"])
        task = card["task"]
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{model_dir / CARD_NAME} lacks a field the app needs ({type(e).__name__}: {e}); {_regen(model_dir, card)}") from None
    if not 8 <= size <= 1024 or len(mean) != 3 or len(std) != 3 or not all(s > 0 for s in std) or not isinstance(task, str):
        raise ModelFileError(f"{model_dir / CARD_NAME} has an unusable input size or normalisation; {_regen(model_dir, card)}")
    if card.get("feature_output", FEATURE_OUTPUT) not in outputs:
        raise ModelFileError(f"{model_dir / CARD_NAME} lists no {FEATURE_OUTPUT!r} output; {_regen(model_dir, card)}")


class OnnxModel:
    """A verified model folder with an onnxruntime session (read-only: safe to share between
    sessions and threads)."""

    def __init__(self, model_dir: str | Path, card: dict[str, Any] | None = None) -> None:
        import onnxruntime as ort

        self.dir = Path(model_dir)
        self.card = card if card is not None else verify_model_dir(self.dir)
        _check_card(self.dir, self.card)
        self.name = self.dir.name
        self.task: str = self.card["task"]
        self.image_size = int(self.card["input"]["image_size"])
        norm = self.card["normalization"]
        self.scale = float(norm.get("scale", 255.0))
        self.mean = np.asarray(norm["mean"], np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(norm["std"], np.float32).reshape(1, 3, 1, 1)
        self.input_name: str = self.card.get("input_name", "input")
        self.feature_output: str = self.card.get("feature_output", FEATURE_OUTPUT)
        so = session_options(ort)
        onnx_file = self.dir / (self.card.get("onnx") or {}).get("file", "model.onnx")
        try:
            self.session = ort.InferenceSession(str(onnx_file), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 — onnxruntime raises its own exception types
            raise ModelFileError(f"{onnx_file} cannot be loaded by onnxruntime ({str(e).splitlines()[0][:120]}); {_regen(self.dir, self.card)}") from None
        self.output_names = [o.name for o in self.session.get_outputs()]
        if self.feature_output not in self.output_names:
            raise ModelFileError(f"{onnx_file} has no {self.feature_output!r} output; {_regen(self.dir, self.card)}")

    # -- preprocessing ----------------------------------------------------------------------
    def prepare(self, img: Image.Image) -> np.ndarray:
        """RGB photo → uint8 (3, S, S): shorter side to S (bicubic), centre crop — as in training."""
        return to_uint8_chw(square_resize(img.convert("RGB") if img.mode != "RGB" else img, self.image_size))

    def normalise(self, images_u8: np.ndarray) -> np.ndarray:
        """uint8 (N, 3, S, S) → float32 encoder input per model.json."""
        x = np.asarray(images_u8, dtype=np.float32) / self.scale
        return ((x - self.mean) / self.std).astype(np.float32, copy=False)

    # -- running ----------------------------------------------------------------------------
    def run(self, images_u8: np.ndarray, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """uint8 (N, 3, S, S) → {output name: (N, ...)} for ``outputs`` (default: all)."""
        images_u8 = np.asarray(images_u8)
        s = self.image_size
        if images_u8.ndim != 4 or images_u8.shape[1:] != (3, s, s):
            raise ValueError(f"{self.name} wants uint8 (N, 3, {s}, {s}), got {images_u8.shape}")
        names = outputs or self.output_names
        parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
        for i in range(0, len(images_u8), BATCH):
            got = self.session.run(names, {self.input_name: self.normalise(images_u8[i : i + BATCH])})
            for n, g in zip(names, got):
                parts[n].append(g)
        return {n: (np.concatenate(v) if v else np.zeros((0,), np.float32)) for n, v in parts.items()}

    def features(self, images_u8: np.ndarray) -> np.ndarray:
        """uint8 (N, 3, S, S) → pooled last-stage features (N, D) float32."""
        return self.run(images_u8, [self.feature_output])[self.feature_output].astype(np.float32, copy=False)

    def head_output(self, task: str) -> str | None:
        """model.onnx's output with ``task``'s classification logits (``ssl_train.onnx_graph``'s naming):
        "logits" of a model trained on that task, "<task>_logits" of a multi-task model whose sub-head
        for it runs on the photo's feature map; else None."""
        name = "logits" if self.task == task else f"{task}_logits"
        return name if name in self.output_names else None

    @property
    def rotation_output(self) -> str | None:
        """The output with the 4 rotation logits, or None."""
        return self.head_output("rotation")

    @property
    def has_rotation_head(self) -> bool:
        return self.rotation_output is not None


def session_options(ort):
    """onnxruntime settings of every session the app opens: up to 4 threads for one operator, one
    for the graph, warnings off, and no spinning: onnxruntime's idle threads otherwise busy-wait for
    the next operator, taking the cores from the torch task functions between the graphs of one
    panel (on 2 cores, median over 20 test photos of ``Panel.compute``, two runs each: PIRL 52–56 →
    16–20 ms, context 52 → 9 ms, SimCLR 43–55 → 20 ms; ``python -m app.measure``'s ``panel_compute_ms``)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


# -- rotation ------------------------------------------------------------------------------------
def turn_probabilities(model: OnnxModel, images_u8: np.ndarray) -> np.ndarray:
    """uint8 (N, 3, S, S) photos as they are → (N, 4): P(photo is turned k·90° counter-clockwise)."""
    if not model.has_rotation_head:
        raise ValueError(f"model {model.name} ({model.task}) has no rotation head")
    out = model.rotation_output
    return softmax(model.run(images_u8, [out])[out])


def rotation_grid(model: OnnxModel, image_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One photo (3, S, S) in all four rotations (``ssl_train.tasks.rotation.all_rotations``) →
    (rotated uint8 (4, 3, S, S), probabilities (4, 4)): row k is the photo turned k·90°
    counter-clockwise, column j the model's probability that it was turned j·90°."""
    import torch

    from ssl_train.tasks.rotation import all_rotations

    x, _ = all_rotations(torch.from_numpy(np.ascontiguousarray(image_u8))[None])
    rotated = x.numpy()
    return rotated, turn_probabilities(model, rotated)


def with_mirror_probabilities(model: OnnxModel, image_u8: np.ndarray, probs: np.ndarray | None = None) -> np.ndarray:
    """One photo (3, S, S) → (4, 4) like ``rotation_grid``'s probabilities, but each of the four
    turns judged together with its mirror image (``ssl_train.tasks.rotation.turns_with_mirror_scores``):
    a mirrored upright flower is still upright, and two looks err less often than one
    (``reports/rotation-limits.md``). Row k: the photo turned k·90°; column j: P(turned j·90°).
    ``probs``: ``rotation_grid``'s probabilities of this photo when already computed."""
    import torch

    from ssl_train.tasks.rotation import mirror, turns_with_mirror_scores

    u8 = np.asarray(image_u8)
    if probs is None:
        _, probs = rotation_grid(model, u8)
    _, probs_m = rotation_grid(model, mirror(torch.from_numpy(np.ascontiguousarray(u8))).numpy())
    return softmax(turns_with_mirror_scores(_log(probs), _log(probs_m)).numpy())


def _log(probs: np.ndarray):
    """Probabilities → float32 torch log-probabilities (0 clipped to 1e-12, so no −inf)."""
    import torch

    return torch.from_numpy(np.log(np.clip(probs, 1e-12, 1.0)).astype(np.float32))


def turn(image_u8: np.ndarray, k: int) -> np.ndarray:
    """(3, H, W) uint8 turned k·90° counter-clockwise with ``ssl_train.tasks.rotation.rotate``."""
    import torch

    from ssl_train.tasks.rotation import rotate

    return rotate(torch.from_numpy(np.ascontiguousarray(image_u8))[None], int(k))[0].numpy()


def auto_upright(model: OnnxModel, image_u8: np.ndarray, shown_u8: np.ndarray | None = None,
                 probs: np.ndarray | None = None) -> tuple[int, np.ndarray, np.ndarray]:
    """Predict how a photo (3, S, S) is turned and undo it with ``ssl_train.tasks.rotation.upright``.

    The model looks at the photo in all four turns and the turn is judged from all four answers at
    once (``ssl_train.tasks.rotation.four_view_turn_scores``): on the test split that puts more
    photos upright than one look (``reports/rotation-limits.md``). ``shown_u8`` (3, D, D), a larger
    square crop of the same photo, is what gets turned back for display (default: the model's
    input). ``probs`` (4, 4): the model's answers for the input's four turns when already known
    (a reordering of any turned copy's, since turning is exact): no network call then.
    Returns (predicted k, its probabilities over the four turns (4,), upright uint8).
    """
    import torch

    from ssl_train.tasks.rotation import four_view_turn_scores, upright

    if probs is None:
        _, probs = rotation_grid(model, np.asarray(image_u8))
    scores = four_view_turn_scores(_log(probs)[None])[0].numpy()
    joint = softmax(scores[None])[0]
    k = int(np.argmax(joint))
    shown = image_u8 if shown_u8 is None else shown_u8
    fixed = upright(torch.from_numpy(np.ascontiguousarray(shown))[None], torch.tensor([k]))[0].numpy()
    return k, joint, fixed


def to_pil(image_u8: np.ndarray) -> Image.Image:
    """uint8 (3, H, W) → PIL RGB."""
    return Image.fromarray(np.ascontiguousarray(np.asarray(image_u8).transpose(1, 2, 0)))


def display_square(img: Image.Image, size: int = 256) -> np.ndarray:
    """The model's centre crop at display resolution: uint8 (3, size, size)."""
    return to_uint8_chw(square_resize(img, size))


def card_summary(card: dict[str, Any]) -> dict[str, Any]:
    """The few card fields a page shows about a model."""
    pt = card.get("pretext_test") or {}
    return {
        "task": card.get("task"),
        "epochs": card.get("epochs"),
        "finished": card.get("finished"),
        "input": f"{card['input']['image_size']} px",
        "feature_dim": card.get("feature_dim"),
        "trained_on": card.get("trained_on"),
        "pretext test": pt if pt else None,
        "metrics": card.get("metrics"),
        "exported_at": card.get("exported_at"),
        "outputs": card.get("output_names"),
    }


# -- pretext graphs: the encoder at any input size, its stage maps, and head.onnx -----------------------
class EncoderGraph:
    """model.onnx opened for the pretext views: any input height and width (tiles, patches, small
    images go through the same encoder) and, besides "features", the encoder's feature maps as
    outputs — the last one ("fmap", what a task's ``forward`` hands to its head) and, when they can
    be found, one per stage (``encoder.forward_stages``, what super-resolution's head reads).

    Nothing is recomputed outside onnxruntime: the graph is model.onnx itself (read with its
    weights from weights.safetensors, which ``verify_model_dir`` has checked), with the input's
    spatial dimensions made symbolic and existing intermediate tensors added as graph outputs.
    The last map is the input of the node that pools it into "features"; stage ``i``'s map is the
    output of the last node of the exporter's ``/encoder/stages.<i>/`` scope (``stage_maps`` is
    None when these scopes are not found, e.g. another exporter)."""

    def __init__(self, model: OnnxModel) -> None:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper

        self.model = model
        onnx_file = model.dir / (model.card.get("onnx") or {}).get("file", "model.onnx")
        try:
            proto = onnx.load(str(onnx_file))  # external data: weights.safetensors beside it
        except Exception as e:  # noqa: BLE001
            raise ModelFileError(f"{onnx_file} cannot be read by onnx ({str(e).splitlines()[0][:120]}); {_regen(model.dir, model.card)}") from None
        g = proto.graph
        inp = next((v for v in g.input if v.name == model.input_name), None)
        pool = next((n for n in g.node if model.feature_output in n.output), None)
        if inp is None or pool is None or not pool.input:
            raise ModelFileError(f"{onnx_file} has no {model.input_name!r} input or no node making {model.feature_output!r}; {_regen(model.dir, model.card)}")
        dims = inp.type.tensor_type.shape.dim
        for i, name in ((2, "height"), (3, "width")):
            if len(dims) > i:
                dims[i].Clear()
                dims[i].dim_param = name
        del g.value_info[:]  # shapes recorded for the export size no longer hold
        self.fmap_name = pool.input[0]
        n_stages = len((model.card.get("encoder") or {}).get("widths") or ())
        stage_maps: list[str] | None = []
        for i in range(n_stages):
            scope = [n for n in g.node if n.name.startswith(f"/encoder/stages.{i}/")]
            if not scope:
                stage_maps = None
                break
            stage_maps.append(scope[-1].output[0])  # type: ignore[union-attr]
        if stage_maps is not None and (not stage_maps or stage_maps[-1] != self.fmap_name):
            stage_maps = None
        self.stage_maps = stage_maps
        have = {o.name for o in g.output}
        for name in [self.fmap_name, *(stage_maps or [])]:
            if name not in have:
                g.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
                have.add(name)
        so = session_options(ort)
        try:
            self.session = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001
            raise ModelFileError(f"{onnx_file} cannot run at other input sizes in onnxruntime ({str(e).splitlines()[0][:120]}); {_regen(model.dir, model.card)}") from None

    def run(self, x: np.ndarray, stages: bool = False) -> dict[str, Any]:
        """Encoder-ready float32 (N, 3, H, W) (already normalised the task's way) → {"features" (N, D),
        "fmap" (N, D, h, w), and with ``stages`` "stages": [(N, C_i, h_i, w_i)] per stage}."""
        x = np.ascontiguousarray(np.asarray(x, np.float32))
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.model.name} encoder wants float32 (N, 3, H, W), got {x.shape}")
        if stages and self.stage_maps is None:
            raise ValueError(f"{self.model.name}: the stage maps of model.onnx were not found")
        names = [self.model.feature_output, self.fmap_name] + (list(self.stage_maps or []) if stages else [])
        names = list(dict.fromkeys(names))
        parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
        for i in range(0, len(x), BATCH):
            for n, v in zip(names, self.session.run(names, {self.model.input_name: x[i : i + BATCH]})):
                parts[n].append(v)
        got = {n: np.concatenate(v) for n, v in parts.items()}
        out: dict[str, Any] = {"features": got[self.model.feature_output], "fmap": got[self.fmap_name]}
        if stages:
            out["stages"] = [got[n] for n in self.stage_maps or []]
        return out


class HeadGraph:
    """head.onnx of a model folder (tasks with a custom ``forward``; see ``ssl_train.export``): the
    pretext head alone. Its inputs are the tensors the task's ``forward`` hands to its head, in
    order; its outputs are named as in model.json's "head_graph".

    With ``sub``, the graph of sub-task ``sub``'s head of a multi-task model instead (model.json's
    "sub_head_graphs"[sub], e.g. head-jigsaw.onnx): its inputs are what that sub-task's own
    ``forward`` hands to its head."""

    def __init__(self, model: OnnxModel, sub: str | None = None) -> None:
        import onnxruntime as ort

        if sub is None:
            hg = model.card.get("head_graph")
        else:
            subs = model.card.get("sub_head_graphs")
            hg = subs.get(sub) if isinstance(subs, dict) else None
        if not isinstance(hg, dict) or not hg.get("file"):
            what = "no head graph" if sub is None else f"no head graph for sub-task {sub!r}"
            raise ModelFileError(f"{model.dir / CARD_NAME} lists {what}; {_regen(model.dir, model.card)}")
        self.file: str = hg["file"]
        path = model.dir / self.file
        so = session_options(ort)
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001
            raise ModelFileError(f"{path} cannot be loaded by onnxruntime ({str(e).splitlines()[0][:120]}); {_regen(model.dir, model.card)}") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.input_shapes = [list(i.shape) for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, *inputs: np.ndarray) -> dict[str, np.ndarray]:
        """The head's positional inputs (float32 arrays) → {output name: array}."""
        if len(inputs) != len(self.input_names):
            raise ValueError(f"{self.file} takes {len(self.input_names)} inputs, got {len(inputs)}")
        feed = {n: np.ascontiguousarray(np.asarray(a, np.float32)) for n, a in zip(self.input_names, inputs)}
        return dict(zip(self.output_names, self.session.run(None, feed)))


__all__ = [
    "ANGLE_LABELS", "EncoderGraph", "HeadGraph", "ModelEntry", "ModelFileError", "OnnxModel", "auto_upright", "card_summary",
    "display_square", "folder_signature", "list_models", "read_card", "rotation_grid", "softmax", "to_pil", "turn",
    "turn_probabilities", "with_mirror_probabilities",
]

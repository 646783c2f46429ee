"""Export a pretraining checkpoint to a model folder for the app: ``<out>/<name>/``.

Files (the contract is checked by ``model_files.verify_model_dir``, which is torch-free)::

    model.onnx          float32 graph, opset 17, graph only (~30 kB): its weights are ONNX external
                        data in weights.safetensors. Input "input": float32 (batch, 3, S, S), the
                        encoder-ready tensor (RGB/255, then (x - MEAN) / STD). Outputs: "features"
                        (batch, D), the pooled last-stage feature vector, and the head's output(s).
    head.onnx           only when the task's head cannot sit on top of model.onnx (see below);
                        graph only as well, reading the head.* tensors of weights.safetensors
    weights.safetensors encoder.* and head.* tensors, the single copy of the weights: read by both
                        graphs and by ``load_model_weights`` (fine-tuning), float16 storage by
                        default (converted back to float32 on load)
    model.json          the card: task and configs, input, normalisation, outputs, provenance,
                        metrics, ONNX-vs-PyTorch parity, and {file: sha256} of every other file

Which outputs exist (recorded in model.json as "output_names" and "head_graph"):

1. The task keeps the default ``forward`` (``head(encoder(x))``): model.onnx is
   ``x → (features, head outputs)``. A tensor output is named "logits" if the task's ``kind`` is
   "classification" and the tensor is (batch, K), else "prediction" (e.g. an image); a tuple/list
   gives ``<that name>_<i>``; a dict gives its keys (prefixed "head_" if a key would clash).
2. The task overrides ``forward`` (several tiles per sample, dict inputs, ...), or its head cannot
   run on an S×S photo's feature map: model.onnx has "features" only. The tensors the task's
   forward hands to its head are captured on real photos (``eval_batch``), and if the head takes
   only tensors and is called once, it is exported alone as head.onnx (inputs "head_input" or
   "head_input_<i>", outputs named as in 1). Otherwise there is no head graph and model.json says
   why. Preparing head.onnx's inputs stays the task's Python code.
3. A multi-task model (the task has ``subtasks`` and a ``ModuleDict`` head): the sub-heads that run
   on the photo's feature map (e.g. rotation's) become outputs of model.onnx named
   ``<sub-task>_<name>`` (e.g. "rotation_logits"), listed in model.json as "sub_heads_in_model_onnx".
   Every other sub-head (e.g. jigsaw's, which takes tiles) is captured as in 2, from the sub-task's
   own eval_batch and forward with its sub-head, and exported alone as ``head-<sub-task>.onnx``
   (reading the ``head.<sub-task>.*`` tensors of weights.safetensors), listed in model.json as
   "sub_head_graphs": {<sub-task>: {"file", "inputs", "outputs", "external_data", "input_from"}}.
   A sub-head that cannot be captured gets no graph, and the card's "head_note" says why.
   ``add_sub_head_graphs`` adds the missing sub-head graphs to an existing folder from its own
   weights.safetensors (``python -m ssl_train export --add-head-graphs models/multitask``), leaving
   every existing file byte-identical.

Weights are stored once. The graphs are exported without constant folding or BatchNorm fusion, so
that each ONNX initializer is one ``state_dict`` tensor under its own key; ``_link_weights`` then
replaces each by an external-data reference to that tensor's bytes in weights.safetensors (a
safetensors file is an 8-byte little-endian header length, a JSON header with each tensor's dtype,
shape and data_offsets, then raw little-endian data: exactly ONNX's location/offset/length), followed
by Cast(to=FLOAT) for float16 storage. The graph computes in float32; onnxruntime folds the casts and
BatchNorms into the convolutions when it creates the session. onnxruntime must open model.onnx by
its path (``InferenceSession(str(path))``) so that it finds weights.safetensors beside it; model.onnx
records the sha256 of weights.safetensors in its metadata, so model.onnx's own sha256 changes
whenever the weights do. The weights are rounded to float16 *before* the export, so the ONNX graph,
``load_model_weights`` and the parity check all use the same values.

Everything is written to a temporary folder beside the target and renamed into place only after
the parity check and verification pass: a failed export never destroys an existing model.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

from . import tensorfile
from .errors import UserError
from .model_files import (
    CARD_NAME,
    FEATURE_OUTPUT,
    FORMAT,
    HEAD_ONNX_NAME,
    INPUT_NAME,
    ONNX_NAME,
    WEIGHTS_NAME,
    ModelFileError,
    read_card,
    sha256_file,
    sub_head_graphs,
    sub_head_onnx_name,
    verify_model_dir,
)
from .paths import REPO, portable

__all__ = [
    "ModelFileError", "export_model", "export_random_reference", "parity_check", "verify_model_dir",
    "load_model_weights", "add_export_parser", "cmd_export", "add_sub_head_graphs", "PARITY_TOL", "OPSET",
]

OPSET = 17
PARITY_TOL = 1e-4  # max |ONNX − PyTorch| accepted for a float32 graph
PARITY_PHOTOS = 4
PARITY_SEED = 1234  # generator seed of eval_batch when capturing head inputs
RANDOM_TASK = "random_init"
MULTI_TASK = "multitask"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_RESERVED = {INPUT_NAME, FEATURE_OUTPUT}


class ExportError(UserError):
    """The export could not produce a faithful model folder (nothing was replaced)."""


# --------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------
QSCALE = ".qscale"  # suffix of the per-output-channel float32 scale of an int8-stored tensor
INT8_MIN_NUMEL = 256  # smaller tensors (biases, batch-norm) stay float16: int8 would save nothing


def quantize_int8(w):
    """Symmetric per-output-channel int8: float (C, ...) → (int8 (C, ...), float32 scale (C,)) with
    w ≈ q * scale[c]; |q| ≤ 127. A channel of zeros gets scale 1."""
    import torch

    w = w.detach().float()
    amax = w.reshape(w.shape[0], -1).abs().amax(1)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    q = torch.round(w / scale.view(-1, *[1] * (w.dim() - 1))).clamp_(-127, 127).to(torch.int8)
    return q.contiguous(), scale.contiguous()


def _storage_tensors(encoder, head, fp16: bool, int8: bool = False) -> dict:
    """encoder.* / head.* tensors as stored: floating tensors in float16 when ``fp16`` (except any
    whose values would overflow float16); with ``int8`` every floating weight of ≥ 2 dims and at
    least ``INT8_MIN_NUMEL`` values (convolutions, linear layers) becomes int8 plus a float32
    ``<key>.qscale`` (per output channel); everything else unchanged."""
    import torch

    out = {}
    for prefix, mod in (("encoder.", encoder), ("head.", head)):
        if mod is None:
            continue
        for k, v in mod.state_dict().items():
            v = v.detach().cpu().contiguous()
            if int8 and v.is_floating_point() and v.dim() >= 2 and v.numel() >= INT8_MIN_NUMEL and torch.isfinite(v).all():
                out[prefix + k], out[prefix + k + QSCALE] = quantize_int8(v)
                continue
            if fp16 and v.is_floating_point():
                h = v.to(torch.float16)
                if torch.isfinite(h).all() or not torch.isfinite(v).all():
                    v = h
            out[prefix + k] = v
    return out


def _as_float32(state: dict) -> dict:
    """Stored tensors → the float32 state dict they stand for: float16 widened, int8 tensors
    multiplied by their ``.qscale`` (the same float32 product DequantizeLinear computes)."""
    import torch

    out = {}
    for k, v in state.items():
        if k.endswith(QSCALE) and k[: -len(QSCALE)] in state:
            continue
        if v.dtype == torch.int8 and k + QSCALE in state:
            scale = state[k + QSCALE].to(torch.float32)
            out[k] = v.to(torch.float32) * scale.view(-1, *[1] * (v.dim() - 1))
        else:
            out[k] = v.to(torch.float32) if v.is_floating_point() else v
    return out


def _split(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def load_model_weights(model_dir: str | Path, card: dict | None = None):
    """Rebuild (encoder, head or None, card) in float32 eval mode from a model folder's
    weights.safetensors (float16 storage is converted back to float32)."""
    from safetensors.torch import load_file

    from .encoders import EncoderConfig, build_encoder
    from .train import encoder_info

    model_dir = Path(model_dir)
    card = card or read_card(model_dir)
    state = _as_float32(load_file(str(model_dir / card.get("weights", {}).get("file", WEIGHTS_NAME))))
    encoder = build_encoder(EncoderConfig.from_dict(card["encoder"]))
    encoder.load_state_dict(_split(state, "encoder."))
    head = None
    if card["task"] != RANDOM_TASK:
        head = _task_of(card["task"], card.get("task_config") or {}).build_head(encoder_info(encoder, int(card["input"]["image_size"])))
        head.load_state_dict(_split(state, "head."))
        head.eval()
    return encoder.eval(), head, card


def _task_of(name: str, options: dict):
    from .tasks import get_task

    try:
        return get_task(name, options)
    except UserError as e:
        raise UserError(f"cannot rebuild the head of task {name!r}: {e}") from None


# --------------------------------------------------------------------------------------------
# output naming and graph modules
# --------------------------------------------------------------------------------------------
def _flatten_out(out: Any, kind: str) -> list[tuple[str, Any]] | None:
    """Head output → [(onnx output name, tensor)], or None if it is not tensor/tuple/dict of tensors."""
    import torch

    def base(t) -> str:
        return "logits" if kind == "classification" and t.dim() == 2 else "prediction"

    if torch.is_tensor(out):
        return [(base(out), out)]
    if isinstance(out, (tuple, list)) and out and all(torch.is_tensor(t) for t in out):
        return [(f"{base(t)}_{i}", t) for i, t in enumerate(out)]
    if isinstance(out, dict) and out and all(torch.is_tensor(t) for t in out.values()):
        names, res = set(), []
        for k, t in out.items():
            n = re.sub(r"[^A-Za-z0-9_]", "_", str(k)) or "out"
            n = f"head_{n}" if n in _RESERVED or n in names else n
            names.add(n)
            res.append((n, t))
        return res
    return None


def _as_tuple(out: Any) -> tuple:
    """Traceable twin of ``_flatten_out``: the tensors in the same order."""
    if isinstance(out, dict):
        return tuple(out.values())
    if isinstance(out, (tuple, list)):
        return tuple(out)
    return (out,)


def _graph_modules():
    import torch
    from torch import nn

    from .encoders import pooled

    class FeaturesAndHead(nn.Module):
        """x → (pooled features, *head outputs); ``head`` None gives features only."""

        def __init__(self, encoder: nn.Module, head: nn.Module | None) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = head

        def forward(self, x: torch.Tensor):
            fmap = self.encoder(x)
            feats = pooled(fmap)
            if self.head is None:
                return feats
            return (feats, *_as_tuple(self.head(fmap)))

    class HeadOnly(nn.Module):
        def __init__(self, head: nn.Module) -> None:
            super().__init__()
            self.head = head

        def forward(self, *args):
            return _as_tuple(self.head(*args))

    return FeaturesAndHead, HeadOnly


def _sub_heads_module(task, head, names: list[str]):
    """The sub-heads ``names`` of a multi-task head (an ``nn.ModuleDict``) as one head whose output
    is ``{"<sub-task>_<output name>": tensor}``; its state-dict keys stay ``<sub-task>.<...>``, so the
    exported graph reads the same tensors of weights.safetensors."""
    import torch
    from torch import nn

    class SubHeads(nn.ModuleDict):
        def forward(self, fmap: torch.Tensor) -> dict:
            out = {}
            for n, h in self.items():
                for k, t in _flatten_out(h(fmap), task.subtasks[n].kind) or []:
                    out[f"{n}_{k}"] = t
            return out

    return SubHeads({n: head[n] for n in names}).eval()


def _sub_head_only(head, sub: str):
    """Sub-head ``sub`` of a multi-task head (an ``nn.ModuleDict``) alone, called with the tensors
    its sub-task's forward hands it, returning a tuple. Held as ``self.head[sub]`` so that the
    exported initializers are named ``head.<sub>.<...>``, exactly the keys of weights.safetensors."""
    from torch import nn

    class SubHeadOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.ModuleDict({sub: head[sub]})

        def forward(self, *args):
            return _as_tuple(self.head[sub](*args))

    return SubHeadOnly().eval()


def _sub_heads_on_features(task, head, encoder, x2) -> tuple[list[str], dict[str, str]]:
    """Which sub-tasks of a multi-task ``task`` keep the default forward and whose head runs on the
    photo's feature map (→ outputs of model.onnx), and why each other one does not."""
    import torch

    ok, why = [], {}
    for n, sub in task.subtasks.items():
        if type(sub).forward is not _base_forward():
            why[n] = f"task {n!r} overrides forward (its head takes tiles, pairs or other inputs)"
            continue
        try:
            with torch.no_grad():
                if _flatten_out(head[n](encoder(x2)), sub.kind) is None:
                    raise ValueError("its head returns something other than tensors")
            ok.append(n)
        except Exception as e:  # noqa: BLE001
            why[n] = f"its head does not run on one photo's feature map ({type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''})"
    return ok, why


def _dynamic_axes(name: str, a, b) -> dict[int, str]:
    """Axes whose size differs between the two probes (2 and 3 photos) are dynamic. Axis 0 is
    called "batch" when it is the number of photos, else ``<name>_dim0`` (e.g. 9 tiles per photo)."""
    if a.dim() != b.dim():
        raise ValueError(f"{name} changes rank with the batch size")
    return {
        d: ("batch" if d == 0 and (a.shape[0], b.shape[0]) == (2, 3) else f"{name}_dim{d}")
        for d in range(a.dim()) if a.shape[d] != b.shape[d]
    }


def _onnx_export(module, args: tuple, path: Path, input_names: list[str], output_names: list[str], dynamic_axes: dict) -> str:
    """torch.onnx.export with the TorchScript exporter (dynamo=False; robust for these convnets),
    opset 17, one self-contained file that ``_link_weights`` then rewrites. Falls back to the dynamo
    exporter if the legacy one is gone. Returns the exporter used.

    No constant folding and no BatchNorm fusion (``training=PRESERVE`` on an eval-mode module), and
    initializers kept as graph inputs (which turns off the exporter's merging of equal-valued
    initializers): every initializer is then exactly one ``state_dict`` tensor, named by its key."""
    import torch

    kw = dict(input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices
        try:
            torch.onnx.export(module, args, str(path), dynamo=False, training=torch.onnx.TrainingMode.PRESERVE,
                              keep_initializers_as_inputs=True, **kw)
            return "torchscript"
        except (TypeError, NotImplementedError, AttributeError) as first:  # legacy exporter unavailable
            try:
                torch.onnx.export(module, args, str(path), dynamo=True, external_data=False, **kw)
                return "dynamo"
            except Exception:
                raise first from None


# safetensors dtype → (ONNX TensorProto data type name, numpy dtype name), floating types only
_ST_FLOAT = {"F16": ("FLOAT16", "<f2"), "F32": ("FLOAT", "<f4"), "F64": ("DOUBLE", "<f8"), "I8": ("INT8", "<i1")}


def _safetensors_index(path: Path) -> tuple[int, dict]:
    """(absolute offset of the data block, {key: {"dtype", "shape", "data_offsets"}}) of a
    safetensors file: 8-byte little-endian header length, JSON header, raw little-endian data."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return 8 + n, header


def _link_weights(path: Path, weights: Path) -> dict:
    """Rewrite the exported graph at ``path`` so that its weights are read from ``weights`` (a
    safetensors file in the same folder) as ONNX external data instead of being stored in it.

    Each float32 initializer whose name is a key of ``weights`` and whose values equal that stored
    tensor (converted to float32) becomes an external-data initializer of the stored dtype at the
    tensor's absolute byte range in the file; a float16 one is followed by Cast(to=FLOAT) feeding the
    original consumers, so the graph still computes in float32 (onnxruntime folds the casts when the
    session is created). Anything else stays inline and is reported. Initializers listed as graph
    inputs are removed from the inputs (they are constants), unused ones are dropped, and
    ``weights_sha256`` is recorded in the graph's metadata so that model.onnx's own sha256 changes
    whenever the weights do (the app keys caches by it). Returns the card's "external_data" entry."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    start, index = _safetensors_index(weights)
    blob = weights.read_bytes()
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    init_names = {t.name for t in g.initializer}
    taken = init_names | {v for n in g.node for v in [*n.input, *n.output]} | {v.name for v in g.input}
    graph_outputs = {o.name for o in g.output}
    inputs = [v for v in g.input if v.name not in init_names]
    del g.input[:]
    g.input.extend(inputs)

    def read(entry: dict, st: tuple[str, str]):
        b, e = (int(v) for v in entry["data_offsets"])
        return np.frombuffer(blob, dtype=np.dtype(st[1]), count=(e - b) // np.dtype(st[1]).itemsize, offset=start + b)

    def external(name: str, entry: dict, st: tuple[str, str]):
        b, e = (int(v) for v in entry["data_offsets"])
        ext = TensorProto(name=name, data_type=getattr(TensorProto, st[0]), dims=list(entry["shape"]), data_location=TensorProto.EXTERNAL)
        for k, v in (("location", weights.name), ("offset", str(start + b)), ("length", str(e - b))):
            ext.external_data.add(key=k, value=v)
        return ext

    linked, casts, inits, rename, inline = 0, [], [], {}, []
    for t in g.initializer:
        if t.name not in used:
            continue
        entry = index.get(t.name)
        st = _ST_FLOAT.get(entry.get("dtype")) if isinstance(entry, dict) else None
        scale_entry = index.get(t.name + QSCALE) if st is not None and st[0] == "INT8" else None
        if st is None or t.data_type != TensorProto.FLOAT or list(t.dims) != list(entry.get("shape", [])) or \
                (st[0] != "FLOAT" and t.name in graph_outputs) or \
                (st[0] == "INT8" and not (isinstance(scale_entry, dict) and scale_entry.get("dtype") == "F32" and scale_entry.get("shape") == [t.dims[0]])):
            inline.append(t)
            continue
        stored = read(entry, st).astype(np.float32).reshape(tuple(t.dims))
        if st[0] == "INT8":  # the float32 product DequantizeLinear computes
            stored = stored * read(scale_entry, _ST_FLOAT["F32"]).reshape(-1, *[1] * (len(t.dims) - 1))
        if not np.array_equal(stored, numpy_helper.to_array(t), equal_nan=True):
            inline.append(t)
            continue
        inits.append(external(t.name, entry, st))
        linked += 1
        if st[0] != "FLOAT":
            out, i = f"{t.name}.float32", 0
            while out in taken:
                i += 1
                out = f"{t.name}.float32_{i}"
            taken.add(out)
            rename[t.name] = out
            if st[0] == "INT8":
                inits.append(external(t.name + QSCALE, scale_entry, _ST_FLOAT["F32"]))
                casts.append(helper.make_node("DequantizeLinear", [t.name, t.name + QSCALE], [out], name=f"dequantize_{t.name}", axis=0))
            else:
                casts.append(helper.make_node("Cast", [t.name], [out], name=f"cast_{t.name}", to=TensorProto.FLOAT))
    for n in g.node:
        for j, name in enumerate(n.input):
            if name in rename:
                n.input[j] = rename[name]
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(inits + inline)
    digest = sha256_file(weights)
    del model.metadata_props[:]
    for k, v in (("weights_file", weights.name), ("weights_sha256", digest)):
        model.metadata_props.add(key=k, value=v)
    path.write_bytes(model.SerializeToString())
    return {
        "file": weights.name, "sha256": digest, "tensors": linked,
        "cast_to_float32": sum(n.op_type == "Cast" for n in casts), "dequantized_int8": sum(n.op_type == "DequantizeLinear" for n in casts),
        "inline_initializers": [t.name for t in inline],
        "inline_bytes": int(sum(numpy_helper.to_array(t).nbytes for t in inline)),
    }


def _check_onnx(path: Path) -> int:
    """onnx.checker on the file; returns its default-domain opset. External data is accepted only
    as exact byte ranges of tensors of weights.safetensors (same name, dtype, shape) in the folder."""
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(str(path))
    index = None
    for t in model.graph.initializer:
        if t.data_location != TensorProto.EXTERNAL:
            continue
        ext = {e.key: e.value for e in t.external_data}
        if ext.get("location") != WEIGHTS_NAME:
            raise ExportError(f"{path.name} stores weights in {ext.get('location')!r}; only {WEIGHTS_NAME} of the same folder is allowed")
        if index is None:
            start, index = _safetensors_index(path.parent / WEIGHTS_NAME)
        entry = index.get(t.name) or {}
        st = _ST_FLOAT.get(entry.get("dtype"))
        b, e = entry.get("data_offsets", (-1, -1))
        if st is None or getattr(TensorProto, st[0]) != t.data_type or list(entry.get("shape", [])) != list(t.dims) or \
                ext.get("offset") != str(start + b) or ext.get("length") != str(e - b):
            raise ExportError(f"{path.name}: initializer {t.name!r} does not point at tensor {t.name!r} of {WEIGHTS_NAME}")
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)


def _session(path: Path):
    import onnxruntime as ort
    import torch

    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, torch.get_num_threads())
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _io_spec(nodes) -> list[dict]:
    return [{"name": n.name, "dtype": "float32" if n.type == "tensor(float)" else n.type, "shape": list(n.shape)} for n in nodes]


# --------------------------------------------------------------------------------------------
# head capture (tasks with a custom forward)
# --------------------------------------------------------------------------------------------
def _capture_head_call(task, encoder, head, images_u8) -> tuple[tuple, Any]:
    """Run the task's own forward on ``images_u8`` (eval_batch, fixed seed) and return the
    positional tensors passed to ``head`` and what it returned. ValueError if the head is not
    called exactly once with tensors only."""
    import torch

    calls: list = []

    def hook(mod, args, kwargs, out):
        calls.append((args, kwargs, out))

    x = torch.as_tensor(images_u8).float().div(255.0)
    handle = head.register_forward_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            gen = torch.Generator().manual_seed(PARITY_SEED)
            inputs, _ = task.eval_batch(x, gen, torch.arange(len(x)))
            task.forward(encoder, head, inputs)
    finally:
        handle.remove()
    if len(calls) != 1:
        raise ValueError(f"the task's forward calls its head {len(calls)} times (need exactly once)")
    args, kwargs, out = calls[0]
    if kwargs or not args or not all(torch.is_tensor(a) for a in args):
        raise ValueError("the task's forward passes its head something other than positional tensors")
    return tuple(a.detach() for a in args), out


# --------------------------------------------------------------------------------------------
# writing a model folder
# --------------------------------------------------------------------------------------------
def _probes(image_size: int):
    """The two random inputs (2 and 3 photos) that graphs are traced with and dynamic axes found from."""
    import torch

    x2 = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    x3 = torch.randn(3, 3, image_size, image_size, generator=torch.Generator().manual_seed(1))
    return x2, x3


def _export_head_graph(tmp: Path, file_name: str, task, encoder, head, module, probe_u8, kind: str) -> dict:
    """Export the head ``head`` of ``task`` alone as ``tmp/file_name`` and return its card entry.

    The tensors ``task``'s own forward hands to ``head`` are captured on the first 2 and the first
    3 of ``probe_u8`` (real photos; ``_capture_head_call``), ``module`` (which runs ``head`` on them,
    its parameters named as in weights.safetensors) is traced on the first set, axes that change
    between the two are dynamic, and the graph is linked to ``tmp``'s weights.safetensors and
    checked. Raises (and leaves no file) if the head cannot be captured or exported."""
    path = tmp / file_name
    try:
        a2, out2 = _capture_head_call(task, encoder, head, probe_u8[:2])
        a3, out3 = _capture_head_call(task, encoder, head, probe_u8[:3])
        o2, o3 = _flatten_out(out2, kind), _flatten_out(out3, kind)
        if o2 is None or o3 is None:
            raise ValueError("the head returns something other than a tensor, tuple or dict of tensors")
        in_names = ["head_input"] if len(a2) == 1 else [f"head_input_{i}" for i in range(len(a2))]
        names = [n for n, _ in o2]
        axes = {n: _dynamic_axes(n, a, b) for n, a, b in zip(in_names, a2, a3)}
        axes.update({n: _dynamic_axes(n, a, b) for (n, a), (_, b) in zip(o2, o3)})
        _onnx_export(module, a2, path, in_names, names, axes)
        head_ext = _link_weights(path, tmp / WEIGHTS_NAME)
        _check_onnx(path)
        sess = _session(path)
        return {
            "file": file_name,
            "inputs": _io_spec(sess.get_inputs()),
            "outputs": _io_spec(sess.get_outputs()),
            "external_data": head_ext,
            "input_from": f"the tensor(s) task {task.name!r} passes to its head in its forward; build them with the task's Python code (eval_batch, forward)",
        }
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _export_sub_head_graphs(tmp: Path, task, encoder, head, probe_u8, reasons: dict[str, str]) -> tuple[dict[str, dict], dict[str, str]]:
    """For each sub-task of the multi-task ``task`` named in ``reasons`` (sub-task → why its head is
    not an output of model.onnx): export its sub-head alone as ``head-<sub>.onnx`` in ``tmp``, its
    inputs captured from the sub-task's own eval_batch and forward with its sub-head.
    → ({sub: card entry}, {sub: why it has no graph at all})."""
    graphs: dict[str, dict] = {}
    without: dict[str, str] = {}
    for n, why in reasons.items():
        sub = task.subtasks[n]
        try:
            entry = _export_head_graph(tmp, sub_head_onnx_name(n), sub, encoder, head[n], _sub_head_only(head, n), probe_u8, sub.kind)
        except Exception as e:  # noqa: BLE001 (a head that cannot be captured or traced gets no graph, and the card says why)
            without[n] = f"{why}; no head graph: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            continue
        entry["input_from"] = (f"the tensor(s) sub-task {n!r} passes to its head (head.{n}) in its own forward; build them with "
                               f"that sub-task's Python code (task.subtasks[{n!r}].eval_batch, forward)")
        entry["not_in_model_onnx"] = why
        graphs[n] = entry
    return graphs, without


def _multitask_head_note(graphs: dict[str, dict], without: dict[str, str]) -> str | None:
    """The card's "head_note" of a multi-task model: which sub-heads have their own graph (and
    why they are not in model.onnx), which have none (and why); None when every sub-head is in
    model.onnx."""
    parts = []
    if graphs:
        parts.append("sub-task heads in their own graph (\"sub_head_graphs\"): " + "; ".join(
            f"{n} in {g['file']} ({g.get('not_in_model_onnx', 'not in ' + ONNX_NAME)})" for n, g in graphs.items()))
    if without:
        parts.append("sub-task heads without a graph: " + "; ".join(f"{n}: {w}" for n, w in without.items()))
    return "; ".join(parts) or None


def _export_graphs(tmp: Path, task, encoder, head, image_size: int, probe_u8) -> dict:
    """Write model.onnx (and head.onnx, or a multi-task model's head-<sub>.onnx, when needed) into
    ``tmp``; return card fields."""
    import torch

    FeaturesAndHead, HeadOnly = _graph_modules()
    kind = getattr(task, "kind", "classification") if task is not None else "classification"
    x2, x3 = _probes(image_size)
    fields: dict[str, Any] = {"head_graph": None, "head_in_model_onnx": False}
    exporter = None

    def features_and_head(h) -> str:
        """model.onnx = x → (features, outputs of ``h`` on the feature map); returns the exporter."""
        with torch.no_grad():
            o2, o3 = _flatten_out(h(encoder(x2)), kind), _flatten_out(h(encoder(x3)), kind)
        if o2 is None or o3 is None:
            raise ValueError("the head returns something other than a tensor, tuple or dict of tensors")
        axes = {INPUT_NAME: {0: "batch"}, FEATURE_OUTPUT: {0: "batch"}}
        axes.update({n: _dynamic_axes(n, a, b) for (n, a), (_, b) in zip(o2, o3)})
        return _onnx_export(FeaturesAndHead(encoder, h).eval(), (x2,), tmp / ONNX_NAME, [INPUT_NAME], [FEATURE_OUTPUT, *(n for n, _ in o2)], axes)

    if head is not None and type(task).forward is _base_forward():
        try:
            exporter = features_and_head(head)
            fields["head_in_model_onnx"] = True
        except Exception as e:  # noqa: BLE001 (any head that cannot be traced falls back to rule 2)
            fields["head_note"] = f"head not in {ONNX_NAME}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            (tmp / ONNX_NAME).unlink(missing_ok=True)
    multi_task = head is not None and type(task).forward is not _base_forward() and isinstance(getattr(task, "subtasks", None), dict)
    if multi_task:
        # rule 3: the sub-heads that run on the photo's feature map become outputs of model.onnx
        names, why = _sub_heads_on_features(task, head, encoder, x2)
        if names:
            exporter = features_and_head(_sub_heads_module(task, head, names))
            fields["head_in_model_onnx"] = True
            fields["sub_heads_in_model_onnx"] = names
        graphs, without = _export_sub_head_graphs(tmp, task, encoder, head, probe_u8, why)
        if graphs:
            fields["sub_head_graphs"] = graphs
        note = _multitask_head_note(graphs, without)
        if note:
            fields["head_note"] = note
    elif head is not None and type(task).forward is not _base_forward():
        fields["head_note"] = f"task {task.name!r} overrides forward: {ONNX_NAME} has features only"
    if not fields["head_in_model_onnx"]:
        exporter = _onnx_export(FeaturesAndHead(encoder, None).eval(), (x2,), tmp / ONNX_NAME, [INPUT_NAME], [FEATURE_OUTPUT],
                                {INPUT_NAME: {0: "batch"}, FEATURE_OUTPUT: {0: "batch"}})
        if head is not None and not multi_task:
            try:
                fields["head_graph"] = _export_head_graph(tmp, HEAD_ONNX_NAME, task, encoder, head, HeadOnly(head).eval(), probe_u8, kind)
            except Exception as e:  # noqa: BLE001
                note = f"no head graph: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                fields["head_note"] = f"{fields['head_note']}; {note}" if "head_note" in fields else note
    ext = _link_weights(tmp / ONNX_NAME, tmp / WEIGHTS_NAME)
    opset = _check_onnx(tmp / ONNX_NAME)
    sess = _session(tmp / ONNX_NAME)
    fields["onnx"] = {
        "file": ONNX_NAME, "opset": opset, "exporter": exporter,
        "inputs": _io_spec(sess.get_inputs()), "outputs": _io_spec(sess.get_outputs()),
        "external_data": ext,
    }
    fields["output_names"] = [o.name for o in sess.get_outputs()]
    return fields


def _base_forward():
    from .tasks.base import PretextTask

    return PretextTask.forward


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UserError(f"--name {name!r} is not a valid model folder name; use letters, digits, '_', '-', '.' (e.g. rotation)")


def _photo_files(root: Path, n: int) -> list[Path]:
    """Up to ``n`` photos under ``root``, one per sub-folder in turn (sorted, deterministic)."""
    from .images import IMAGE_SUFFIXES

    groups: dict[Path, list[Path]] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."):
            groups.setdefault(p.parent, []).append(p)
    out: list[Path] = []
    lists = list(groups.values())
    i = 0
    while len(out) < n and any(i < len(g) for g in lists):
        out += [g[i] for g in lists if i < len(g)][: n - len(out)]
        i += 1
    return out


def load_photos(files: list[Path], image_size: int):
    """Decode photos like training does → uint8 numpy (N, 3, S, S)."""
    import numpy as np

    from .images import BadImage, open_rgb, square_resize, to_uint8_chw

    out = []
    for f in files:
        try:
            out.append(to_uint8_chw(square_resize(open_rgb(f), image_size)))
        except BadImage:
            continue
    return np.stack(out) if out else np.zeros((0, 3, image_size, image_size), np.uint8)


def _parity_images(data_root: str | Path | None, parity_data: str | Path | None, image_size: int):
    from .data import DEFAULT_DATA

    candidates = [Path(parity_data)] if parity_data else [Path(p) for p in (data_root, DEFAULT_DATA) if p]
    for root in candidates:
        if root.is_dir():
            imgs = load_photos(_photo_files(root, PARITY_PHOTOS), image_size)
            if len(imgs) >= 3:
                return imgs, root
    where = ", ".join(str(c) for c in candidates)
    raise UserError(f"no readable photos for the ONNX parity check in {where}; pass --parity-data DIR with at least 3 photos")


def _install(tmp: Path, final: Path) -> None:
    """Move the finished ``tmp`` folder to ``final``, replacing an existing model only now."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except OSError:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _versions() -> dict[str, str]:
    from .train import library_versions

    return library_versions()


def _write_model_dir(
    out_dir: str | Path, name: str, *, task, encoder, head, image_size: int, card: dict, fp16_storage: bool,
    data_root: str | None, parity_data: str | Path | None, int8: bool = False,
) -> Path:
    """Shared body of both exports: weights, graphs, parity, card, verify, rename into place."""
    import torch

    _check_name(name)
    out_dir = Path(out_dir)
    final = out_dir / name
    if final.exists() and not final.is_dir():
        raise UserError(f"{final} exists and is not a folder; remove it or choose another --name")
    photos, photo_root = _parity_images(data_root, parity_data, image_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        with torch.no_grad():
            _fill_model_dir(tmp, task, encoder, head, image_size, card, fp16_storage, photos, photo_root, final, name, int8)
        _install(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _checked_parity(tmp: Path, card: dict, photos, photo_root, kept: str) -> dict:
    """Write ``card`` provisionally into ``tmp`` (parity_check reads it), compare every ONNX graph
    with PyTorch on ``photos`` → the card with the parity figures; ExportError (saying ``kept``,
    what happened to the destination) when they differ beyond PARITY_TOL."""
    (tmp / CARD_NAME).write_text(json.dumps(portable(card), indent=2) + "\n")
    diff = parity_check(tmp, photos)
    if not diff <= PARITY_TOL:
        raise ExportError(f"ONNX outputs differ from PyTorch by {diff:.3g} > {PARITY_TOL:g} on {len(photos)} photos; {kept}")
    return {**card, "onnx_parity_max_abs_diff": diff, "onnx_parity_photos": {"count": int(len(photos)), "from": str(photo_root)}}


def _fill_model_dir(tmp: Path, task, encoder, head, image_size: int, card: dict, fp16_storage: bool, photos, photo_root: Path, final: Path, name: str,
                    int8: bool = False) -> None:
    """Write every file of a model folder into ``tmp`` and check it (parity, verify)."""
    encoder.eval()
    if head is not None:
        head.eval()
    # weights: store, then load the stored values back so the ONNX graph holds exactly them
    stored = _storage_tensors(encoder, head, fp16_storage, int8)
    tensorfile.save(stored, tmp / WEIGHTS_NAME, metadata={"format": FORMAT, "task": card["task"]})
    state = _as_float32(stored)
    encoder.load_state_dict(_split(state, "encoder."))
    if head is not None:
        head.load_state_dict(_split(state, "head."))
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for k, v in stored.items() if (v.is_floating_point() or k + QSCALE in stored) and not k.endswith(QSCALE)})
    fields = _export_graphs(tmp, task, encoder, head, image_size, photos)
    card = {
        "format": FORMAT,
        "name": name,
        **card,
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", 3, image_size, image_size], "layout": "NCHW", "image_size": image_size},
        "input_name": INPUT_NAME,
        "output_names": fields["output_names"],
        "feature_output": FEATURE_OUTPUT,
        "feature_dim": int(encoder.feature_dim),
        "normalization": {"mean": list(_mean_std()[0]), "std": list(_mean_std()[1]), "colour_space": "RGB", "scale": 255.0},
        "preprocessing": (
            f"open_rgb (EXIF orientation, any mode → 8-bit RGB), square_resize({image_size}): shorter side to "
            f"{image_size} px bicubic then centre crop; float32 = uint8 / scale; (x - mean) / std per channel; NCHW"
        ),
        "onnx": fields["onnx"],
        "head_in_model_onnx": fields["head_in_model_onnx"],
        "head_graph": fields["head_graph"],
        **({"head_note": fields["head_note"]} if "head_note" in fields else {}),
        **({"sub_heads_in_model_onnx": fields["sub_heads_in_model_onnx"]} if "sub_heads_in_model_onnx" in fields else {}),
        **({"sub_head_graphs": fields["sub_head_graphs"]} if "sub_head_graphs" in fields else {}),
        "weights": {
            "file": WEIGHTS_NAME, "prefixes": ["encoder."] + (["head."] if head is not None else []),
            "storage_dtype": dtypes[0] if len(dtypes) == 1 else dtypes, "load_dtype": "float32",
            "note": ("convolution and linear weights int8 on disk (symmetric, per output channel; <key>.qscale holds the "
                     "float32 scales), the rest float16; load_model_weights multiplies them back to float32. The single copy of "
                     "the weights: model.onnx (and head.onnx) read these bytes as ONNX external data through DequantizeLinear / Cast")
            if int8 else ("float16 on disk; convert to float32 on load (ssl_train.export.load_model_weights). "
                     "The single copy of the weights: model.onnx (and head.onnx) read these bytes as ONNX external data, cast to float32")
            if fp16_storage else "float32 on disk; the single copy of the weights, read by model.onnx (and head.onnx) as ONNX external data",
        },
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "export_versions": _versions(),
    }
    card["files"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file() and p.name != CARD_NAME}
    card = _checked_parity(tmp, card, photos, photo_root, f"nothing was written to {final}")
    (tmp / CARD_NAME).write_text(json.dumps(portable(card), indent=2) + "\n")  # repository paths relative: cards travel
    verify_model_dir(tmp)


def _mean_std():
    from .tasks.base import MEAN, STD

    return MEAN, STD


def _summary_beside(ckpt_path: Path, meta: dict) -> dict:
    """summary.json of the same run (pretrain writes it when the run finishes), if it matches."""
    p = ckpt_path.parent / "summary.json"
    try:
        s = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(s, dict) or s.get("task") != meta.get("task") or s.get("completed_epochs") != int(meta.get("epoch", -1)) + 1:
        return {}
    return s


def _trained_on(data_root: str | None) -> str:
    from .data import DEFAULT_DATA

    if data_root and Path(data_root).resolve() == DEFAULT_DATA.resolve():
        return "train split of data/flowers only"
    return f"train split of {data_root} only" if data_root else "unknown"


def _load_metrics(metrics: dict | None) -> dict | None:
    if metrics is None:
        return None
    if not isinstance(metrics, dict):
        raise UserError("metrics must be a JSON object, e.g. {\"knn_acc_10pct\": 0.61}")
    try:
        return json.loads(json.dumps(metrics))
    except (TypeError, ValueError):
        raise UserError("metrics must be JSON-serialisable numbers/strings") from None


def load_checkpoint_model(checkpoint_path: str | Path):
    """Rebuild a pretraining checkpoint's model → (checkpoint, task, encoder, head, image size in px),
    encoder and head in float32 train mode as saved. One-line ``UserError`` for a missing or foreign
    checkpoint, an unregistered task, or weights that do not fit the recorded task and encoder."""
    import torch

    from .checkpoint import load_checkpoint
    from .encoders import EncoderConfig, build_encoder
    from .tasks import load_all, task_names
    from .tasks.base import TASKS
    from .train import encoder_info

    ckpt_path = Path(checkpoint_path)
    ck = load_checkpoint(ckpt_path)
    meta = ck.meta
    for key in ("task", "encoder", "config"):
        if key not in meta:
            raise UserError(f"checkpoint {ckpt_path} has no {key!r} in its metadata; export a checkpoint written by `python -m ssl_train pretrain`")
    task_name = meta["task"]
    load_all()
    if task_name not in TASKS:
        raise UserError(
            f"checkpoint {ckpt_path} is for task {task_name!r}, which is not a registered pretext task "
            f"({', '.join(task_names())}); export a pretraining checkpoint (runs/<task>/checkpoint.safetensors)"
        )
    cfg = meta["config"]
    task = _task_of(task_name, cfg.get("task") or {})
    data_cfg = cfg.get("data") or {}
    if "image_size" not in data_cfg:
        raise UserError(f"checkpoint {ckpt_path} does not record its image size (config.data.image_size); re-create it with pretrain")
    image_size = int(data_cfg["image_size"])
    try:
        enc_cfg = EncoderConfig.from_dict(meta["encoder"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"checkpoint {ckpt_path} has an unusable encoder config ({e}); re-create it") from None
    with torch.random.fork_rng(devices=[]):
        encoder = build_encoder(enc_cfg)
        head = task.build_head(encoder_info(encoder, image_size))
    try:
        encoder.load_state_dict(ck.encoder_state)
        head.load_state_dict(ck.head_state)
    except RuntimeError as e:
        raise UserError(f"checkpoint {ckpt_path} does not fit task {task_name!r} with encoder {meta['encoder']} ({str(e).splitlines()[0][:120]}); re-create it") from None
    return ck, task, encoder, head, image_size


def export_model(
    checkpoint_path: str | Path,
    out_dir: str | Path,
    name: str,
    metrics: dict | None = None,
    fp16_storage: bool = True,
    *,
    parity_data: str | Path | None = None,
    int8: bool = False,
) -> Path:
    """Export a pretraining checkpoint to ``<out_dir>/<name>/`` (model.onnx, weights.safetensors,
    model.json, maybe head.onnx) and return that folder.

    The ONNX graph is checked against PyTorch on a few real photos (from ``parity_data``, else the
    checkpoint's data folder, else data/flowers); the folder is replaced only if every step passed.
    One-line ``UserError`` for anything a user can fix (missing checkpoint, unknown task, bad name).
    """
    from .encoders import EncoderConfig

    ckpt_path = Path(checkpoint_path)
    _check_name(name)
    metrics = _load_metrics(metrics)
    ck, task, encoder, head, image_size = load_checkpoint_model(ckpt_path)
    meta = ck.meta
    task_name = task.name
    cfg = meta["config"]
    data_cfg = cfg.get("data") or {}
    enc_cfg = EncoderConfig.from_dict(meta["encoder"])

    summary = _summary_beside(ckpt_path, meta)
    history = meta.get("history") or []
    train_cfg = cfg.get("train") or {}
    completed = int(meta.get("epoch", -1)) + 1
    out_dir = Path(out_dir)
    card = {
        "task": task_name,
        "task_kind": task.kind,
        "task_config": task.config_dict(),
        "encoder": enc_cfg.to_dict(),
        "config": cfg,
        "split_sha256": meta.get("split_sha256"),
        "dataset_classes": meta.get("classes"),
        "trained_on": _trained_on(data_cfg.get("root")),
        "epochs": completed,
        "epochs_planned": train_cfg.get("epochs"),
        "finished": completed == train_cfg.get("epochs"),
        # wall-clock seconds of all training epochs (summed over resumes)
        "wall_seconds": summary.get("train_seconds_total", float(sum(h.get("seconds", 0.0) for h in history))),
        "device": summary.get("device", f"unknown (config device {train_cfg.get('device', '?')!r})"),
        "peak_rss_mb": summary.get("peak_rss_mb"),
        "versions": summary.get("versions"),
        "pretext_test": summary.get("pretext_test"),
        "history": history,
        "metrics": metrics,
        "source_checkpoint": {"path": str(ckpt_path), "sha256": sha256_file(ckpt_path)},
        "regenerate": f"python -m ssl_train export --checkpoint {ckpt_path} --name {name} --out {out_dir}",
    }
    return _write_model_dir(out_dir, name, task=task, encoder=encoder, head=head, image_size=image_size, card=card,
                            fp16_storage=fp16_storage, data_root=data_cfg.get("root"), parity_data=parity_data, int8=int8)


def export_random_reference(
    out_dir: str | Path,
    enc_cfg=None,
    image_size: int = 96,
    seed: int = 0,
    *,
    name: str = RANDOM_TASK,
    metrics: dict | None = None,
    fp16_storage: bool = True,
    parity_data: str | Path | None = None,
    int8: bool = False,
) -> Path:
    """Export a randomly initialised encoder (``torch.manual_seed(seed)``, then ``build_encoder``)
    to ``<out_dir>/<name>/`` with task "random_init" and only the "features" output: the
    no-pretraining reference every pretext task is compared with."""
    import torch

    from .encoders import EncoderConfig, build_encoder

    enc_cfg = enc_cfg or EncoderConfig()
    if not 16 <= int(image_size) <= 512:
        raise UserError(f"--image-size {image_size} is out of range; use 16..512 (default 96)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = build_encoder(enc_cfg)
    out_dir = Path(out_dir)
    widths, blocks = ",".join(map(str, enc_cfg.widths)), ",".join(map(str, enc_cfg.blocks))
    card = {
        "task": RANDOM_TASK,
        "task_kind": None,
        "task_config": {},
        "encoder": enc_cfg.to_dict(),
        "config": None,
        "seed": seed,
        "split_sha256": None,
        "trained_on": f"nothing: random initialisation (torch.manual_seed({seed}))",
        "epochs": 0,
        "wall_seconds": 0.0,
        "device": None,
        "versions": None,
        "metrics": _load_metrics(metrics),
        "regenerate": f"python -m ssl_train export --random-init --name {name} --out {out_dir} --image-size {image_size} "
                      f"--encoder {enc_cfg.name} --widths {widths} --blocks {blocks} --seed {seed}",
    }
    return _write_model_dir(out_dir, name, task=None, encoder=encoder, head=None, image_size=int(image_size), card=card,
                            fp16_storage=fp16_storage, data_root=None, parity_data=parity_data, int8=int8)


# --------------------------------------------------------------------------------------------
# adding the missing sub-head graphs to an existing multi-task folder
# --------------------------------------------------------------------------------------------
def _check_multitask_dir(model_dir: str | Path) -> tuple[Path, dict]:
    """(folder, card) of an intact multi-task model folder; one-line ``UserError`` /
    ``ModelFileError`` otherwise (nothing loaded, nothing written)."""
    d = Path(model_dir)
    if not d.is_dir():
        raise UserError(f"model folder {d} does not exist; pass an exported multi-task model folder, e.g. models/multitask")
    card = verify_model_dir(d)  # ModelFileError (one line) for a missing, invalid or altered file
    if card.get("task") != MULTI_TASK:
        raise UserError(f"{d} holds a {card.get('task')!r} model, not a {MULTI_TASK!r} one; --add-head-graphs adds the sub-task head "
                        f"graphs of a multi-task model (a single task's head.onnx comes from `export --checkpoint`)")
    return d, card


def add_sub_head_graphs(model_dir: str | Path, parity_data: str | Path | None = None) -> tuple[Path, list[str]]:
    """Give every sub-task of the multi-task model in ``model_dir`` whose head is neither an output
    of its model.onnx nor already in "sub_head_graphs" its own ``head-<sub>.onnx``, rebuilt from the
    folder's own weights.safetensors (``load_model_weights``): no checkpoint needed, no weight changed.

    The folder is copied to a temporary folder beside it, the graphs are exported there exactly as
    ``export_model`` does (``_export_sub_head_graphs``), linked to the same weights.safetensors, the
    card gains "sub_head_graphs", an updated "head_note", the new files' sha256 and the parity of
    every graph on real photos (from ``parity_data``, else the card's data folder, else
    data/flowers); every file that was there stays byte-identical (checked). Only then is the
    folder replaced: on any failure it is left as it was.

    Returns (the folder, the sub-tasks that got a graph: empty when there was nothing to add, in
    which case nothing is written). ``UserError`` / ``ModelFileError`` (one line) for a folder that
    does not exist, is not intact, or is not a multi-task model; ``ExportError`` when a graph does
    not match PyTorch."""
    import torch

    d, card = _check_multitask_dir(model_dir)
    encoder, head, card = load_model_weights(d, card)
    task = _task_of(card["task"], card.get("task_config") or {})
    image_size = int(card["input"]["image_size"])
    in_model = list(card.get("sub_heads_in_model_onnx") or [])
    have = dict(sub_head_graphs(card))
    missing = [n for n in task.subtasks if n not in in_model and n not in have]
    if not missing:
        return d, []
    x2, _ = _probes(image_size)
    _, why = _sub_heads_on_features(task, head, encoder, x2)
    reasons = {n: why.get(n, f"not an output of {ONNX_NAME}") for n in missing}
    data_root = ((card.get("config") or {}).get("data") or {}).get("root")
    if data_root and not Path(data_root).is_absolute():
        data_root = str(REPO / data_root)
    photos, photo_root = _parity_images(data_root, parity_data, image_size)
    before = {name: sha256_file(d / name) for name in card["files"]}
    tmp = d.parent / f".{d.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        shutil.copytree(d, tmp, symlinks=True)
        with torch.no_grad():
            graphs, without = _export_sub_head_graphs(tmp, task, encoder, head, photos, reasons)
        added = list(graphs)
        if not added:
            raise ExportError(f"no sub-task head of {d} could be exported: " + "; ".join(f"{n}: {w}" for n, w in without.items()))
        card = _with_key_after(card, "sub_heads_in_model_onnx", "sub_head_graphs", {**have, **graphs})
        note = _multitask_head_note(card["sub_head_graphs"], without)  # every sub-task not in model.onnx is in one of the two
        if note:
            card["head_note"] = note
        else:
            card.pop("head_note", None)
        card["files"] = {**card["files"], **{g["file"]: sha256_file(tmp / g["file"]) for g in graphs.values()}}
        card = _checked_parity(tmp, card, photos, photo_root, f"{d} was left as it was")
        card = _with_key_after(card, "sub_head_graphs", "sub_head_graphs_added", {
            "sub_tasks": added,
            "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "by": f"python -m ssl_train export --add-head-graphs {d}",
            "from": f"{WEIGHTS_NAME} of this folder (sha256 {card['files'][WEIGHTS_NAME]}), unchanged; every other file unchanged too",
            "versions": _versions(),
        })
        (tmp / CARD_NAME).write_text(json.dumps(portable(card), indent=2) + "\n")
        verify_model_dir(tmp)
        changed = [name for name, digest in before.items() if sha256_file(tmp / name) != digest or card["files"][name] != digest]
        if changed:
            raise ExportError(f"adding head graphs would change {', '.join(changed)}; {d} was left as it was")
        _install(tmp, d)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return d, added


def _with_key_after(card: dict, after: str, key: str, value: Any) -> dict:
    """``card`` with ``key`` set to ``value``: in place if present, else right after ``after`` (at
    the end when ``after`` is absent), so a rewritten card reads in the order an export writes."""
    if key in card or after not in card:
        return {**card, key: value}
    out: dict = {}
    for k, v in card.items():
        out[k] = v
        if k == after:
            out[key] = value
    return out


# --------------------------------------------------------------------------------------------
# parity
# --------------------------------------------------------------------------------------------
def parity_check(model_dir: str | Path, images_u8) -> float:
    """Max |ONNX − PyTorch| over every output of model.onnx, head.onnx and a multi-task model's
    head-<sub>.onnx graphs on ``images_u8`` (uint8 (N, 3, S, S), numpy or torch, real photos).
    PyTorch is rebuilt from weights.safetensors; a head graph's inputs are captured from the
    (sub-)task's own eval_batch and forward on the photos, as at export."""
    import numpy as np
    import torch

    model_dir = Path(model_dir)
    encoder, head, card = load_model_weights(model_dir)
    s = int(card["input"]["image_size"])
    imgs = torch.as_tensor(np.asarray(images_u8))
    if imgs.dtype != torch.uint8 or imgs.dim() != 4 or tuple(imgs.shape[1:]) != (3, s, s) or len(imgs) == 0:
        raise ValueError(f"parity_check wants uint8 photos (N, 3, {s}, {s}), got {imgs.dtype} {tuple(imgs.shape)}")
    FeaturesAndHead, _ = _graph_modules()
    from .tasks.base import normalize

    x = normalize(imgs.float().div(255.0))
    diff = 0.0
    with torch.no_grad():
        in_graph = head if card.get("head_in_model_onnx") else None
        if in_graph is not None and card.get("sub_heads_in_model_onnx"):
            in_graph = _sub_heads_module(_task_of(card["task"], card.get("task_config") or {}), head, list(card["sub_heads_in_model_onnx"]))
        ref = FeaturesAndHead(encoder, in_graph).eval()(x)
        ref = ref if isinstance(ref, tuple) else (ref,)
        got = _session(model_dir / card["onnx"]["file"]).run(None, {card["input_name"]: x.numpy()})
        if len(got) != len(ref):
            raise ExportError(f"{card['onnx']['file']} has {len(got)} outputs, PyTorch {len(ref)}")
        for r, g in zip(ref, got):
            diff = max(diff, _max_abs_diff(r.numpy(), g))
        hg = card.get("head_graph")
        if hg:
            task = _task_of(card["task"], card.get("task_config") or {})
            args, out = _capture_head_call(task, encoder, head, imgs)
            sess = _session(model_dir / hg["file"])
            got = sess.run(None, {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)})
            ref = _as_tuple(out)
            for r, g in zip(ref, got):
                diff = max(diff, _max_abs_diff(r.numpy(), g))
        subs = sub_head_graphs(card)
        if subs:
            multi = _task_of(card["task"], card.get("task_config") or {})
            for n, g in subs.items():
                sub = (getattr(multi, "subtasks", None) or {}).get(n)
                if sub is None or not isinstance(head, torch.nn.ModuleDict) or n not in head:
                    raise ExportError(f"{g['file']} is listed for sub-task {n!r}, which task {card['task']!r} does not have")
                args, out = _capture_head_call(sub, encoder, head[n], imgs)
                sess = _session(model_dir / g["file"])
                got = sess.run(None, {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)})
                ref = _as_tuple(out)
                if len(got) != len(ref) or len(sess.get_inputs()) != len(args):
                    raise ExportError(f"{g['file']} has {len(sess.get_inputs())} inputs and {len(got)} outputs, "
                                      f"PyTorch's {n} head {len(args)} and {len(ref)}")
                for r, o in zip(ref, got):
                    diff = max(diff, _max_abs_diff(r.numpy(), o))
    return diff


def _max_abs_diff(a, b) -> float:
    """max |a − b|; inf for a shape mismatch or any non-finite difference (NaN never passes)."""
    import numpy as np

    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(d.max()) if np.isfinite(d).all() else float("inf")


# --------------------------------------------------------------------------------------------
# CLI (wired into ssl_train/__main__.py by its owner)
# --------------------------------------------------------------------------------------------
def _ints(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a comma-separated list of integers, e.g. 32,64,128,256") from None


def add_export_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``export`` on an argparse subparsers object (from ``add_subparsers``)."""
    D = argparse.ArgumentDefaultsHelpFormatter
    s = subparsers.add_parser(
        "export",
        help="write a model folder for the app (model.onnx, weights.safetensors, model.json) from a checkpoint",
        description=(
            "Export a pretraining checkpoint to OUT/NAME/: model.onnx (float32 graph; input 'input' = normalised RGB "
            "(batch, 3, S, S); outputs 'features' and the pretext head's), weights.safetensors (the single copy of "
            "the weights: model.onnx reads them as ONNX external data; also for fine-tuning) and model.json (configs, "
            "normalisation, provenance, sha256 of every file). The ONNX graph is checked "
            "against PyTorch on real photos; an existing model folder is replaced only when everything passed."
        ),
        formatter_class=D,
    )
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", default=None, help="pretraining checkpoint to export, e.g. runs/rotation/checkpoint.safetensors")
    src.add_argument("--random-init", action="store_true", help="export a randomly initialised encoder instead (task 'random_init', features only)")
    src.add_argument("--add-head-graphs", default=None, metavar="MODEL_DIR",
                     help="instead: add the missing sub-task head graphs (head-<sub>.onnx) to an exported multi-task model folder, "
                          "e.g. models/multitask, from its own weights.safetensors; every existing file stays byte-identical "
                          "(only --parity-data applies)")
    s.add_argument("--name", default="", help="model folder name under --out; empty: the checkpoint's task (random_init with --random-init)")
    s.add_argument("--out", default=str(REPO / "models"), help="folder holding one sub-folder per model")
    s.add_argument("--metrics", default="", help="metrics to record in model.json: a JSON file or an inline JSON object; empty: none")
    s.add_argument("--weights", choices=("int8", "float16", "float32"), default="float16",
                   help="storage of weights.safetensors: float16, float32, or int8 convolution/linear weights (per-channel scales) with the rest float16; always float32 when loaded")
    s.add_argument("--parity-data", default="", help="folder of photos for the ONNX-vs-PyTorch check; empty: the checkpoint's data folder, else data/flowers")
    g = s.add_argument_group("random reference (only with --random-init)")
    g.add_argument("--seed", type=int, default=0, help="torch seed of the random initialisation")
    g.add_argument("--image-size", type=int, default=96, help="side of the square input, pixels")
    g.add_argument("--encoder", default="resnet_compact", help="encoder name from the registry")
    g.add_argument("--widths", type=_ints, default=(32, 64, 128, 256), help="channels of the four stages")
    g.add_argument("--blocks", type=_ints, default=(1, 1, 2, 1), help="residual blocks per stage")
    s.set_defaults(fn=cmd_export)
    return s


def _metrics_arg(value: str) -> dict | None:
    if not value:
        return None
    text = value
    if not value.lstrip().startswith("{"):
        p = Path(value)
        if not p.is_file():
            raise UserError(f"--metrics {value} is neither a JSON file nor an inline JSON object; pass e.g. --metrics '{{\"knn\": 0.6}}'")
        text = p.read_text()
    try:
        m = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"--metrics is not valid JSON ({e.msg} at line {e.lineno}); fix it or omit --metrics") from None
    if not isinstance(m, dict):
        raise UserError("--metrics must hold a JSON object, e.g. {\"knn_acc\": 0.6}")
    return m


def _cmd_add_head_graphs(args, parity: str | None) -> int:
    """``export --add-head-graphs MODEL_DIR``: prints the folder, the graphs added and the sha256 of
    every file that was already there (unchanged)."""
    if args.metrics or args.name or args.weights != "float16":
        raise UserError("--add-head-graphs takes only --parity-data: it keeps the folder's name, weights and metrics")
    d, card = _check_multitask_dir(args.add_head_graphs)  # one line, exit code 2, before any work
    before = dict(card["files"])
    path, added = add_sub_head_graphs(d, parity_data=parity)
    card = verify_model_dir(path)
    print(json.dumps({
        "model_dir": str(path),
        "added": {n: card["sub_head_graphs"][n]["file"] for n in added},
        "note": None if added else "nothing to add: every sub-task head is already in model.onnx or has its own graph; nothing was written",
        "unchanged_files_sha256": {f: card["files"][f] for f in before if card["files"][f] == before[f]},
        "onnx_parity_max_abs_diff": card["onnx_parity_max_abs_diff"],
        "files_bytes": {f: (path / f).stat().st_size for f in [*card["files"], CARD_NAME]},
    }, indent=1))
    return 0


def cmd_export(args) -> int:
    """Handler of ``python -m ssl_train export``: prints the folder, its files and the parity result."""
    parity = args.parity_data or None
    if getattr(args, "add_head_graphs", None):
        return _cmd_add_head_graphs(args, parity)
    metrics = _metrics_arg(args.metrics)
    if args.random_init:
        from .encoders import ENCODERS, EncoderConfig

        if args.encoder not in ENCODERS:
            raise UserError(f"unknown encoder {args.encoder!r}; registered: {', '.join(sorted(ENCODERS))}")
        try:
            enc = EncoderConfig(name=args.encoder, widths=tuple(args.widths), blocks=tuple(args.blocks))
        except ValueError as e:
            raise UserError(f"{e}; e.g. --widths 32,64,128,256 --blocks 1,1,2,1") from None
        path = export_random_reference(args.out, enc, args.image_size, args.seed, name=args.name or RANDOM_TASK,
                                       metrics=metrics, fp16_storage=args.weights != "float32", parity_data=parity, int8=args.weights == "int8")
    else:
        name = args.name
        if not name:
            from .checkpoint import load_checkpoint

            name = str(load_checkpoint(args.checkpoint).meta.get("task", ""))
        path = export_model(args.checkpoint, args.out, name, metrics, fp16_storage=args.weights != "float32", parity_data=parity, int8=args.weights == "int8")
    card = verify_model_dir(path)
    sizes = {f: (path / f).stat().st_size for f in [*card["files"], CARD_NAME]}
    print(json.dumps({
        "model_dir": str(path),
        "task": card["task"],
        "outputs": card["output_names"],
        "head_graph": (card.get("head_graph") or {}).get("file"),
        "onnx_parity_max_abs_diff": card["onnx_parity_max_abs_diff"],
        "files_bytes": sizes,
        "total_mb": round(sum(sizes.values()) / 1e6, 2),
    }, indent=1))
    return 0

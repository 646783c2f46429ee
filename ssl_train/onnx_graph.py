"""ONNX graphs of a model folder, and their parity with PyTorch.

Which graphs and outputs exist (recorded in model.json as "output_names" and "head_graph"):

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

Every graph is float32, opset 17, graph only: its weights are read from weights.safetensors
(``onnx_link``). ``parity_check`` compares every graph with PyTorch rebuilt from that file on real
photos (``parity_photos``); an export is kept only within ``PARITY_TOL``.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from .errors import ExportError, UserError
from .model_files import (
    FEATURE_OUTPUT,
    HEAD_ONNX_NAME,
    INPUT_NAME,
    ONNX_NAME,
    WEIGHTS_NAME,
    load_model_weights,
    rebuild_task,
    sub_head_graphs,
    sub_head_onnx_name,
)
from .onnx_link import OPSET, check_onnx, link_weights

__all__ = [
    "OPSET", "PARITY_TOL", "PARITY_PHOTOS", "PARITY_SEED", "export_graphs", "probes", "sub_heads_on_features",
    "export_sub_head_graphs", "multitask_head_note", "parity_check", "parity_photos", "load_photos",
]

PARITY_TOL = 1e-4  # max |ONNX − PyTorch| accepted for a float32 graph
PARITY_PHOTOS = 4
PARITY_SEED = 1234  # generator seed of eval_batch when capturing head inputs
_RESERVED = {INPUT_NAME, FEATURE_OUTPUT}


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


def sub_heads_on_features(task, head, encoder, x2) -> tuple[list[str], dict[str, str]]:
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
    opset 17, one self-contained file that ``onnx_link.link_weights`` then rewrites. Falls back to the dynamo
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
# exporting the graphs of a model folder
# --------------------------------------------------------------------------------------------
def probes(image_size: int):
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
        head_ext = link_weights(path, tmp / WEIGHTS_NAME)
        check_onnx(path)
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


def export_sub_head_graphs(tmp: Path, task, encoder, head, probe_u8, reasons: dict[str, str]) -> tuple[dict[str, dict], dict[str, str]]:
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


def multitask_head_note(graphs: dict[str, dict], without: dict[str, str]) -> str | None:
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


def export_graphs(tmp: Path, task, encoder, head, image_size: int, probe_u8) -> dict:
    """Write model.onnx (and head.onnx, or a multi-task model's head-<sub>.onnx, when needed) into
    ``tmp``; return card fields."""
    import torch

    FeaturesAndHead, HeadOnly = _graph_modules()
    kind = getattr(task, "kind", "classification") if task is not None else "classification"
    x2, x3 = probes(image_size)
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
        names, why = sub_heads_on_features(task, head, encoder, x2)
        if names:
            exporter = features_and_head(_sub_heads_module(task, head, names))
            fields["head_in_model_onnx"] = True
            fields["sub_heads_in_model_onnx"] = names
        graphs, without = export_sub_head_graphs(tmp, task, encoder, head, probe_u8, why)
        if graphs:
            fields["sub_head_graphs"] = graphs
        note = multitask_head_note(graphs, without)
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
    ext = link_weights(tmp / ONNX_NAME, tmp / WEIGHTS_NAME)
    opset = check_onnx(tmp / ONNX_NAME)
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


# --------------------------------------------------------------------------------------------
# parity
# --------------------------------------------------------------------------------------------
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


def parity_photos(data_root: str | Path | None, parity_data: str | Path | None, image_size: int):
    """(uint8 photos (N, 3, S, S), the folder they came from) for the parity check: up to
    ``PARITY_PHOTOS`` from ``parity_data``, else ``data_root``, else data/flowers; at least 3."""
    from .data import DEFAULT_DATA

    candidates = [Path(parity_data)] if parity_data else [Path(p) for p in (data_root, DEFAULT_DATA) if p]
    for root in candidates:
        if root.is_dir():
            imgs = load_photos(_photo_files(root, PARITY_PHOTOS), image_size)
            if len(imgs) >= 3:
                return imgs, root
    where = ", ".join(str(c) for c in candidates)
    raise UserError(f"no readable photos for the ONNX parity check in {where}; pass --parity-data DIR with at least 3 photos")


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
            in_graph = _sub_heads_module(rebuild_task(card["task"], card.get("task_config") or {}), head, list(card["sub_heads_in_model_onnx"]))
        ref = FeaturesAndHead(encoder, in_graph).eval()(x)
        ref = ref if isinstance(ref, tuple) else (ref,)
        got = _session(model_dir / card["onnx"]["file"]).run(None, {card["input_name"]: x.numpy()})
        if len(got) != len(ref):
            raise ExportError(f"{card['onnx']['file']} has {len(got)} outputs, PyTorch {len(ref)}")
        for r, g in zip(ref, got):
            diff = max(diff, _max_abs_diff(r.numpy(), g))
        hg = card.get("head_graph")
        if hg:
            task = rebuild_task(card["task"], card.get("task_config") or {})
            args, out = _capture_head_call(task, encoder, head, imgs)
            sess = _session(model_dir / hg["file"])
            got = sess.run(None, {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)})
            ref = _as_tuple(out)
            for r, g in zip(ref, got):
                diff = max(diff, _max_abs_diff(r.numpy(), g))
        subs = sub_head_graphs(card)
        if subs:
            multi = rebuild_task(card["task"], card.get("task_config") or {})
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



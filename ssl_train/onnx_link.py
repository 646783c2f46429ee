"""Weights stored once: an exported ONNX graph reads its initializers from weights.safetensors.

The graphs are exported without constant folding or BatchNorm fusion, so that each ONNX initializer
is one ``state_dict`` tensor under its own key (``onnx_graph``); ``link_weights`` then
replaces each by an external-data reference to that tensor's bytes in weights.safetensors (a
safetensors file is an 8-byte little-endian header length, a JSON header with each tensor's dtype,
shape and data_offsets, then raw little-endian data: exactly ONNX's location/offset/length),
followed by Cast(to=FLOAT) for float16 storage or DequantizeLinear for int8 storage. The graph
computes in float32; onnxruntime folds the casts and BatchNorms into the convolutions when it
creates the session. onnxruntime must open model.onnx by its path (``InferenceSession(str(path))``)
so that it finds weights.safetensors beside it; model.onnx records the sha256 of
weights.safetensors in its metadata, so model.onnx's own sha256 changes whenever the weights do.
``check_onnx`` accepts external data only as exact byte ranges of that file.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import ExportError
from .model_files import WEIGHTS_NAME, sha256_file
from .weight_codec import QSCALE

__all__ = ["OPSET", "safetensors_index", "link_weights", "check_onnx"]

OPSET = 17

# safetensors dtype → (ONNX TensorProto data type name, numpy dtype name), the linkable types only
_ST_FLOAT = {"F16": ("FLOAT16", "<f2"), "F32": ("FLOAT", "<f4"), "F64": ("DOUBLE", "<f8"), "I8": ("INT8", "<i1")}


def safetensors_index(path: Path) -> tuple[int, dict]:
    """(absolute offset of the data block, {key: {"dtype", "shape", "data_offsets"}}) of a
    safetensors file: 8-byte little-endian header length, JSON header, raw little-endian data."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return 8 + n, header


def _read(blob: bytes, start: int, entry: dict, st: tuple[str, str]):
    """The stored tensor ``entry`` of the safetensors bytes ``blob`` as a flat numpy array."""
    import numpy as np

    b, e = (int(v) for v in entry["data_offsets"])
    return np.frombuffer(blob, dtype=np.dtype(st[1]), count=(e - b) // np.dtype(st[1]).itemsize, offset=start + b)


def _external(name: str, entry: dict, st: tuple[str, str], location: str, start: int):
    """An ONNX initializer ``name`` that reads the stored tensor ``entry`` from the file ``location``."""
    from onnx import TensorProto

    b, e = (int(v) for v in entry["data_offsets"])
    ext = TensorProto(name=name, data_type=getattr(TensorProto, st[0]), dims=list(entry["shape"]), data_location=TensorProto.EXTERNAL)
    for k, v in (("location", location), ("offset", str(start + b)), ("length", str(e - b))):
        ext.external_data.add(key=k, value=v)
    return ext


def _stored_as(t, index: dict, graph_outputs: set[str]) -> tuple[dict, tuple[str, str], dict | None] | None:
    """(entry, (ONNX type, numpy dtype), int8 scale entry or None) of the stored tensor the float32
    initializer ``t`` can read, or None when it must stay inline: no tensor under its name, another
    shape, an unlinkable dtype, a non-float32 one feeding a graph output, or int8 without a float32
    per-channel scale."""
    from onnx import TensorProto

    entry = index.get(t.name)
    st = _ST_FLOAT.get(entry.get("dtype")) if isinstance(entry, dict) else None
    scale_entry = index.get(t.name + QSCALE) if st is not None and st[0] == "INT8" else None
    if st is None or t.data_type != TensorProto.FLOAT or list(t.dims) != list(entry.get("shape", [])) or \
            (st[0] != "FLOAT" and t.name in graph_outputs) or \
            (st[0] == "INT8" and not (isinstance(scale_entry, dict) and scale_entry.get("dtype") == "F32" and scale_entry.get("shape") == [t.dims[0]])):
        return None
    return entry, st, scale_entry


def _unique(name: str, taken: set[str]) -> str:
    """``<name>.float32`` (or ``<name>.float32_<i>``) not yet in ``taken``; added to it."""
    out, i = f"{name}.float32", 0
    while out in taken:
        i += 1
        out = f"{name}.float32_{i}"
    taken.add(out)
    return out


def link_weights(path: Path, weights: Path) -> dict:
    """Rewrite the exported graph at ``path`` so that its weights are read from ``weights`` (a
    safetensors file in the same folder) as ONNX external data instead of being stored in it.

    Each float32 initializer whose name is a key of ``weights`` and whose values equal that stored
    tensor (converted to float32) becomes an external-data initializer of the stored dtype at the
    tensor's absolute byte range in the file; a float16 one is followed by Cast(to=FLOAT) (an int8
    one by DequantizeLinear with its ``.qscale``) feeding the original consumers, so the graph still
    computes in float32. Anything else stays inline and is reported. Initializers listed as graph
    inputs are removed from the inputs (they are constants), unused ones are dropped, and
    ``weights_sha256`` is recorded in the graph's metadata. Returns the card's "external_data" entry."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    start, index = safetensors_index(weights)
    blob = weights.read_bytes()
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    init_names = {t.name for t in g.initializer}
    taken = init_names | {v for n in g.node for v in [*n.input, *n.output]} | {v.name for v in g.input}
    graph_outputs = {o.name for o in g.output}
    inputs = [v for v in g.input if v.name not in init_names]
    del g.input[:]
    g.input.extend(inputs)

    linked, casts, inits, rename, inline = 0, [], [], {}, []
    for t in g.initializer:
        if t.name not in used:
            continue
        plan = _stored_as(t, index, graph_outputs)
        if plan is not None:
            entry, st, scale_entry = plan
            stored = _read(blob, start, entry, st).astype(np.float32).reshape(tuple(t.dims))
            if st[0] == "INT8":  # the float32 product DequantizeLinear computes
                stored = stored * _read(blob, start, scale_entry, _ST_FLOAT["F32"]).reshape(-1, *[1] * (len(t.dims) - 1))
        if plan is None or not np.array_equal(stored, numpy_helper.to_array(t), equal_nan=True):
            inline.append(t)
            continue
        inits.append(_external(t.name, entry, st, weights.name, start))
        linked += 1
        if st[0] != "FLOAT":
            out = rename[t.name] = _unique(t.name, taken)
            if st[0] == "INT8":
                inits.append(_external(t.name + QSCALE, scale_entry, _ST_FLOAT["F32"], weights.name, start))
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


def check_onnx(path: Path) -> int:
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
            start, index = safetensors_index(path.parent / WEIGHTS_NAME)
        entry = index.get(t.name) or {}
        st = _ST_FLOAT.get(entry.get("dtype"))
        b, e = entry.get("data_offsets", (-1, -1))
        if st is None or getattr(TensorProto, st[0]) != t.data_type or list(entry.get("shape", [])) != list(t.dims) or \
                ext.get("offset") != str(start + b) or ext.get("length") != str(e - b):
            raise ExportError(f"{path.name}: initializer {t.name!r} does not point at tensor {t.name!r} of {WEIGHTS_NAME}")
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)

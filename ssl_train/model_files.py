"""The file contract between training and the app: one folder per model under ``models/<name>/``.

Layout (written by ``ssl_train.model_writer``, driven by ``python -m ssl_train export``)::

    models/<name>/model.onnx          float32 graph: "input" (batch, 3, S, S) → "features" (+ head outputs);
                                      graph only: its weights are ONNX external data in weights.safetensors
    models/<name>/weights.safetensors encoder.* and head.* tensors: the single copy of the weights
                                      (read by the ONNX graphs and for fine-tuning)
    models/<name>/head.onnx           optional: the pretext head alone (tasks with a custom forward),
                                      also reading weights.safetensors
    models/<name>/head-<sub>.onnx     optional, multi-task models: one sub-task's head alone (a head that
                                      does not run on the photo's feature map, e.g. jigsaw's), listed in
                                      model.json as "sub_head_graphs": {<sub>: {"file", ...}}; reads
                                      weights.safetensors (tensors head.<sub>.*)
    models/<name>/model.json          the card: task, configs, normalisation, outputs, provenance,
                                      and "files": {file name: sha256} of every other file

This module is the folder format's reader: names, ``read_card``, ``verify_model_dir`` and
``load_model_weights``. It imports json and hashlib only (torch-free): the app imports it to check a
model folder before loading anything from it; ``load_model_weights`` imports torch and the encoder
and task registries when it is called. Load model.onnx by its path (onnxruntime then finds
weights.safetensors beside it), never from bytes.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

FORMAT = "pretext-lab-model/1"
CARD_NAME = "model.json"
ONNX_NAME = "model.onnx"
HEAD_ONNX_NAME = "head.onnx"
SUB_HEAD_ONNX_PREFIX = "head-"  # head-<sub-task>.onnx: one sub-head of a multi-task model
WEIGHTS_NAME = "weights.safetensors"
FEATURE_OUTPUT = "features"
INPUT_NAME = "input"
RANDOM_TASK = "random_init"  # task of the randomly initialised reference: features only, no head


class ModelFileError(ValueError):
    """A model folder that does not match its ``model.json``; the message (one line) names the bad
    file and how to regenerate it."""


def sub_head_onnx_name(sub: str) -> str:
    """File name of a multi-task model's graph for the head of sub-task ``sub``: ``head-<sub>.onnx``."""
    return f"{SUB_HEAD_ONNX_PREFIX}{sub}.onnx"


def sub_head_graphs(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The card's "sub_head_graphs" ({sub-task: graph entry}); {} when absent. ``ModelFileError``
    when present but not a table of entries that each name a file."""
    graphs = card.get("sub_head_graphs")
    if graphs is None:
        return {}
    if not isinstance(graphs, dict) or not all(isinstance(k, str) and isinstance(v, dict) and isinstance(v.get("file"), str) and v["file"]
                                               for k, v in graphs.items()):
        raise ModelFileError(f"malformed \"sub_head_graphs\" table (want {{sub-task: {{\"file\": ...}}}})")
    return graphs


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fix_hint(model_dir: Path, card: dict[str, Any] | None) -> str:
    cmd = card.get("regenerate") if isinstance(card, dict) else None
    if not isinstance(cmd, str) or not cmd or "\n" in cmd:
        cmd = f"python -m ssl_train export --checkpoint RUN/checkpoint.safetensors --name {model_dir.name} --out {model_dir.parent}"
    return f"regenerate the folder with `{cmd}` or restore it from the release"


def read_card(model_dir: str | Path) -> dict[str, Any]:
    """``model.json`` of ``model_dir`` as a dict (no file checks). ``ModelFileError`` if missing or invalid."""
    model_dir = Path(model_dir)
    path = model_dir / CARD_NAME
    if not model_dir.is_dir():
        raise ModelFileError(f"model folder {model_dir} does not exist; {_fix_hint(model_dir, None)}")
    if not path.is_file():
        raise ModelFileError(f"{path} is missing; {_fix_hint(model_dir, None)}")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path} is not valid JSON ({str(e).splitlines()[0][:80]}); {_fix_hint(model_dir, None)}") from None
    if not isinstance(card, dict) or not isinstance(card.get("files"), dict) or not card["files"]:
        raise ModelFileError(f"{path} has no \"files\" table; {_fix_hint(model_dir, card if isinstance(card, dict) else None)}")
    if card.get("format") != FORMAT:
        raise ModelFileError(f"{path} has format {card.get('format')!r}, expected {FORMAT!r}; {_fix_hint(model_dir, card)}")
    return card


def verify_model_dir(model_dir: str | Path) -> dict[str, Any]:
    """Check ``model_dir`` against its ``model.json``: every listed file exists and has the listed
    sha256, the ONNX graph and weights files the card names (model.onnx, head.onnx, each
    "sub_head_graphs" file) are among them, and a graph that reads
    its weights from another file (ONNX external data, "external_data" in the card) names a listed
    file with the same sha256.

    Returns the card (dict). Raises ``ModelFileError`` (one line naming the file and the fix) on a
    missing folder, missing or invalid ``model.json``, or a missing, unlisted or altered file.
    """
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    hint = _fix_hint(model_dir, card)
    files: dict[str, Any] = card["files"]
    required = [card.get("onnx", {}).get("file", ONNX_NAME) if isinstance(card.get("onnx"), dict) else ONNX_NAME, WEIGHTS_NAME]
    head = card.get("head_graph")
    if isinstance(head, dict) and head.get("file"):
        required.append(head["file"])
    try:
        subs = sub_head_graphs(card)
    except ModelFileError as e:
        raise ModelFileError(f"{model_dir / CARD_NAME}: {e}; {hint}") from None
    required += [g["file"] for g in subs.values()]
    for name in required:
        if name not in files:
            raise ModelFileError(f"{model_dir / CARD_NAME} does not list {name} in \"files\"; {hint}")
    for name, digest in files.items():
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", "..", CARD_NAME):
            raise ModelFileError(f"{model_dir / CARD_NAME} lists an invalid file name {name!r}; {hint}")
        path = model_dir / name
        if not path.is_file():
            raise ModelFileError(f"{path} is missing; {hint}")
        if not isinstance(digest, str) or sha256_file(path) != digest.lower():
            raise ModelFileError(f"{path} does not match its sha256 in {CARD_NAME} (altered or truncated); {hint}")
    # a graph reading its weights from another file of the folder: that file must be the listed one
    for graph in (card.get("onnx"), head, *subs.values()):
        ext = graph.get("external_data") if isinstance(graph, dict) else None
        if isinstance(ext, dict) and (ext.get("file") not in files or ext.get("sha256") != files[ext.get("file")]):
            raise ModelFileError(f"{model_dir / CARD_NAME}: {graph.get('file')} reads weights from {ext.get('file')!r}, "
                                 f"which is not the listed file with that sha256; {hint}")
    return card


def rebuild_task(name: str, options: dict):
    """The registered pretext task ``name`` with the saved ``options`` (a card's "task_config", a
    checkpoint's config.task); one-line ``UserError`` when it cannot be rebuilt."""
    from .errors import UserError
    from .tasks import get_task

    try:
        return get_task(name, options)
    except UserError as e:
        raise UserError(f"cannot rebuild the head of task {name!r}: {e}") from None


def load_model_weights(model_dir: str | Path, card: dict | None = None):
    """Rebuild (encoder, head or None, card) in float32 eval mode from a model folder's
    weights.safetensors (float16 and int8 storage are converted back to float32,
    ``weight_codec.as_float32``). No file checks: ``verify_model_dir`` first where that matters."""
    from safetensors.torch import load_file

    from .encoders import EncoderConfig, build_encoder, encoder_info
    from .weight_codec import as_float32, sub_state

    model_dir = Path(model_dir)
    card = card or read_card(model_dir)
    state = as_float32(load_file(str(model_dir / card.get("weights", {}).get("file", WEIGHTS_NAME))))
    encoder = build_encoder(EncoderConfig.from_dict(card["encoder"]))
    encoder.load_state_dict(sub_state(state, "encoder."))
    head = None
    if card["task"] != RANDOM_TASK:
        head = rebuild_task(card["task"], card.get("task_config") or {}).build_head(encoder_info(encoder, int(card["input"]["image_size"])))
        head.load_state_dict(sub_state(state, "head."))
        head.eval()
    return encoder.eval(), head, card

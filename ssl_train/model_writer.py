"""Writing a model folder (the format is ``model_files``): weights, graphs, parity, card, all or nothing.

``write_model_dir`` stores the weights (``weight_codec``; rounded to their storage *before* the
graphs are exported, so the ONNX graph, ``load_model_weights`` and the parity check all use the same
values), exports the graphs (``onnx_graph``), checks them against PyTorch on real photos, writes the
card with every file's sha256 and verifies the folder. Everything is written to a temporary folder
beside the target and renamed into place only after the parity check and verification pass: a
failed export never destroys an existing model. ``add_sub_head_graphs`` adds the missing sub-head
graphs to an existing multi-task folder from its own weights.safetensors
(``python -m ssl_train export --add-head-graphs models/multitask``), leaving every existing file
byte-identical.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from . import tensorfile
from .errors import ExportError, UserError
from .model_files import (
    CARD_NAME,
    FEATURE_OUTPUT,
    FORMAT,
    INPUT_NAME,
    ONNX_NAME,
    WEIGHTS_NAME,
    load_model_weights,
    rebuild_task,
    sha256_file,
    sub_head_graphs,
    verify_model_dir,
)
from .onnx_graph import (
    PARITY_TOL,
    export_graphs,
    export_sub_head_graphs,
    multitask_head_note,
    parity_check,
    parity_photos,
    probes,
    sub_heads_on_features,
)
from .paths import REPO, portable
from .weight_codec import as_float32, storage_dtypes, storage_tensors, sub_state

__all__ = ["MULTI_TASK", "check_name", "write_model_dir", "check_multitask_dir", "add_sub_head_graphs"]

MULTI_TASK = "multitask"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str) -> None:
    """One-line ``UserError`` unless ``name`` is a safe model folder name (letters, digits, _ - .)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UserError(f"--name {name!r} is not a valid model folder name; use letters, digits, '_', '-', '.' (e.g. rotation)")


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
    from .runtime import library_versions

    return library_versions()


def write_model_dir(
    out_dir: str | Path, name: str, *, task, encoder, head, image_size: int, card: dict, fp16_storage: bool,
    data_root: str | None, parity_data: str | Path | None, int8: bool = False,
) -> Path:
    """Shared body of both exports: weights, graphs, parity, card, verify, rename into place."""
    import torch

    check_name(name)
    out_dir = Path(out_dir)
    final = out_dir / name
    if final.exists() and not final.is_dir():
        raise UserError(f"{final} exists and is not a folder; remove it or choose another --name")
    photos, photo_root = parity_photos(data_root, parity_data, image_size)
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
    stored = storage_tensors(encoder, head, fp16_storage, int8)
    tensorfile.save(stored, tmp / WEIGHTS_NAME, metadata={"format": FORMAT, "task": card["task"]})
    state = as_float32(stored)
    encoder.load_state_dict(sub_state(state, "encoder."))
    if head is not None:
        head.load_state_dict(sub_state(state, "head."))
    fields = export_graphs(tmp, task, encoder, head, image_size, photos)
    card = {
        "format": FORMAT,
        "name": name,
        **card,
        **_graph_fields(fields, image_size, int(encoder.feature_dim)),
        "weights": _weights_entry(storage_dtypes(stored), head is not None, fp16_storage, int8),
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "export_versions": _versions(),
    }
    card["files"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file() and p.name != CARD_NAME}
    card = _checked_parity(tmp, card, photos, photo_root, f"nothing was written to {final}")
    (tmp / CARD_NAME).write_text(json.dumps(portable(card), indent=2) + "\n")  # repository paths relative: cards travel
    verify_model_dir(tmp)


def _graph_fields(fields: dict, image_size: int, feature_dim: int) -> dict:
    """The card's input, output, normalisation and graph entries, in the card's order, from what
    ``export_graphs`` returned."""
    return {
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", 3, image_size, image_size], "layout": "NCHW", "image_size": image_size},
        "input_name": INPUT_NAME,
        "output_names": fields["output_names"],
        "feature_output": FEATURE_OUTPUT,
        "feature_dim": feature_dim,
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
    }


def _weights_entry(dtypes: list[str], has_head: bool, fp16_storage: bool, int8: bool) -> dict:
    """The card's "weights" entry: file, prefixes, storage dtype(s) and how to read them."""
    return {
        "file": WEIGHTS_NAME, "prefixes": ["encoder."] + (["head."] if has_head else []),
        "storage_dtype": dtypes[0] if len(dtypes) == 1 else dtypes, "load_dtype": "float32",
        # the float16 note's wording is kept as written by earlier exports, although load_model_weights now lives in
        # ssl_train.model_files (ssl_train.export no longer re-exports it): changing it would change the card bytes
        "note": ("convolution and linear weights int8 on disk (symmetric, per output channel; <key>.qscale holds the "
                 "float32 scales), the rest float16; load_model_weights multiplies them back to float32. The single copy of "
                 "the weights: model.onnx (and head.onnx) read these bytes as ONNX external data through DequantizeLinear / Cast")
        if int8 else ("float16 on disk; convert to float32 on load (ssl_train.export.load_model_weights). "
                 "The single copy of the weights: model.onnx (and head.onnx) read these bytes as ONNX external data, cast to float32")
        if fp16_storage else "float32 on disk; the single copy of the weights, read by model.onnx (and head.onnx) as ONNX external data",
    }


def _mean_std():
    from .tasks.base import MEAN, STD

    return MEAN, STD


# --------------------------------------------------------------------------------------------
# adding the missing sub-head graphs to an existing multi-task folder
# --------------------------------------------------------------------------------------------
def check_multitask_dir(model_dir: str | Path) -> tuple[Path, dict]:
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
    ``export_model`` does (``export_sub_head_graphs``), linked to the same weights.safetensors, the
    card gains "sub_head_graphs", an updated "head_note", the new files' sha256 and the parity of
    every graph on real photos (from ``parity_data``, else the card's data folder, else
    data/flowers); every file that was there stays byte-identical (checked). Only then is the
    folder replaced: on any failure it is left as it was.

    Returns (the folder, the sub-tasks that got a graph: empty when there was nothing to add, in
    which case nothing is written). ``UserError`` / ``ModelFileError`` (one line) for a folder that
    does not exist, is not intact, or is not a multi-task model; ``ExportError`` when a graph does
    not match PyTorch."""
    import torch

    d, card = check_multitask_dir(model_dir)
    encoder, head, card = load_model_weights(d, card)
    task = rebuild_task(card["task"], card.get("task_config") or {})
    image_size = int(card["input"]["image_size"])
    in_model = list(card.get("sub_heads_in_model_onnx") or [])
    have = dict(sub_head_graphs(card))
    missing = [n for n in task.subtasks if n not in in_model and n not in have]
    if not missing:
        return d, []
    x2, _ = probes(image_size)
    _, why = sub_heads_on_features(task, head, encoder, x2)
    reasons = {n: why.get(n, f"not an output of {ONNX_NAME}") for n in missing}
    data_root = ((card.get("config") or {}).get("data") or {}).get("root")
    if data_root and not Path(data_root).is_absolute():
        data_root = str(REPO / data_root)
    photos, photo_root = parity_photos(data_root, parity_data, image_size)
    before = {name: sha256_file(d / name) for name in card["files"]}
    tmp = d.parent / f".{d.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        shutil.copytree(d, tmp, symlinks=True)
        with torch.no_grad():
            graphs, without = export_sub_head_graphs(tmp, task, encoder, head, photos, reasons)
        added = list(graphs)
        if not added:
            raise ExportError(f"no sub-task head of {d} could be exported: " + "; ".join(f"{n}: {w}" for n, w in without.items()))
        card = _with_key_after(card, "sub_heads_in_model_onnx", "sub_head_graphs", {**have, **graphs})
        note = multitask_head_note(card["sub_head_graphs"], without)  # every sub-task not in model.onnx is in one of the two
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



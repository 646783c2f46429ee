"""Export a pretraining checkpoint (or a random initialisation) to a model folder for the app:
``python -m ssl_train export`` → ``<out>/<name>/``.

This module is the orchestration and the CLI: it rebuilds the model (``checkpoint.load_checkpoint_model``),
writes the card's provenance (task, configs, history, metrics, where the checkpoint came from) and
hands the rest to the modules that own each concept:

    model_files    the folder format: file names, read_card, verify_model_dir, load_model_weights
    model_writer   writing a folder all-or-nothing (weights, graphs, parity, card, verify, rename);
                   add_sub_head_graphs for an existing multi-task folder
    weight_codec   float32 ⇄ the stored tensors (float16, or int8 with per-channel scales)
    onnx_graph     the ONNX graphs (which outputs, head graphs) and their parity with PyTorch
    onnx_link      the graphs read their weights from weights.safetensors (ONNX external data)

Files of a folder::

    model.onnx          float32 graph, opset 17, graph only (~30 kB): its weights are ONNX external
                        data in weights.safetensors. Input "input": float32 (batch, 3, S, S), the
                        encoder-ready tensor (RGB/255, then (x - MEAN) / STD). Outputs: "features"
                        (batch, D), the pooled last-stage feature vector, and the head's output(s).
    head.onnx           only when the task's head cannot sit on top of model.onnx (``onnx_graph``);
                        graph only as well, reading the head.* tensors of weights.safetensors
    weights.safetensors encoder.* and head.* tensors, the single copy of the weights: read by both
                        graphs and by ``load_model_weights`` (fine-tuning), float16 storage by
                        default (converted back to float32 on load)
    model.json          the card: task and configs, input, normalisation, outputs, provenance,
                        metrics, ONNX-vs-PyTorch parity, and {file: sha256} of every other file
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .checkpoint import load_checkpoint_model
from .errors import UserError
from .model_files import CARD_NAME, RANDOM_TASK, sha256_file, verify_model_dir
from .model_writer import add_sub_head_graphs, check_multitask_dir, check_name, write_model_dir
from .paths import REPO

__all__ = ["export_model", "export_random_reference", "add_export_parser", "cmd_export"]


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
    check_name(name)
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
    return write_model_dir(out_dir, name, task=task, encoder=encoder, head=head, image_size=image_size, card=card,
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
    return write_model_dir(out_dir, name, task=None, encoder=encoder, head=None, image_size=int(image_size), card=card,
                           fp16_storage=fp16_storage, data_root=None, parity_data=parity_data, int8=int8)


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
    d, card = check_multitask_dir(args.add_head_graphs)  # one line, exit code 2, before any work
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

"""Checkpoints as safetensors: tensors plus a JSON header; no pickle anywhere.

A checkpoint holds ``encoder.*``, ``head.*`` and ``optim.*`` tensors, and in its metadata the
resolved config (data, encoder, task, training), the task and encoder names, the epoch and the
optimizer's non-tensor state. Writes go to a temporary file in the same folder, then ``os.replace``,
so a killed run never leaves a half-written checkpoint in place of a good one. ``load_checkpoint_model``
rebuilds the task, encoder and head a pretraining checkpoint was made with.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import UserError

FORMAT = "pretext-lab-checkpoint/1"


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in state["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[k] = v
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    for idx, d in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(d)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    path: str | Path,
    encoder: torch.nn.Module,
    head: torch.nn.Module | None,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """Atomically write a checkpoint. ``meta`` must be JSON-serialisable and should hold at least
    ``task``, ``encoder`` (the EncoderConfig dict), ``config`` and ``epoch``."""
    path = Path(path)
    tensors = {f"encoder.{k}": v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    if head is not None:
        tensors.update({f"head.{k}": v.detach().cpu().contiguous() for k, v in head.state_dict().items()})
    header = dict(meta, format=FORMAT)
    if optimizer is not None:
        opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
        tensors.update(opt_tensors)
        header["optimizer"] = opt_meta
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata={"pretext_lab": json.dumps(header)})
    os.replace(tmp, path)


class Checkpoint:
    """A loaded checkpoint: ``meta`` (dict) and state dicts for encoder, head and optimizer."""

    def __init__(self, path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.path = path
        self.meta = meta
        self._tensors = tensors

    def _prefixed(self, prefix: str) -> dict[str, torch.Tensor]:
        n = len(prefix)
        return {k[n:]: v for k, v in self._tensors.items() if k.startswith(prefix)}

    @property
    def encoder_state(self) -> dict[str, torch.Tensor]:
        return self._prefixed("encoder.")

    @property
    def head_state(self) -> dict[str, torch.Tensor]:
        return self._prefixed("head.")

    def optimizer_state(self) -> dict | None:
        if "optimizer" not in self.meta:
            return None
        return _unflatten_optimizer(self._prefixed(""), self.meta["optimizer"])

    def expect(self, task: str | None = None, encoder: dict | None = None) -> None:
        """Refuse a checkpoint of another task or encoder with a one-line ``UserError``."""
        if task is not None and self.meta.get("task") != task:
            raise UserError(
                f"checkpoint {self.path} was trained for task {self.meta.get('task')!r}, not {task!r}; "
                f"pass --task {self.meta.get('task')} or a checkpoint of {task!r}"
            )
        if encoder is not None and self.meta.get("encoder") != _jsonable(encoder):
            raise UserError(
                f"checkpoint {self.path} holds encoder {self.meta.get('encoder')}, not {encoder}; "
                "use the same --encoder settings as the checkpoint or another checkpoint"
            )


def _jsonable(obj: Any) -> Any:
    """What ``obj`` becomes after a JSON round trip (tuples → lists), for comparisons with meta."""
    return json.loads(json.dumps(obj))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint without executing code (safetensors). One-line ``UserError`` if the file
    is missing, not a safetensors file, or not a Pretext Lab checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; train one with `python -m ssl_train pretrain` or fix the path")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("pretext_lab")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"checkpoint {path} is not a readable safetensors file ({str(e).splitlines()[0][:120]}); re-create it") from None
    if raw is None:
        raise UserError(f"{path} is a safetensors file but not a Pretext Lab checkpoint (no metadata); use one written by ssl_train")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise UserError(f"checkpoint {path} has corrupt metadata; re-create it") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} has format {meta.get('format')!r}, expected {FORMAT!r}; re-create it")
    return Checkpoint(path, tensors, meta)


def load_checkpoint_model(checkpoint_path: str | Path):
    """Rebuild a pretraining checkpoint's model → (checkpoint, task, encoder, head, image size in px),
    encoder and head in float32 train mode as saved. One-line ``UserError`` for a missing or foreign
    checkpoint, an unregistered task, or weights that do not fit the recorded task and encoder."""
    from .encoders import EncoderConfig, build_encoder, encoder_info
    from .model_files import rebuild_task
    from .tasks import load_all, task_names
    from .tasks.base import TASKS

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
    task = rebuild_task(task_name, cfg.get("task") or {})
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

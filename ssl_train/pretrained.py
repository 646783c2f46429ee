"""Where a pretrained encoder comes from, for ``finetune``, ``evaluate`` and ``replay`` (#31).

Three kinds of path are accepted:

- a training-run checkpoint (``runs/TASK-…/checkpoint.safetensors``, written by ``pretrain``): its
  metadata names the task and encoder;
- a shipped model folder (``models/NAME``: model.json + weights.safetensors + graphs), checked
  file by file against the sha256 in its card before anything is loaded (``model_files``);
- that folder's ``weights.safetensors`` given on its own: it has no metadata of its own, so it is
  read through the model.json beside it, exactly as the folder is.

Model-folder weights are stored int8/float16; they come back as the float32 tensors the ONNX graph
computes with (``model_files.load_model_weights``). Anything else is refused with a one-line
``UserError`` / ``ModelFileError`` naming the path and what to pass instead, before data is read.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .encoders import EncoderConfig
from .errors import UserError
from .model_files import CARD_NAME, WEIGHTS_NAME, read_card, verify_model_dir

RUN_CHECKPOINT = "checkpoint.safetensors"  # what ``pretrain`` writes into its run folder
WHAT_TO_PASS = "pass a training checkpoint (runs/TASK/checkpoint.safetensors) or a model folder (models/NAME)"


@dataclass(frozen=True)
class Pretrained:
    """A pretrained encoder ready for ``evaluate.finetune``: ``state`` (float32 state dict of an
    encoder built from ``enc_cfg``), the pretext ``task`` it was trained with, a display ``name``
    (the model folder's name, else the task), and the model ``card`` when it came from a folder."""

    state: dict[str, torch.Tensor]
    enc_cfg: EncoderConfig
    task: str
    name: str
    source: Path
    card: dict[str, Any] | None = None


def model_dir_of(path: str | Path) -> Path | None:
    """The model folder ``path`` names (the folder itself, or its weights file); None when ``path``
    is no part of a model folder (e.g. a training checkpoint). ``UserError`` for another file of a
    model folder (a graph, the card): only the weights can stand for the folder."""
    p = Path(path)
    if p.is_dir():
        return p if (p / CARD_NAME).is_file() else None
    if not (p.parent / CARD_NAME).is_file():
        return None
    card = read_card(p.parent)
    weights = (card.get("weights") or {}).get("file", WEIGHTS_NAME)
    if p.name != weights:
        raise UserError(f"{p} is not the weights of model folder {p.parent} ({weights}); pass the folder {p.parent} or {p.parent / weights}")
    return p.parent


def _from_model_dir(folder: Path, task: str | None) -> Pretrained:
    from .model_files import load_model_weights

    card = verify_model_dir(folder)  # every file against its sha256 in model.json, before loading any
    if task and card.get("task") != task:
        raise UserError(f"model folder {folder} holds a {card.get('task')!r} encoder, not {task!r}; pass --task {card.get('task')} or a model of {task!r}")
    # building the encoder and head draws initial weights (then overwritten): keep the caller's random state
    with torch.random.fork_rng(devices=[]):
        encoder, _, card = load_model_weights(folder, card)
    return Pretrained(state=encoder.state_dict(), enc_cfg=EncoderConfig.from_dict(card["encoder"]), task=str(card["task"]),
                      name=str(card.get("name") or folder.name), source=folder, card=card)


def _from_checkpoint(path: Path, task: str | None) -> Pretrained:
    from .checkpoint import load_checkpoint

    ck = load_checkpoint(path)
    if task:
        ck.expect(task=task)
    if "encoder" not in ck.meta:
        raise UserError(f"checkpoint {path} does not record its encoder; {WHAT_TO_PASS}")
    name = str(ck.meta.get("task", "?"))
    return Pretrained(state=ck.encoder_state, enc_cfg=EncoderConfig.from_dict(ck.meta["encoder"]), task=name, name=name, source=path)


def load_pretrained(path: str | Path, task: str | None = None) -> Pretrained:
    """A checkpoint, model folder or model folder's weights.safetensors → ``Pretrained``; with
    ``task``, refuse an encoder pretrained with another task. One-line errors (see module doc)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p} does not exist; {WHAT_TO_PASS}")
    folder = model_dir_of(p)
    if folder is not None:
        return _from_model_dir(folder, task)
    if p.is_dir():
        hint = f"pass its checkpoint: {p / RUN_CHECKPOINT}" if (p / RUN_CHECKPOINT).is_file() else WHAT_TO_PASS
        raise UserError(f"{p} is a folder without {CARD_NAME}, not a model folder; {hint}")
    return _from_checkpoint(p, task)

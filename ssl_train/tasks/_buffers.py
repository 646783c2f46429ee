"""Buffers whose size is known only from the data (PIRL's memory bank, DeepCluster's pseudo-labels).

Such a buffer is created empty when the head is built (the head does not know N, the number of
training photos) and sized in ``on_epoch_start``. ``load_state_dict`` copies into existing tensors
and refuses a shape mismatch, so a fresh head could not load a trained one; ``resize_for_load``,
called from a module's ``_load_from_state_dict``, first replaces each such buffer by a zero tensor of
the saved shape (same device and dtype), then the normal strict load fills it.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


def resize_for_load(module: nn.Module, state_dict: dict, prefix: str, names: Iterable[str]) -> None:
    for name in names:
        key = prefix + name
        cur = getattr(module, name)
        if key in state_dict and tuple(state_dict[key].shape) != tuple(cur.shape):
            setattr(module, name, torch.zeros(state_dict[key].shape, device=cur.device, dtype=cur.dtype))

"""Pretext tasks: one module each, registered by name (see ``base``)."""
from __future__ import annotations

import importlib
import pkgutil

from .base import TASKS, EncoderInfo, PretextTask, Recipe, get_task, recipe_of, register, task_names

__all__ = ["TASKS", "EncoderInfo", "PretextTask", "Recipe", "get_task", "recipe_of", "register", "task_names", "load_all",
           "DEFAULT_TASK", "SHOWCASE_TASK"]

# The tasks the command line names when none is given: the one the story starts from (pretrain, protocol
# and budget run it by default, rotation-limits studies it) and the strongest shipped encoder
# (reports/protocol.md), which replay records and the finetune hint suggests.
DEFAULT_TASK = "rotation"
SHOWCASE_TASK = "simclr"


def load_all() -> None:
    """Import every module in this package so that each task registers itself."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "base" and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")

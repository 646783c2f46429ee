"""Pretext tasks: one module each, registered by name (see ``base``)."""
from __future__ import annotations

import importlib
import pkgutil

from .base import TASKS, EncoderInfo, PretextTask, Recipe, get_task, recipe_of, register, task_names

__all__ = ["TASKS", "EncoderInfo", "PretextTask", "Recipe", "get_task", "recipe_of", "register", "task_names", "load_all"]


def load_all() -> None:
    """Import every module in this package so that each task registers itself."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "base" and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")

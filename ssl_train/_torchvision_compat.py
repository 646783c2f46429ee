"""Import torchvision on a CPU-only torch whose torchvision wheel was built for CUDA.

torchvision 0.28's only Linux wheel links its ``_C.so`` against CUDA; on ``torch==2.13.0+cpu`` the
library fails to load, the ``torchvision::nms`` operator is never defined, and ``import torchvision``
dies while registering fake kernels for it (pytorch/vision#9085). Defining the two missing schemas
first lets the pure-Python parts (models, transforms) import. ``torchvision.ops`` and ``io`` stay
unusable there: this project decodes with Pillow and uses no detection ops.

The shim only acts when ``_C.so`` cannot be loaded, so a working torchvision (the GPU machine's
0.26) is imported untouched.
"""
from __future__ import annotations

import importlib.util
import os

import torch

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_LIB: torch.library.Library | None = None  # kept alive: dropping it unregisters the schemas


def _native_ops_load() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    for folder in spec.submodule_search_locations:
        for name in os.listdir(folder):
            if name.startswith("_C") and name.endswith((".so", ".pyd")):
                try:
                    torch.ops.load_library(os.path.join(folder, name))
                    return True
                except (OSError, RuntimeError):
                    return False
    return False


def import_torchvision():
    """Return the ``torchvision`` module, registering missing op schemas only when needed."""
    global _LIB
    import sys

    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    if _LIB is None and not _native_ops_load():
        _LIB = torch.library.Library("torchvision", "FRAGMENT")
        for name, schema in _SCHEMAS.items():
            try:
                _LIB.define(schema)
            except RuntimeError:
                pass  # already defined by a partial load
    import torchvision

    return torchvision

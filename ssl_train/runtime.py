"""Where and with what a command runs, shared by training, evaluation, studies and the app:
device choice, the device's and libraries' names for reports, peak memory, the learning-rate
schedule, and photos from uint8 to float."""
from __future__ import annotations

import math
import os
import platform
import resource

import torch

from .errors import UserError

__all__ = ["resolve_device", "device_name", "library_versions", "peak_rss_mb", "lr_at", "as_float"]


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda if available, else cpu. Refuses a CUDA device that is not there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for CUDA but this torch sees no GPU; use --device cpu or auto")
    return dev


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu ({os.cpu_count()} cores, {platform.machine()})"


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("torchvision", "numpy", "scikit-learn", "safetensors", "kornia", "onnxruntime", "onnx"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def as_float(images_u8: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 photos (N, 3, S, S) → float32 in [0, 1], in channels-last memory order if asked."""
    x = images_u8.float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x

"""Batched augmentations with per-sample randomness, on whatever device the batch is on.

Every function takes an explicit ``torch.Generator`` so that runs are reproducible and a resumed
run repeats the exact draws of an uninterrupted one. (kornia's random augmentations draw from the
global RNG, which a resume cannot replay; its colour conversions are used in the colorization task.)
Images are float (B, C, H, W) in [0, 1].
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def random_resized_crop(
    x: torch.Tensor,
    gen: torch.Generator,
    scale: tuple[float, float] = (0.35, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
    out_size: int | None = None,
) -> torch.Tensor:
    """Per-sample random crop (area fraction in ``scale``, aspect in ``ratio``), resized back to
    ``out_size`` (default: input size) with bilinear sampling, and a random horizontal flip.
    (B, C, H, W) → (B, C, out, out). One ``grid_sample`` call for the whole batch."""
    b, _, h, w = x.shape
    out = out_size or h
    dev = x.device
    area = _uniform(b, scale[0], scale[1], gen, dev)
    logr = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), gen, dev)
    r = torch.exp(logr)
    sw = torch.sqrt(area * r).clamp(max=1.0)  # crop width as a fraction of the image width
    sh = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(b, generator=gen, device=dev) * 2 - 1) * (1 - sw)  # centre in [-1, 1] coords
    cy = (torch.rand(b, generator=gen, device=dev) * 2 - 1) * (1 - sh)
    sign = torch.ones(b, device=dev)
    if flip:
        sign = torch.where(torch.rand(b, generator=gen, device=dev) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev, dtype=x.dtype)
    theta[:, 0, 0] = sw * sign
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = sh
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, [b, x.shape[1], out, out], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def color_jitter(
    x: torch.Tensor,
    gen: torch.Generator,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    p: float = 0.8,
) -> torch.Tensor:
    """Per-sample brightness, contrast and saturation factors in [1-s, 1+s], applied with
    probability ``p``. (B, 3, H, W) → same."""
    b, dev = x.shape[0], x.device
    apply = (torch.rand(b, generator=gen, device=dev) < p).to(x.dtype).view(b, 1, 1, 1)
    fb = _uniform(b, 1 - brightness, 1 + brightness, gen, dev).view(b, 1, 1, 1)
    fc = _uniform(b, 1 - contrast, 1 + contrast, gen, dev).view(b, 1, 1, 1)
    fs = _uniform(b, 1 - saturation, 1 + saturation, gen, dev).view(b, 1, 1, 1)
    y = x * fb
    grey = rgb_to_grey(y)
    y = (y - grey.mean(dim=(2, 3), keepdim=True)) * fc + grey.mean(dim=(2, 3), keepdim=True)
    grey = rgb_to_grey(y)
    y = (y - grey) * fs + grey
    y = y.clamp(0, 1)
    return apply * y + (1 - apply) * x


def rgb_to_grey(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) → (B, 1, H, W) luma (ITU-R BT.601 weights)."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def random_grayscale(x: torch.Tensor, gen: torch.Generator, p: float = 0.2) -> torch.Tensor:
    """Replace each image by its greyscale (3 equal channels) with probability ``p``."""
    b = x.shape[0]
    m = (torch.rand(b, generator=gen, device=x.device) < p).to(x.dtype).view(b, 1, 1, 1)
    return m * rgb_to_grey(x).expand_as(x) + (1 - m) * x


def hflip_random(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flip each image horizontally with probability 1/2."""
    m = torch.rand(x.shape[0], generator=gen, device=x.device) < 0.5
    return torch.where(m.view(-1, 1, 1, 1), x.flip(-1), x)

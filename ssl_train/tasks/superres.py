"""Super-resolution as a pretext task: restore a photo from a downsampled copy.

The photo (the target) is downsampled by ``factor`` (default 2; bicubic with antialiasing, so no
aliasing pattern betrays the original) and the encoder sees either that small image upsampled back
to the input size with bicubic interpolation (``input_mode="upsampled"``, default: the same input
size and statistics as every other task) or the small image itself (``"small"``, cheaper, and the
encoder must cope with a smaller scale). Inputs are normalised with ``normalize``.

A light FPN-style decoder predicts the *residual* that is added to the bicubic upsampling: the
easy part (the low frequencies) is given, so all the loss is about the detail the features must
infer (texture, edges). Unlike the other dense tasks, the decoder reads every encoder stage
(``encoder.forward_stages``; top-down: the last map is upsampled and summed with a 1×1 projection of
each earlier stage, down to stride 4, then two ×2 upsampling convs to full resolution): detail is
local, and from the last map alone (2×2 cells at 64 px, 3×3 at 96 px) the decoder cannot know where
an edge is — measured: the loss then stays at the bicubic baseline. The deep stages still get the
gradient of what context adds (which texture this is). Loss: L1 between the restored and the
original photo (L1 rather than L2: sharper, and not dominated by a few badly restored edges).

Pure helpers for the app: ``degrade`` (the (small, upsampled) pair), ``restore`` (bicubic + residual,
clamped) and ``make_views``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import augment
from ..errors import UserError
from .base import EncoderInfo, PretextTask, TaskConfig, normalize, register

INPUT_MODES = ("upsampled", "small")
MIN_SMALL = 8  # px: the smallest downsampled image allowed


def degrade(img: torch.Tensor, factor: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """``img`` (B, C, S, S) in [0, 1] → (small (B, C, S//factor, S//factor): bicubic with
    antialiasing; upsampled (B, C, S, S): the small image back to S×S, bicubic), both clamped to
    [0, 1]. The upsampled one is the baseline the model improves on."""
    s = img.shape[-1]
    small = F.interpolate(img, size=(s // factor, s // factor), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    up = F.interpolate(small, size=img.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
    return small, up


def restore(upsampled: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """The restored picture: bicubic upsampling + predicted residual, clamped to [0, 1]."""
    return (upsampled + residual).clamp(0, 1)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, 1] (over the whole batch)."""
    mse = F.mse_loss(pred.float().clamp(0, 1), target.float()).item()
    return 10 * math.log10(1.0 / max(mse, 1e-10))


@dataclass(frozen=True)
class SuperresConfig(TaskConfig):
    factor: int = 2  # downsampling factor
    input_mode: str = "upsampled"  # upsampled | small
    crop_scale_min: float = 0.6  # random-resized-crop area range; 1 disables
    width: int = 64  # decoder width (channels of the top-down path)

    def validate(self, image_size: int) -> None:
        if self.factor < 2:
            raise UserError(f"factor={self.factor} must be an integer ≥ 2 (1 would ask to restore the photo from itself)")
        if image_size // self.factor < MIN_SMALL:
            raise UserError(
                f"factor={self.factor} shrinks a {image_size}-px image to {image_size // self.factor} px; "
                f"use factor ≤ {max(1, image_size // MIN_SMALL)} or a larger --image-size"
            )
        if self.input_mode not in INPUT_MODES:
            raise UserError(f"input_mode={self.input_mode!r} is not one of {', '.join(INPUT_MODES)}")
        if not 0 < self.crop_scale_min <= 1 or self.width < 16:
            raise UserError("crop_scale_min must be in (0, 1] and width ≥ 16")


@dataclass
class SuperresViews:
    photos: torch.Tensor  # (B, 3, S, S) the originals (targets), [0, 1]
    small: torch.Tensor  # (B, 3, S/f, S/f)
    upsampled: torch.Tensor  # (B, 3, S, S) bicubic baseline


def make_views(images: torch.Tensor, cfg: SuperresConfig, gen: torch.Generator, train: bool = True) -> SuperresViews:
    x = images
    if train and cfg.crop_scale_min < 1:
        x = augment.random_resized_crop(x, gen, scale=(cfg.crop_scale_min, 1.0))
    small, up = degrade(x, cfg.factor)
    return SuperresViews(x, small, up)


class SuperresHead(nn.Module):
    """(stage maps f_1..f_n (B, C_i, h_i, w_i) at strides 4, 8, …, bicubic upsampling (B, 3, S, S))
    → restored image (B, 3, S, S) = upsampling + predicted residual (not clamped; ``restore`` clamps
    for display). All positional tensors, one call: the head can be exported on its own."""

    def __init__(self, stage_dims: tuple[int, ...], width: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(d, width, 1) for d in stage_dims)
        self.smooth = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)) for _ in stage_dims
        )
        w2, w4 = max(16, width // 2), max(16, width // 4)
        self.up = nn.Sequential(  # stride 4 → 1
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(width, w2, 3, 1, 1, bias=False), nn.BatchNorm2d(w2), nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(w2, w4, 3, 1, 1, bias=False), nn.BatchNorm2d(w4), nn.ReLU(inplace=True),
            nn.Conv2d(w4, 3, 3, 1, 1),
        )
        # start as (almost) plain bicubic: a sane baseline from step 0; not exactly zero, so the
        # very first step already sends a gradient into the encoder
        nn.init.normal_(self.up[-1].weight, std=1e-3)
        nn.init.zeros_(self.up[-1].bias)

    def forward(self, *maps: torch.Tensor) -> torch.Tensor:
        *stages, upsampled = maps
        y = self.smooth[-1](self.lateral[-1](stages[-1]))
        for i in range(len(stages) - 2, -1, -1):  # top-down: deep context, then finer stages
            y = F.interpolate(y, size=stages[i].shape[-2:], mode="bilinear", align_corners=False) + self.lateral[i](stages[i])
            y = self.smooth[i](y)
        r = self.up(y)
        if r.shape[-2:] != upsampled.shape[-2:]:
            r = F.interpolate(r, size=upsampled.shape[-2:], mode="bilinear", align_corners=False)
        return upsampled + r


@register
class Superres(PretextTask):
    name = "superres"
    Config = SuperresConfig
    kind = "reconstruction"
    # the release's common settings (Recipe()): reports/budget-superres.md chose 15 epochs, but neither 15 nor 30
    # gains over scratch on validation (+0.1 to +0.7 ± 0.7–1.7 points for context, inpainting and superres),
    # so it stays at the common budget rather than be retrained for a difference inside the noise

    def build_head(self, info: EncoderInfo) -> nn.Module:
        return SuperresHead(info.stage_dims, self.config.width)  # type: ignore[attr-defined]

    def _batch(self, images: torch.Tensor, gen: torch.Generator, train: bool):
        cfg: SuperresConfig = self.config  # type: ignore[assignment]
        v = make_views(images, cfg, gen, train)
        x = v.upsampled if cfg.input_mode == "upsampled" else v.small
        return {"x": normalize(x), "upsampled": v.upsampled}, v.photos

    def make_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        """→ inputs {"x": normalised encoder input (B, 3, S, S) or (B, 3, S/f, S/f), "upsampled":
        (B, 3, S, S) in [0, 1]}, targets: the original photos (B, 3, S, S) in [0, 1]."""
        return self._batch(images, gen, True)

    def eval_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        return self._batch(images, gen, False)

    def forward(self, encoder: nn.Module, head: nn.Module, inputs: dict):
        return head(*encoder.forward_stages(inputs["x"]), inputs["upsampled"])

    def loss(self, out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(out.float(), targets.float())

    def metrics(self, out: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return {"psnr": psnr(out.detach(), targets)}

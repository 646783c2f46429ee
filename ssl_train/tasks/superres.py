"""Super-resolution as a pretext task: restore a photo from a downsampled copy.

The photo (the target) is downsampled by ``factor`` (default 2; bicubic with antialiasing, so no
aliasing pattern betrays the original) and the encoder sees either that small image upsampled back
to the input size with bicubic interpolation (``input_mode="upsampled"``, default: the same input
size and statistics as every other task) or the small image itself (``"small"``, cheaper, and the
encoder must cope with a smaller scale). Inputs are normalised with ``normalize``.

A light decoder (``_decoder.UpDecoder`` from the last feature map only, 5 upsamplings to full
resolution) predicts the *residual* that is added to the bicubic upsampling: the easy part (the
low frequencies) is given, so all the loss is about the detail the features must infer (texture,
edges). Loss: L1 between the restored and the original photo (L1 rather than L2: sharper, and not
dominated by a few badly restored edges).

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
from ._decoder import UpDecoder, n_upsamplings
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
    width: int = 128  # decoder width (halves per upsampling)

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
    """(last feature map (B, C, h, w), bicubic upsampling (B, 3, S, S)) → restored image
    (B, 3, S, S) = upsampling + predicted residual (not clamped; ``restore`` clamps for display)."""

    def __init__(self, dim: int, width: int) -> None:
        super().__init__()
        self.decoder = UpDecoder(dim, 3, n_upsamplings(32, 1), width)
        nn.init.zeros_(self.decoder.net[-1].weight)  # start as plain bicubic: a sane baseline from step 0
        nn.init.zeros_(self.decoder.net[-1].bias)

    def forward(self, fmap: torch.Tensor, upsampled: torch.Tensor) -> torch.Tensor:
        return upsampled + self.decoder(fmap, out_size=tuple(upsampled.shape[-2:]))


@register
class Superres(PretextTask):
    name = "superres"
    Config = SuperresConfig
    kind = "reconstruction"

    def build_head(self, info: EncoderInfo) -> nn.Module:
        return SuperresHead(info.feature_dim, self.config.width)  # type: ignore[attr-defined]

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
        return head(encoder(inputs["x"]), inputs["upsampled"])

    def loss(self, out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(out.float(), targets.float())

    def metrics(self, out: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return {"psnr": psnr(out.detach(), targets)}

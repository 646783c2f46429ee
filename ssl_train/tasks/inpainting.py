"""Context encoders (Pathak et al., CVPR 2016): fill in a missing square of the photo.

A square hole (side ``hole_fraction`` of the image: half the side, a quarter of the area, by
default, like the paper's central region) is cut from every photo, either at the centre or, by
default, at a uniformly random position (the paper's finding: a fixed central hole lets the features
specialise to its boundary and transfers worse). The hole is filled with the mean colour ``MEAN``,
so after ``normalize`` it is exactly zero: no pixel value tells the network anything. The shared
encoder sees the masked photo; a light decoder (``_decoder.UpDecoder`` from the last feature map,
4 upsamplings to half resolution, then bilinear to full size, sigmoid) reconstructs the whole image
in [0, 1].

Loss: mean squared error over the hole, plus ``context_weight`` (default 0.05) times the mean
squared error over the rest — the small weight keeps the decoder's output consistent across the
hole's border (which is what ``fill_hole`` shows) without letting the easy, visible part dominate.
The paper's adversarial term is left out: it sharpens the picture, not the features.

Pure helpers for the app: ``hole_positions``, ``box_mask``, ``mask_image``, ``fill_hole`` and
``make_views``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import augment
from ..errors import UserError
from ._decoder import UpDecoder, n_upsamplings
from .base import MEAN, EncoderInfo, PretextTask, TaskConfig, normalize, register

MASK_MODES = ("random", "center")


def hole_side(image_size: int, hole_fraction: float) -> int:
    """Side of the square hole in px."""
    return int(round(image_size * hole_fraction))


def hole_positions(b: int, image_size: int, side: int, mode: str, gen: torch.Generator | None, device: torch.device | str) -> torch.Tensor:
    """Top-left (row, col) of each photo's hole, (B, 2) int64: centred, or uniform over all
    positions that keep the hole inside the image (``gen`` needed for "random")."""
    if mode == "center":
        return torch.full((b, 2), (image_size - side) // 2, dtype=torch.long, device=device)
    return torch.randint(0, image_size - side + 1, (b, 2), generator=gen, device=device)


def box_mask(top_left: torch.Tensor, side: int, image_size: int) -> torch.Tensor:
    """(B, 2) hole positions → mask (B, 1, S, S) float, 1 inside the hole, 0 elsewhere."""
    r = torch.arange(image_size, device=top_left.device)
    rows = (r >= top_left[:, :1]) & (r < top_left[:, :1] + side)  # (B, S)
    cols = (r >= top_left[:, 1:]) & (r < top_left[:, 1:] + side)
    return (rows[:, :, None] & cols[:, None, :]).unsqueeze(1).float()


def mask_image(img: torch.Tensor, mask: torch.Tensor, fill: tuple[float, ...] | torch.Tensor = MEAN) -> torch.Tensor:
    """Fill the hole of ``img`` (B, 3, H, W) in [0, 1] with ``fill`` (per-channel, default the
    normalisation mean, which ``normalize`` maps to 0). ``mask`` (B, 1, H, W), 1 = hole."""
    f = torch.as_tensor(fill, dtype=img.dtype, device=img.device).view(1, -1, 1, 1)
    return img * (1 - mask) + f * mask


def fill_hole(img: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The picture to show: the photo outside the hole, the prediction inside. All (B, ·, H, W);
    ``pred`` in [0, 1] (resized to ``img``'s size if needed)."""
    if pred.shape[-2:] != img.shape[-2:]:
        pred = torch.nn.functional.interpolate(pred.float(), size=img.shape[-2:], mode="bilinear", align_corners=False)
    return img * (1 - mask) + pred.to(img.dtype) * mask


@dataclass(frozen=True)
class InpaintingConfig(TaskConfig):
    mask_mode: str = "random"  # random | center
    hole_fraction: float = 0.5  # hole side / image side (0.5 → a quarter of the area)
    context_weight: float = 0.05  # weight of the squared error outside the hole
    crop_scale_min: float = 0.6  # random-resized-crop area range; 1 disables
    width: int = 128  # decoder width (halves per upsampling)

    def validate(self, image_size: int) -> None:
        if self.mask_mode not in MASK_MODES:
            raise UserError(f"mask_mode={self.mask_mode!r} is not one of {', '.join(MASK_MODES)}")
        side = hole_side(image_size, self.hole_fraction)
        if not (0 < self.hole_fraction < 1 and 2 <= side < image_size):
            raise UserError(
                f"hole_fraction={self.hole_fraction} gives a {side}-px hole in a {image_size}-px image; "
                "use a fraction in (0, 1) that leaves a hole of ≥ 2 px and some context"
            )
        if self.context_weight < 0:
            raise UserError(f"context_weight={self.context_weight} must be ≥ 0")
        if not 0 < self.crop_scale_min <= 1 or self.width < 16:
            raise UserError("crop_scale_min must be in (0, 1] and width ≥ 16")


@dataclass
class InpaintingViews:
    photos: torch.Tensor  # (B, 3, S, S) the augmented photos (the targets), [0, 1]
    masked: torch.Tensor  # (B, 3, S, S) what the encoder sees before normalize, [0, 1]
    mask: torch.Tensor  # (B, 1, S, S) 1 = hole


def make_views(images: torch.Tensor, cfg: InpaintingConfig, gen: torch.Generator, train: bool = True) -> InpaintingViews:
    """Masked photos; ``train`` False: no augmentation (hole positions still drawn from ``gen``)."""
    x = images
    if train and cfg.crop_scale_min < 1:
        x = augment.random_resized_crop(x, gen, scale=(cfg.crop_scale_min, 1.0))
    s = x.shape[-1]
    side = hole_side(s, cfg.hole_fraction)
    mask = box_mask(hole_positions(x.shape[0], s, side, cfg.mask_mode, gen, x.device), side, s).to(x.dtype)
    return InpaintingViews(x, mask_image(x, mask), mask)


class InpaintingHead(nn.Module):
    """Last feature map (B, C, h, w) → reconstructed image (B, 3, S, S) in [0, 1]."""

    def __init__(self, dim: int, image_size: int, width: int) -> None:
        super().__init__()
        self.decoder = UpDecoder(dim, 3, n_upsamplings(32, 2), width, out_size=image_size)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(fmap))


@register
class Inpainting(PretextTask):
    name = "inpainting"
    Config = InpaintingConfig
    kind = "reconstruction"
    # the release's common settings (Recipe()): reports/budget-inpainting.md chose 15 epochs, but neither 15 nor 30
    # gains over scratch on validation (+0.1 to +0.7 ± 0.7–1.7 points for context, inpainting and superres),
    # so it stays at the common budget rather than be retrained for a difference inside the noise

    def build_head(self, info: EncoderInfo) -> nn.Module:
        return InpaintingHead(info.feature_dim, info.image_size, self.config.width)  # type: ignore[attr-defined]

    def make_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        """→ inputs (B, 3, S, S) normalised masked photos, targets {"image": (B, 3, S, S) in [0, 1],
        "mask": (B, 1, S, S)}."""
        v = make_views(images, self.config, gen, train=True)  # type: ignore[arg-type]
        return normalize(v.masked), {"image": v.photos, "mask": v.mask}

    def eval_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        v = make_views(images, self.config, gen, train=False)  # type: ignore[arg-type]
        return normalize(v.masked), {"image": v.photos, "mask": v.mask}

    @staticmethod
    def _errors(out: torch.Tensor, targets: dict) -> tuple[torch.Tensor, torch.Tensor]:
        se = ((out.float() - targets["image"].float()) ** 2).mean(1, keepdim=True)  # (B, 1, S, S), channel mean
        m = targets["mask"].float()
        hole = (se * m).sum() / m.sum().clamp_min(1)
        rest = (se * (1 - m)).sum() / (1 - m).sum().clamp_min(1)
        return hole, rest

    def loss(self, out: torch.Tensor, targets: dict) -> torch.Tensor:
        hole, rest = self._errors(out, targets)
        return hole + self.config.context_weight * rest  # type: ignore[attr-defined]

    def metrics(self, out: torch.Tensor, targets: dict) -> dict[str, float]:
        hole, rest = self._errors(out.detach(), targets)
        return {"hole_mse": hole.item(), "context_mse": rest.item()}

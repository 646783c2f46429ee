"""Rotation prediction (Gidaris et al., ICLR 2018): which of 0/90/180/270° was the image turned by?

Every image of the batch appears in all four rotations in the same batch (the paper's finding: this
beats one random rotation per image). Rotations of a square image by multiples of 90° are exact
index permutations (``torch.rot90``), so no interpolation artefact can give the angle away.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import augment
from ..errors import UserError
from ..encoders import pooled
from .base import EncoderInfo, PretextTask, Recipe, TaskConfig, normalize, register

ANGLES = (0, 90, 180, 270)


def rotate(images: torch.Tensor, k: int | torch.Tensor) -> torch.Tensor:
    """Rotate (B, C, H, W) square images counter-clockwise by k·90° (exact).

    ``k`` an int rotates all; a (B,) tensor rotates each image by its own k."""
    if isinstance(k, int):
        return torch.rot90(images, k % 4, dims=(-2, -1))
    out = images.clone()
    for q in range(1, 4):
        sel = k % 4 == q
        if sel.any():
            out[sel] = torch.rot90(images[sel], q, dims=(-2, -1))
    return out


def all_rotations(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, S, S) → inputs (4B, C, S, S) in the order [all 0°, all 90°, all 180°, all 270°] and
    targets (4B,) with the rotation index 0..3 (angle = 90°·index, counter-clockwise)."""
    b = images.shape[0]
    x = torch.cat([torch.rot90(images, k, dims=(-2, -1)) for k in range(4)])
    y = torch.arange(4, device=images.device).repeat_interleave(b)
    return x, y


def four_view_turn_scores(log_probs: torch.Tensor) -> torch.Tensor:
    """Judge a photo's turn from all four of its rotations at once.

    ``log_probs`` (B, 4, 4): row k is the model's log-probabilities for the photo turned by a further
    k·90° (the order of ``all_rotations``), column j "this view is turned j·90°". If the photo is
    turned u·90°, view k is turned (u + k)·90°, so the joint log-likelihood of u is
    Σ_k log_probs[:, k, (u + k) mod 4]. Returns (B, 4) scores over u; ``argmax(1)`` is the estimate.

    One view can be ambiguous (a flower head from above); asking "which of the four views is
    upright?" pools the evidence of all four, and its answer is consistent across them by design.
    """
    k = torch.arange(4, device=log_probs.device)
    cols = (k[None, :] + k[:, None]) % 4  # cols[u, k] = (u + k) mod 4
    picked = log_probs[:, k[None, :].expand(4, 4), cols]  # (B, 4 u, 4 k)
    return picked.sum(2)


MIRROR_TURN = (0, 3, 2, 1)  # a photo turned j·90° and then mirrored is its mirror image turned (−j)·90°


def mirror(images: torch.Tensor) -> torch.Tensor:
    """Mirror (…, H, W) images left to right. A mirrored upright flower is still upright, and
    mirroring a photo turned k·90° gives its mirror image turned (−k)·90°."""
    return torch.flip(images, dims=(-1,))


def with_mirror_scores(log_probs: torch.Tensor, log_probs_mirrored: torch.Tensor) -> torch.Tensor:
    """Judge a view's turn from the view and its mirror image together.

    ``log_probs`` (…, 4): the model's log-probabilities for a view, column j "turned j·90°";
    ``log_probs_mirrored`` (…, 4): the same for ``mirror(view)``. If the view is turned j·90°, its
    mirror image is turned (−j)·90°, so the joint log-likelihood of j is
    log_probs[j] + log_probs_mirrored[(−j) mod 4]. Returns (…, 4) scores over j; ``argmax(-1)`` is
    the estimate. Needs one image only (unlike ``four_view_turn_scores``, which judges a photo
    from all four of its turns): the two looks' mistakes differ, so together they err less often.
    """
    return log_probs + log_probs_mirrored[..., list(MIRROR_TURN)]


def turns_with_mirror_scores(log_probs: torch.Tensor, log_probs_mirrored: torch.Tensor) -> torch.Tensor:
    """``with_mirror_scores`` for all four turns of a photo at once.

    ``log_probs`` (…, 4, 4): row k the photo turned k·90° (the order of ``all_rotations``);
    ``log_probs_mirrored`` (…, 4, 4): the same rows for the photo's mirror image. The mirror of the
    photo turned k·90° is the mirror image turned (−k)·90°, row ``MIRROR_TURN[k]``. Returns
    (…, 4, 4) scores, row k judged from that turn and its mirror image together."""
    return with_mirror_scores(log_probs, log_probs_mirrored[..., list(MIRROR_TURN), :])


def upright(images: torch.Tensor, predicted_k: torch.Tensor) -> torch.Tensor:
    """Undo a predicted rotation: rotate each image clockwise by its predicted k·90°."""
    return rotate(images, (-predicted_k) % 4)


@dataclass(frozen=True)
class RotationConfig(TaskConfig):
    crop_scale_min: float = 0.35  # random-resized-crop area range [min, 1] before rotating
    color_jitter: float = 0.4  # 0 disables
    hidden: int = 0  # 0: linear head on the pooled features; >0: one hidden layer of this width
    # 1: the head reads the globally pooled feature vector; g > 1: the mean of each cell of a g×g grid
    # over the last feature map, concatenated (g²·D values), so it can see *where* things are
    grid: int = 1
    # side in px of the training crops; 0: the image size. Random-resized crops magnify the photo
    # (by 1.26 on average for areas 35..100%), so a flower looks larger in training than in the
    # whole photo seen at test time; smaller crops undo that ("FixRes", Touvron et al. 2019)
    train_size: int = 0
    # >0: cut the training crops from the photos decoded at this side (px) instead of the input
    # size, then resize them to train_size (needed with it): a 35% crop of a 96-px photo is 57 px
    # blown up to 96, blurrier than the whole photos it is judged on; of a 128-px photo, 76 px
    source_size: int = 0

    def validate(self, image_size: int) -> None:
        if self.source_size and not (image_size <= self.source_size <= 512 and self.train_size):
            raise UserError(f"rotation source_size={self.source_size} must be {image_size}..512 px and needs train_size, the side the crops "
                            f"are resized to (e.g. source_size={self.source_size},train_size={image_size}); 0: crop the {image_size}-px photos")
        if self.train_size and not 16 <= self.train_size <= 2 * image_size:
            raise UserError(f"rotation train_size={self.train_size} must be 16..{2 * image_size} px (0: the image size, {image_size})")
        if not 1 <= self.grid <= 4:
            raise UserError(f"rotation grid={self.grid} must be 1..4 (1: global pooling)")
        if self.hidden < 0:
            raise UserError(f"rotation hidden={self.hidden} must be ≥ 0 (0: linear head)")


def grid_pooled(fmap: torch.Tensor, g: int) -> torch.Tensor:
    """(B, C, h, w) → (B, g·g·C): the mean of each cell of a g×g grid, row-major; cells of an
    uneven map overlap by a row or column, as ``adaptive_avg_pool2d`` does. Built from slices so that
    it exports to ONNX for any map size."""
    if g == 1:
        return pooled(fmap)
    h, w = fmap.shape[-2:]
    cells = []
    for i in range(g):
        r0, r1 = (i * h) // g, ((i + 1) * h + g - 1) // g  # ceil without negatives: ONNX's Div truncates
        for j in range(g):
            c0, c1 = (j * w) // g, ((j + 1) * w + g - 1) // g
            cells.append(fmap[:, :, r0:r1, c0:c1].mean(dim=(2, 3)))
    return torch.cat(cells, dim=1)


class RotationHead(nn.Module):
    """Last feature map (B, D, h, w) → pooled (B, D), or grid-pooled (B, g²·D) → 4 logits."""

    def __init__(self, dim: int, hidden: int, grid: int = 1) -> None:
        super().__init__()
        self.grid = grid
        d = dim * grid * grid
        if hidden > 0:
            self.net: nn.Module = nn.Sequential(nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 4))
        else:
            self.net = nn.Linear(d, 4)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.net(grid_pooled(fmap, self.grid))


@register
class Rotation(PretextTask):
    name = "rotation"
    Config = RotationConfig
    # Chosen on a validation split of the training photos (``pretrain --holdout validation``), never the test split.
    # Photos per step and epochs, reports/rotation-batch.md: at 30 epochs, 75.8% pretext accuracy on validation
    # with 16 photos per step, 75.2% with 32, 70.7% with 128 (the common batch) — the same compute in 8× the
    # steps; with 16, 60 epochs reach 78.0% (100: 77.9%; 8 photos per step at 60: 77.2%). (Its budget went with
    # its batch size, scored by pretext accuracy, not reports/budget-rotation.md's gain over scratch: that study,
    # at 128 photos per step, chose the release's common 30 epochs; 50 did not add.)
    # reports/rotation-settings.md: at 16 and 60, crops to 20%, weight decay 0.002 and peak rate 0.05 scored lower
    # (76.5–77.1%), weight decay 0.0001 and peak rate 0.2 within a few tenths (78.3%, 78.2%; one run each), so
    # rotation keeps the common ones.
    # Photo size, reports/rotation-seeds.md and reports/rotation-input.md: trained and judged at 128 px it scores
    # 78.9, 77.8 and 79.4% on validation (seeds 0-2) against 77.6, 76.9 and 78.8% at 96 px: ahead with every
    # seed. Downstream every arm, scratch included, sees the protocol's 96-px photos.
    # Options: none. reports/rotation-head.md found no head better than the pooled default at 30 epochs (70.7%
    # pooled, 70.9% hidden layer, 70.6% 2×2 grid).
    recipe = Recipe(epochs=60, batch_size=16, image_size=128, epochs_chosen_in="reports/rotation-batch.md",
                    batch_size_chosen_in="reports/rotation-batch.md", image_size_chosen_in="reports/rotation-seeds.md")

    def build_head(self, info: EncoderInfo) -> nn.Module:
        return RotationHead(info.feature_dim, self.config.hidden, self.config.grid)

    def source_size(self, image_size: int) -> int:
        return self.config.source_size or image_size  # type: ignore[attr-defined]

    def make_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        cfg: RotationConfig = self.config  # type: ignore[assignment]
        # flips are allowed: a mirrored upright flower is still upright
        x = augment.random_resized_crop(images, gen, scale=(cfg.crop_scale_min, 1.0), out_size=cfg.train_size or None)
        if cfg.color_jitter > 0:
            x = augment.color_jitter(x, gen, cfg.color_jitter, cfg.color_jitter, cfg.color_jitter)
        x, y = all_rotations(x)
        return normalize(x), y

    def loss(self, out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.float(), targets)

    def metrics(self, out: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return {"acc": (out.argmax(1) == targets).float().mean().item()}

    def eval_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        """Deterministic test-time inputs: the whole image in all four rotations, no augmentation."""
        x, y = all_rotations(images)
        return normalize(x), y

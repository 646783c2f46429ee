"""Context prediction (Doersch, Gupta & Efros, ICCV 2015): where does this patch sit relative to
the centre patch?

The photo is laid out as the same 3×3 grid of cells as the jigsaw task (``jigsaw.tile_geometry``:
square patches with a guaranteed gap between neighbours and random jitter inside each cell, so that
continuing lines or textures across a patch border cannot give the answer). A pair is the centre
patch and one of its 8 neighbours; the network classifies the neighbour's position (8 ways, labels
in reading order: 0 = top-left, 1 = top, 2 = top-right, 3 = left, 4 = right, 5 = bottom-left,
6 = bottom, 7 = bottom-right).

Both patches go through the shared encoder (siamese; inputs (2·M, 3, t, t), rows 2i and 2i+1 are the
centre and neighbour of pair i); the head pools each patch, projects it, concatenates the two
vectors and classifies with an MLP (the paper's late fusion).

Shortcut guards, as in the paper: the gap and jitter; per-patch standardisation (mean/std of each
patch and channel — **so inputs are not normalised with ``base.normalize``**, see
``jigsaw.standardize_tiles``) and random greyscale, against chromatic aberration, which otherwise
reveals where a patch was in the lens's field.

Pure helpers for the app: ``NEIGHBOUR_CELLS``, ``neighbour_offsets``, ``patch_boxes`` (rectangles
to draw the 8 positions on a photo), ``cut_pair`` and ``make_views``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import augment
from ..encoders import pooled
from ..errors import UserError
from .base import EncoderInfo, PretextTask, TaskConfig, register
from .jigsaw import (
    centred_offsets,
    cell_origins,
    crop_squares,
    random_offsets,
    standardize_tiles,
    tile_geometry,
)

CENTRE_CELL = 4
NEIGHBOUR_CELLS = (0, 1, 2, 3, 5, 6, 7, 8)  # label i ↔ cell NEIGHBOUR_CELLS[i] (reading order)
POSITION_NAMES = ("top-left", "top", "top-right", "left", "right", "bottom-left", "bottom", "bottom-right")


def neighbour_offsets() -> torch.Tensor:
    """(8, 2) int64 (d_row, d_col) in cells of each label's neighbour from the centre, e.g.
    label 0 → (-1, -1), label 4 → (0, 1)."""
    cells = torch.tensor(NEIGHBOUR_CELLS)
    return torch.stack([cells // 3 - 1, cells % 3 - 1], 1)


def patch_boxes(image_size: int, tile_size: int = 0, gap: int = 2, offsets: torch.Tensor | None = None) -> torch.Tensor:
    """Pixel boxes (top, left, bottom, right), bottom/right exclusive, of the 9 patches in reading
    order, (9, 4) int64; ``offsets`` (9, 2) in-cell offsets (None: centred). Row 4 is the centre;
    row ``NEIGHBOUR_CELLS[i]`` the position of label i. For drawing on a photo."""
    geom = tile_geometry(image_size, tile_size, gap)
    off = centred_offsets(1, geom, "cpu")[0] if offsets is None else offsets.cpu().long()
    tl = cell_origins(geom, "cpu") + off
    return torch.cat([tl, tl + geom.tile], 1)


def cut_pair(img: torch.Tensor, label: torch.Tensor, tile_size: int = 0, gap: int = 2, offsets: torch.Tensor | None = None) -> torch.Tensor:
    """``img`` (B, C, S, S), ``label`` (B,) int64 in 0..7 → (B, 2, C, t, t): [centre, neighbour].
    ``offsets`` (B, 2, 2) in-cell offsets of the two patches (None: centred). Exact pixel copies."""
    geom = tile_geometry(img.shape[-1], tile_size, gap)
    b = img.shape[0]
    if offsets is None:
        offsets = centred_offsets(b, geom, img.device, k=2)
    cells = torch.stack([torch.full_like(label, CENTRE_CELL), torch.tensor(NEIGHBOUR_CELLS, device=img.device)[label]], 1)
    pos = cell_origins(geom, img.device)[cells] + offsets  # (B, 2, 2)
    return crop_squares(img, pos[..., 0], pos[..., 1], geom.tile)


@dataclass(frozen=True)
class ContextConfig(TaskConfig):
    tile_size: int = 0  # px; 0 → 64/75 of a cell (27 px at 96 px)
    gap: int = 2  # minimum px between neighbouring patches
    jitter: bool = True  # random patch offsets inside each cell (training only)
    crop_scale_min: float = 0.6  # random-resized-crop area range first; 1 disables
    color_jitter: float = 0.4
    grayscale_p: float = 0.3
    patch_dim: int = 128  # per-patch projection in the head
    hidden: int = 256

    def validate(self, image_size: int) -> None:
        tile_geometry(image_size, self.tile_size, self.gap)
        if not 0 < self.crop_scale_min <= 1:
            raise UserError(f"crop_scale_min={self.crop_scale_min} must be in (0, 1]")
        if not 0 <= self.grayscale_p <= 1:
            raise UserError(f"grayscale_p={self.grayscale_p} must be in [0, 1]")
        if self.color_jitter < 0 or self.patch_dim < 1 or self.hidden < 1:
            raise UserError("color_jitter must be ≥ 0 and patch_dim, hidden ≥ 1")


@dataclass
class ContextViews:
    """What the model is shown, before standardisation (in [0, 1])."""

    photos: torch.Tensor  # (B, 3, S, S) augmented photos
    pairs: torch.Tensor  # (M, 2, 3, t, t) [centre, neighbour]
    label: torch.Tensor  # (M,) neighbour position 0..7
    photo_index: torch.Tensor  # (M,) which photo of the batch each pair comes from
    offsets: torch.Tensor  # (M, 2, 2) in-cell offsets, px


def make_views(images: torch.Tensor, cfg: ContextConfig, gen: torch.Generator, train: bool = True) -> ContextViews:
    """Training (``train``): one pair per photo, random position and jitter, augmented photo.
    Evaluation: all 8 pairs of every photo (M = 8·B, labels 0..7 per photo), centred patches,
    no augmentation, so the score does not depend on a draw."""
    b, dev = images.shape[0], images.device
    geom = tile_geometry(images.shape[-1], cfg.tile_size, cfg.gap)
    x = images
    if train:
        if cfg.crop_scale_min < 1:
            x = augment.random_resized_crop(x, gen, scale=(cfg.crop_scale_min, 1.0))
        if cfg.color_jitter > 0:
            x = augment.color_jitter(x, gen, cfg.color_jitter, cfg.color_jitter, cfg.color_jitter)
        if cfg.grayscale_p > 0:
            x = augment.random_grayscale(x, gen, cfg.grayscale_p)
        label = torch.randint(8, (b,), generator=gen, device=dev)
        photo = torch.arange(b, device=dev)
        offsets = random_offsets(b, geom, gen, dev, k=2) if cfg.jitter else centred_offsets(b, geom, dev, k=2)
    else:
        label = torch.arange(8, device=dev).repeat(b)
        photo = torch.arange(b, device=dev).repeat_interleave(8)
        offsets = centred_offsets(8 * b, geom, dev, k=2)
    pairs = cut_pair(x[photo], label, cfg.tile_size, cfg.gap, offsets)
    return ContextViews(x, pairs, label, photo, offsets)


class ContextHead(nn.Module):
    """Patch maps (2·M, C, h, w), rows 2i / 2i+1 = centre / neighbour of pair i → (M, 8) logits."""

    def __init__(self, dim: int, patch_dim: int, hidden: int) -> None:
        super().__init__()
        self.patch = nn.Sequential(nn.Linear(dim, patch_dim), nn.BatchNorm1d(patch_dim), nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(nn.Linear(2 * patch_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 8))

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        z = self.patch(pooled(fmap))
        return self.classifier(z.reshape(-1, 2 * z.shape[1]))  # [centre, neighbour]: order matters


@register
class Context(PretextTask):
    name = "context"
    Config = ContextConfig
    # the release's common settings (Recipe()): reports/budget-context.md chose 15 epochs, but neither 15 nor 30
    # gains over scratch on validation (+0.1 to +0.7 ± 0.7–1.7 points for context, inpainting and superres),
    # so it stays at the common budget rather than be retrained for a difference inside the noise

    def build_head(self, info: EncoderInfo) -> nn.Module:
        cfg: ContextConfig = self.config  # type: ignore[assignment]
        return ContextHead(info.feature_dim, cfg.patch_dim, cfg.hidden)

    def _batch(self, images: torch.Tensor, gen: torch.Generator, train: bool):
        v = make_views(images, self.config, gen, train)  # type: ignore[arg-type]
        m, _, c, t, _ = v.pairs.shape
        return standardize_tiles(v.pairs).reshape(2 * m, c, t, t), v.label

    def make_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        """→ inputs (2·B, 3, t, t) per-patch standardised, targets (B,) positions 0..7."""
        return self._batch(images, gen, train=True)

    def eval_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        """All 8 positions of every photo: inputs (16·B, 3, t, t), targets (8·B,)."""
        return self._batch(images, gen, train=False)

    def loss(self, out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.float(), targets)

    def metrics(self, out: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return {"acc": (out.argmax(1) == targets).float().mean().item()}

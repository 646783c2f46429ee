"""Jigsaw puzzles (Noroozi & Favaro, ECCV 2016): which permutation shuffled these nine tiles?

The image is cut into a 3×3 grid of cells; from each cell a square tile is cut at a random offset
(jitter) that always leaves at least ``gap`` pixels between neighbouring tiles, so edges and lines
cannot simply be continued across tiles. The nine tiles are shuffled by one permutation out of a
fixed set chosen greedily for maximal Hamming distance (``hamming_permutations``; the paper's
finding: the larger the minimal distance, the harder the task and the better the features), and the
network predicts which one.

Siamese: the nine tiles of every photo go through the shared encoder as one (B·9, 3, t, t) batch;
the head pools each tile's map (a 27-px tile gives a 1×1 map at stride 32), projects it, concatenates
the nine vectors in their shuffled order and classifies the permutation with an MLP. The permutation
set is a buffer of the head, so a saved model carries the exact table its logits refer to.

Shortcut guards: every tile is standardised by its own per-channel mean and std (no brightness or
contrast cue between tiles, no chromatic-aberration colour cast) — so **inputs are not normalised
with ``base.normalize``** but with ``standardize_tiles`` — and the photo is randomly greyscaled or
colour-jittered first.

Pure helpers for the app: ``tile_geometry``, ``cut_tiles``, ``apply_permutation``, ``reassemble``,
``hamming_permutations``, ``standardize_tiles``, ``tiles_to_grid`` and ``make_views`` (exactly the
tiles ``make_batch`` feeds the model, before standardisation).
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import augment
from ..encoders import pooled
from ..errors import UserError
from .base import EncoderInfo, PretextTask, TaskConfig, register

GRID = 3
N_TILES = GRID * GRID
MAX_PERMUTATIONS = math.factorial(N_TILES)  # 9! = 362880
MIN_TILE = 8  # px; below this a tile holds too little of the photo to be placed
AUTO_TILE_FRACTION = 64 / 75  # the paper's 64-px tiles in 75-px cells
STD_FLOOR = 0.02  # in [0, 1] units (~5 grey levels): flat tiles are not blown up into JPEG noise


# --------------------------------------------------------------------------------------------
# geometry and pure helpers
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TileGeometry:
    """Where tiles may lie, in pixels. Cell (r, c) starts at ``origin + (r·cell, c·cell)``; a tile
    of side ``tile`` starts at an offset in [``lo``, ``hi``] (inclusive) inside its cell, which
    keeps ≥ ``gap`` px between neighbouring tiles (2·lo ≥ gap)."""

    image_size: int
    cell: int
    tile: int
    origin: int  # the 3×3 grid is centred: (image_size - 3·cell) // 2
    lo: int
    hi: int

    @property
    def centred_offset(self) -> int:
        return (self.lo + self.hi) // 2


def tile_geometry(image_size: int, tile_size: int = 0, gap: int = 2, grid: int = GRID) -> TileGeometry:
    """The tile layout of a ``grid``×``grid`` puzzle at ``image_size`` px. ``tile_size`` 0 picks
    64/75 of the cell (27 px at 96 px), shrunk if needed to leave ``gap``. Raises ``UserError`` when
    the tiles cannot fit."""
    if gap < 0:
        raise UserError(f"gap={gap} must be ≥ 0 pixels")
    cell = image_size // grid
    margin = math.ceil(gap / 2)
    room = cell - 2 * margin  # the largest tile that keeps the gap
    if room < MIN_TILE:
        raise UserError(
            f"a {image_size}-px image is too small for a {grid}×{grid} tile grid with a {gap}-px gap: its {cell}-px cells "
            f"leave ≤ {max(room, 0)} px per tile, need ≥ {MIN_TILE}; use --image-size ≥ {grid * (MIN_TILE + 2 * margin)} or a smaller gap"
        )
    tile = tile_size if tile_size > 0 else min(int(round(cell * AUTO_TILE_FRACTION)), room)
    if not MIN_TILE <= tile <= room:
        raise UserError(
            f"tile_size={tile} does not fit the {cell}-px cells of a {image_size}-px image with a {gap}-px gap; "
            f"use tile_size in {MIN_TILE}..{room} (or 0 for automatic)"
        )
    return TileGeometry(image_size, cell, tile, (image_size - grid * cell) // 2, margin, cell - tile - margin)


def random_offsets(b: int, geom: TileGeometry, gen: torch.Generator, device: torch.device | str, k: int = N_TILES) -> torch.Tensor:
    """Random in-cell offsets (B, k, 2) int64 (row, col), uniform in [lo, hi] — the jitter."""
    return torch.randint(geom.lo, geom.hi + 1, (b, k, 2), generator=gen, device=device)


def centred_offsets(b: int, geom: TileGeometry, device: torch.device | str, k: int = N_TILES) -> torch.Tensor:
    """No jitter: every tile centred in its cell, (B, k, 2) int64."""
    return torch.full((b, k, 2), geom.centred_offset, dtype=torch.long, device=device)


def cell_origins(geom: TileGeometry, device: torch.device | str, grid: int = GRID) -> torch.Tensor:
    """Top-left pixel (row, col) of each cell in reading order, (grid², 2) int64."""
    r = torch.arange(grid, device=device).repeat_interleave(grid)
    c = torch.arange(grid, device=device).repeat(grid)
    return geom.origin + geom.cell * torch.stack([r, c], 1)


def crop_squares(img: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int) -> torch.Tensor:
    """Exact square crops (no interpolation), vectorised: ``img`` (B, C, H, W), ``top``/``left``
    (B, K) int64 pixel positions → (B, K, C, size, size). Crops must lie inside the image."""
    b = img.shape[0]
    ar = torch.arange(size, device=img.device)
    rows = (top[..., None] + ar)[..., :, None]  # (B, K, size, 1)
    cols = (left[..., None] + ar)[..., None, :]  # (B, K, 1, size)
    bi = torch.arange(b, device=img.device).view(b, 1, 1, 1)
    out = img.permute(0, 2, 3, 1)[bi, rows, cols]  # (B, K, size, size, C)
    return out.permute(0, 1, 4, 2, 3).contiguous()


def cut_tiles(img: torch.Tensor, tile_size: int = 0, gap: int = 2, offsets: torch.Tensor | None = None) -> torch.Tensor:
    """Cut the 3×3 puzzle: ``img`` (B, C, S, S) → tiles (B, 9, C, t, t) in reading order (tile
    k = 3·row + col). ``offsets`` (B, 9, 2) are the in-cell offsets (see ``random_offsets``);
    None centres every tile. Exact pixel copies of ``img``."""
    geom = tile_geometry(img.shape[-1], tile_size, gap)
    if offsets is None:
        offsets = centred_offsets(img.shape[0], geom, img.device)
    pos = cell_origins(geom, img.device).unsqueeze(0) + offsets  # (B, 9, 2)
    return crop_squares(img, pos[..., 0], pos[..., 1], geom.tile)


def apply_permutation(tiles: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Shuffle: ``out[:, j] = tiles[:, perm[j]]`` (position j shows tile perm[j]). ``tiles``
    (B, 9, ...); ``perm`` (9,) for all or (B, 9) per sample, int64."""
    b = tiles.shape[0]
    perm = perm.to(tiles.device).long().expand(b, -1)
    return tiles[torch.arange(b, device=tiles.device)[:, None], perm]


def reassemble(tiles: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Inverse of ``apply_permutation``: shuffled tiles and their ``perm`` → tiles in reading
    order. ``reassemble(apply_permutation(t, p), p) == t`` exactly."""
    return apply_permutation(tiles, torch.argsort(perm.to(tiles.device).long(), dim=-1))


def standardize_tiles(tiles: torch.Tensor) -> torch.Tensor:
    """Per tile and channel: subtract the mean, divide by the std (floored at ``STD_FLOOR``).
    (..., C, t, t) → same shape; the encoder input of this task."""
    mean = tiles.mean(dim=(-2, -1), keepdim=True)
    std = tiles.std(dim=(-2, -1), keepdim=True, unbiased=False).clamp_min(STD_FLOOR)
    return (tiles - mean) / std


def tiles_to_grid(tiles: torch.Tensor, gap: int = 2, fill: float = 1.0) -> torch.Tensor:
    """Lay 9 tiles (B, 9, C, t, t) out as a picture (B, C, 3t + 2·gap, 3t + 2·gap), ``fill`` between
    tiles. For display: pass shuffled tiles to show the puzzle, ``reassemble``d ones for the answer."""
    b, k, c, t, _ = tiles.shape
    side = GRID * t + (GRID - 1) * gap
    out = tiles.new_full((b, c, side, side), fill)
    for i in range(k):  # 9 slice copies, not a per-sample loop
        r, q = divmod(i, GRID)
        out[:, :, r * (t + gap) : r * (t + gap) + t, q * (t + gap) : q * (t + gap) + t] = tiles[:, i]
    return out


@functools.lru_cache(maxsize=1)
def _all_permutations() -> np.ndarray:
    return np.array(list(itertools.permutations(range(N_TILES))), dtype=np.int8)  # (9!, 9), lexicographic


@functools.lru_cache(maxsize=16)
def _hamming_permutations_np(n: int, seed: int) -> np.ndarray:
    allp = _all_permutations()
    rng = np.random.default_rng(seed)
    if n >= len(allp):
        return allp[rng.permutation(len(allp))].astype(np.int64)
    first = int(rng.integers(len(allp)))
    chosen = [first]
    mind = (allp != allp[first]).sum(1).astype(np.int16)  # min distance of every candidate to the set
    mind[first] = -1
    while len(chosen) < n:
        best = mind.max()
        if best <= 2:  # any two distinct permutations differ in ≥ 2 places: the rest are all ties
            rest = np.flatnonzero(mind >= 0)
            chosen.extend(rng.choice(rest, n - len(chosen), replace=False).tolist())
            break
        cand = np.flatnonzero(mind == best)
        j = int(cand[rng.integers(len(cand))])  # seeded tie-break
        chosen.append(j)
        np.minimum(mind, (allp != allp[j]).sum(1).astype(np.int16), out=mind)
        mind[j] = -1
    return allp[np.array(chosen)].astype(np.int64)


def hamming_permutations(n: int = 100, seed: int = 0) -> torch.Tensor:
    """``n`` permutations of 9 tiles, (n, 9) int64, chosen greedily: start from a random one, then
    repeatedly add the permutation whose minimal Hamming distance to those chosen is largest
    (seeded random tie-break). Deterministic in (n, seed); ~1 s for n = 100 (O(n · 9!))."""
    if not 1 < n <= MAX_PERMUTATIONS:
        raise UserError(f"n_permutations={n} must be in 2..{MAX_PERMUTATIONS} (9!)")
    return torch.from_numpy(_hamming_permutations_np(int(n), int(seed)).copy())


def min_hamming_distance(perms: torch.Tensor) -> int:
    """Smallest Hamming distance between two rows of ``perms`` (n, 9)."""
    d = (perms[:, None, :] != perms[None, :, :]).sum(-1)
    d.fill_diagonal_(N_TILES + 1)
    return int(d.min())


# --------------------------------------------------------------------------------------------
# task
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JigsawConfig(TaskConfig):
    n_permutations: int = 100  # classes; the paper's best trade-off on ImageNet
    permutation_seed: int = 0
    tile_size: int = 0  # px; 0 → 64/75 of a cell (27 px at 96 px)
    gap: int = 2  # minimum px between neighbouring tiles
    jitter: bool = True  # random tile offsets inside each cell (training only)
    crop_scale_min: float = 0.6  # random-resized-crop area range before cutting; 1 disables
    color_jitter: float = 0.4  # 0 disables
    grayscale_p: float = 0.3  # probability of a greyscale photo
    tile_dim: int = 128  # per-tile projection in the head
    hidden: int = 512  # MLP width over the 9 concatenated tile vectors

    def validate(self, image_size: int) -> None:
        if not 1 < self.n_permutations <= MAX_PERMUTATIONS:
            raise UserError(f"n_permutations={self.n_permutations} must be in 2..{MAX_PERMUTATIONS} (9!)")
        tile_geometry(image_size, self.tile_size, self.gap)
        if not 0 < self.crop_scale_min <= 1:
            raise UserError(f"crop_scale_min={self.crop_scale_min} must be in (0, 1]")
        if not 0 <= self.grayscale_p <= 1:
            raise UserError(f"grayscale_p={self.grayscale_p} must be in [0, 1]")
        if self.color_jitter < 0 or self.tile_dim < 1 or self.hidden < 1:
            raise UserError("color_jitter must be ≥ 0 and tile_dim, hidden ≥ 1")


@dataclass
class JigsawViews:
    """What ``make_batch`` shows the model, before standardisation (all in [0, 1])."""

    photos: torch.Tensor  # (B, 3, S, S) the augmented photos the tiles were cut from
    tiles: torch.Tensor  # (B, 9, 3, t, t) in shuffled order (position j holds tile perms[target][j])
    offsets: torch.Tensor  # (B, 9, 2) in-cell offsets, px
    target: torch.Tensor  # (B,) permutation index into the set
    perm: torch.Tensor  # (B, 9) the permutations themselves


def make_views(images: torch.Tensor, cfg: JigsawConfig, gen: torch.Generator, perms: torch.Tensor, train: bool = True) -> JigsawViews:
    """The puzzles for a batch: ``images`` (B, 3, S, S) in [0, 1], ``perms`` (n, 9) the set.
    ``train`` False: no augmentation, centred tiles (the permutation is still drawn from ``gen``)."""
    b, dev = images.shape[0], images.device
    x = images
    geom = tile_geometry(images.shape[-1], cfg.tile_size, cfg.gap)
    if train:
        if cfg.crop_scale_min < 1:
            x = augment.random_resized_crop(x, gen, scale=(cfg.crop_scale_min, 1.0))
        if cfg.color_jitter > 0:
            x = augment.color_jitter(x, gen, cfg.color_jitter, cfg.color_jitter, cfg.color_jitter)
        if cfg.grayscale_p > 0:
            x = augment.random_grayscale(x, gen, cfg.grayscale_p)
    offsets = random_offsets(b, geom, gen, dev) if (train and cfg.jitter) else centred_offsets(b, geom, dev)
    tiles = cut_tiles(x, cfg.tile_size, cfg.gap, offsets)
    perms = perms.to(dev)
    target = torch.randint(len(perms), (b,), generator=gen, device=dev)
    perm = perms[target]
    return JigsawViews(x, apply_permutation(tiles, perm), offsets, target, perm)


class JigsawHead(nn.Module):
    """Tile feature maps (B·9, C, h, w), 9 consecutive rows per photo → (B, n_permutations) logits.
    ``permutations`` (n, 9) int64 buffer: logit i means "shuffled by permutations[i]"."""

    def __init__(self, dim: int, permutations: torch.Tensor, tile_dim: int, hidden: int) -> None:
        super().__init__()
        self.register_buffer("permutations", permutations.clone().long())
        n = permutations.shape[0]
        self.tile = nn.Sequential(nn.Linear(dim, tile_dim), nn.BatchNorm1d(tile_dim), nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(nn.Linear(N_TILES * tile_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, n))

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        z = self.tile(pooled(fmap))  # (B·9, d), same projection for every tile (siamese)
        return self.classifier(z.reshape(-1, N_TILES * z.shape[1]))  # concatenated in shuffled order


@register
class Jigsaw(PretextTask):
    name = "jigsaw"
    Config = JigsawConfig
    # the release's common settings (Recipe()): reports/budget-jigsaw.md chose 30 epochs, the common budget

    def __init__(self, config: JigsawConfig | None = None) -> None:
        super().__init__(config)
        self._perms: dict[str, torch.Tensor] = {}

    def permutations(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The permutation set (n, 9) on ``device`` (the same table the head stores)."""
        key = str(device)
        if key not in self._perms:
            cfg: JigsawConfig = self.config  # type: ignore[assignment]
            self._perms[key] = hamming_permutations(cfg.n_permutations, cfg.permutation_seed).to(device)
        return self._perms[key]

    def build_head(self, info: EncoderInfo) -> nn.Module:
        cfg: JigsawConfig = self.config  # type: ignore[assignment]
        return JigsawHead(info.feature_dim, self.permutations(), cfg.tile_dim, cfg.hidden)

    def _batch(self, images: torch.Tensor, gen: torch.Generator, train: bool):
        v = make_views(images, self.config, gen, self.permutations(images.device), train)  # type: ignore[arg-type]
        b, k, c, t, _ = v.tiles.shape
        return standardize_tiles(v.tiles).reshape(b * k, c, t, t), v.target

    def make_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        """→ inputs (B·9, 3, t, t) per-tile standardised, targets (B,) permutation indices."""
        return self._batch(images, gen, train=True)

    def eval_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        """Whole photo, centred tiles, no colour augmentation; permutations drawn from ``gen``."""
        return self._batch(images, gen, train=False)

    def loss(self, out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.float(), targets)

    def metrics(self, out: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return {"acc": (out.argmax(1) == targets).float().mean().item()}

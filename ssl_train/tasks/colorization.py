"""Colorization (Zhang, Isola & Efros, ECCV 2016): predict the colour of a greyscale photo.

Photos are converted to CIE Lab (``kornia.color.rgb_to_lab``; L in [0, 100], a/b roughly in
[-110, 110]). The encoder sees only the lightness: ``L / 100`` repeated to 3 channels, then
``base.normalize`` — i.e. exactly what it would see for a greyscale photo downstream, so the input
statistics match the other tasks'. A light decoder (``_decoder.UpDecoder``: 3 upsampling convs from
the last feature map only) predicts the colour at a quarter of the input resolution (24×24 for
96 px, as in the paper), and ``colorize`` puts it back on the full-resolution L.

**Classification, not regression.** The ab plane is quantised into 10×10 bins (the ~260 bins of the
23×23 grid on [-110, 110]² that sRGB can reach, ``ab_bins``); every target pixel is soft-encoded over
its 5 nearest bins (Gaussian, σ = 5), and the loss is the cross-entropy, each pixel weighted by the
class-rebalancing weight of its nearest bin: w ∝ ((1-λ)·p̃ + λ/Q)⁻¹ with p̃ the bin prior of the
training photos smoothed by a σ = 5 Gaussian and λ = 1/2, scaled so that E_p̃[w] = 1. Why: colour is
multimodal (a tulip may be red, yellow, pink or white, all with the same L); an L2 regression is
minimised by the mean of the modes — a desaturated brown — so saturated, rare colours (exactly the
flowers here) give almost no gradient, and the features are pushed to model the background. A
distribution over bins can keep every mode, and rebalancing makes rare saturated colours count
(Zhang et al., §2 and Table 2). The prior is computed once, at the first epoch start, from all
training photos, and is a head buffer (saved, so a resumed run uses the same weights). Predictions
are turned back into ab by the paper's annealed mean (temperature 0.38, ``decode_ab``).

Pure helpers for the app: ``rgb_to_l_ab``, ``l_ab_to_rgb`` (round trip within 1/255), ``l_to_input``,
``ab_bins``, ``encode_ab``, ``decode_ab``, ``colorize`` and ``make_views``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F
from torch import nn

from .. import augment
from ..errors import UserError
from ._decoder import UpDecoder, n_upsamplings
from .base import EncoderInfo, EpochContext, PretextTask, Recipe, TaskConfig, normalize, register

AB_STEP = 10.0  # bin side in ab units
AB_MAX = 110.0  # bin centres at -110, -100, ..., 110
GRID = int(2 * AB_MAX / AB_STEP) + 1  # 23 centres per axis
OUT_STRIDE = 4  # ab is predicted at 1/4 of the input resolution


# --------------------------------------------------------------------------------------------
# colour space
# --------------------------------------------------------------------------------------------
def rgb_to_l_ab(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB (B, 3, H, W) in [0, 1] → L (B, 1, H, W) in [0, 100] and ab (B, 2, H, W)."""
    lab = kornia.color.rgb_to_lab(rgb.float())
    return lab[:, :1], lab[:, 1:]


def l_ab_to_rgb(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Inverse of ``rgb_to_l_ab``: L (B, 1, H, W), ab (B, 2, H, W) → RGB in [0, 1] (clipped)."""
    return kornia.color.lab_to_rgb(torch.cat([L.float(), ab.float()], 1), clip=True)


def l_to_input(L: torch.Tensor) -> torch.Tensor:
    """The encoder input: L (B, 1, H, W) in [0, 100] → (B, 3, H, W), ``normalize(L/100 × 3)``."""
    return normalize((L / 100.0).expand(-1, 3, -1, -1))


def colorize(L: torch.Tensor, ab_pred: torch.Tensor) -> torch.Tensor:
    """A viewable picture: full-resolution L (B, 1, H, W) and (possibly lower-resolution) ab
    (B, 2, h, w), upsampled bilinearly to H×W → RGB (B, 3, H, W) in [0, 1]."""
    if ab_pred.shape[-2:] != L.shape[-2:]:
        ab_pred = F.interpolate(ab_pred.float(), size=L.shape[-2:], mode="bilinear", align_corners=False)
    return l_ab_to_rgb(L, ab_pred)


# --------------------------------------------------------------------------------------------
# quantisation
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _gamut_cells() -> tuple[int, ...]:
    """Grid cells (row-major index a·23 + b on the 23×23 grid) reachable from sRGB: ab of a 64³
    sample of the RGB cube, rounded to the nearest centre."""
    v = torch.linspace(0, 1, 64)
    rgb = torch.stack(torch.meshgrid(v, v, v, indexing="ij")).reshape(1, 3, -1, 1)
    ab = kornia.color.rgb_to_lab(rgb)[0, 1:].reshape(2, -1)
    idx = ((ab + AB_MAX) / AB_STEP).round().long().clamp(0, GRID - 1)
    return tuple(sorted(set((idx[0] * GRID + idx[1]).tolist())))


def ab_bins() -> torch.Tensor:
    """The Q in-gamut bin centres (Q, 2) float32 (a, b), row-major on the grid (Q ≈ 260)."""
    cells = torch.tensor(_gamut_cells())
    return torch.stack([cells // GRID, cells % GRID], 1).float() * AB_STEP - AB_MAX


@functools.lru_cache(maxsize=8)
def _cell_to_bin(device: str = "cpu") -> torch.Tensor:
    """Grid cell → bin index (or -1 outside the gamut), (23·23,) int64, cached per device (no
    host-to-device copy per batch)."""
    lut = torch.full((GRID * GRID,), -1, dtype=torch.long)
    lut[torch.tensor(_gamut_cells())] = torch.arange(len(_gamut_cells()))
    return lut.to(device)


def encode_ab(ab: torch.Tensor, k: int = 5, sigma: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-encode ab (B, 2, h, w) over its ``k`` nearest in-gamut bins (Gaussian weights of width
    ``sigma`` ab units, summing to 1). → (bin indices (B, k, h, w) int64, weights (B, k, h, w)),
    nearest bin first. The neighbours are searched in the 3×3 grid cells around the nearest centre,
    so the cost is 9 per pixel, not Q; this is the exact k-NN except at the gamut's edge, where a
    far 5th neighbour (Gaussian weight < 1 %) may be replaced by a slightly farther one."""
    dev = ab.device
    ab = ab.float()
    centre = ((ab + AB_MAX) / AB_STEP).round().long().clamp(0, GRID - 1)  # (B, 2, h, w)
    d = torch.tensor([-1, 0, 1], device=dev)
    da, db = torch.meshgrid(d, d, indexing="ij")
    ca = centre[:, 0:1] + da.reshape(1, 9, 1, 1)  # (B, 9, h, w) candidate cells, maybe off the grid
    cb = centre[:, 1:2] + db.reshape(1, 9, 1, 1)
    on_grid = (ca >= 0) & (ca < GRID) & (cb >= 0) & (cb < GRID)
    ca, cb = ca.clamp(0, GRID - 1), cb.clamp(0, GRID - 1)
    dist2 = (ab[:, 0:1] - (ca * AB_STEP - AB_MAX)) ** 2 + (ab[:, 1:2] - (cb * AB_STEP - AB_MAX)) ** 2
    bins = torch.where(on_grid, _cell_to_bin(str(dev))[ca * GRID + cb], -1)
    dist2 = torch.where(bins >= 0, dist2, torch.full_like(dist2, float("inf")))  # out of gamut or off the grid
    dist2, order = dist2.topk(k, dim=1, largest=False)
    idx = bins.gather(1, order).clamp_min(0)
    w = torch.exp(-dist2 / (2 * sigma**2))  # exp(-inf) = 0 for missing neighbours
    return idx, w / w.sum(1, keepdim=True).clamp_min(1e-12)


def decode_ab(logits: torch.Tensor, bins: torch.Tensor, temperature: float = 0.38) -> torch.Tensor:
    """Annealed mean (Zhang et al. eq. 5): logits (B, Q, h, w) → ab (B, 2, h, w). Temperature 1 is
    the mean (desaturated), → 0 the mode (vivid but patchy); 0.38 is the paper's compromise."""
    p = torch.softmax(logits.float() / temperature, dim=1)
    return torch.einsum("bqhw,qc->bchw", p, bins.to(p.device, p.dtype))


def rebalancing_weights(counts: torch.Tensor, lam: float = 0.5, sigma: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin counts (Q,) → (smoothed prior p̃ (Q,), weights w (Q,)) with w ∝ ((1-λ)p̃ + λ/Q)⁻¹ and
    Σ p̃·w = 1. Smoothing: a Gaussian of ``sigma`` ab units over the bin grid."""
    q = counts.numel()
    dev = counts.device
    grid = torch.zeros(GRID * GRID, device=dev)
    cells = torch.tensor(_gamut_cells(), device=dev)
    grid[cells] = counts.float() / counts.sum().clamp_min(1)
    r = torch.arange(-3, 4, device=dev, dtype=torch.float32)
    g1 = torch.exp(-((r * AB_STEP) ** 2) / (2 * sigma**2))
    g1 = g1 / g1.sum()
    img = grid.view(1, 1, GRID, GRID)
    img = F.conv2d(img, g1.view(1, 1, 7, 1), padding=(3, 0))
    img = F.conv2d(img, g1.view(1, 1, 1, 7), padding=(0, 3))
    prior = img.flatten()[cells]
    prior = prior / prior.sum().clamp_min(1e-12)
    w = 1.0 / ((1 - lam) * prior + lam / q)
    return prior, w / (prior * w).sum()


# --------------------------------------------------------------------------------------------
# task
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColorizationConfig(TaskConfig):
    crop_scale_min: float = 0.5  # random-resized-crop area range; 1 disables (no colour jitter: colour is the target)
    rebalance_lambda: float = 0.5  # 1 = no rebalancing (uniform weights)
    soft_neighbours: int = 5
    soft_sigma: float = 5.0  # ab units
    temperature: float = 0.38  # annealed mean for pictures and the ab error metric
    width: int = 128  # decoder width (halves per upsampling)

    def validate(self, image_size: int) -> None:
        if not 0 < self.crop_scale_min <= 1:
            raise UserError(f"crop_scale_min={self.crop_scale_min} must be in (0, 1]")
        if not 0 <= self.rebalance_lambda <= 1:
            raise UserError(f"rebalance_lambda={self.rebalance_lambda} must be in [0, 1]")
        if not 1 <= self.soft_neighbours <= 5:
            raise UserError(f"soft_neighbours={self.soft_neighbours} must be in 1..5")
        if not (self.soft_sigma > 0 and self.temperature > 0 and self.width >= 16):
            raise UserError("soft_sigma and temperature must be > 0 and width ≥ 16")
        if image_size < 4 * OUT_STRIDE:
            raise UserError(f"--image-size {image_size} is too small for colorization; use ≥ {4 * OUT_STRIDE}")


@dataclass
class ColorizationViews:
    photos: torch.Tensor  # (B, 3, S, S) the augmented colour photos
    L: torch.Tensor  # (B, 1, S, S) in [0, 100]: what the encoder sees (via l_to_input)
    ab: torch.Tensor  # (B, 2, S/4, S/4) the target colours (area-averaged)


def make_views(images: torch.Tensor, cfg: ColorizationConfig, gen: torch.Generator, train: bool = True) -> ColorizationViews:
    x = images
    if train and cfg.crop_scale_min < 1:
        x = augment.random_resized_crop(x, gen, scale=(cfg.crop_scale_min, 1.0))
    L, ab = rgb_to_l_ab(x.clamp(0, 1))
    s = max(1, x.shape[-1] // OUT_STRIDE)
    return ColorizationViews(x, L, F.adaptive_avg_pool2d(ab, s))


class ColorizationHead(nn.Module):
    """Last feature map (B, C, h, w) → bin logits (B, Q, S/4, S/4). Buffers: ``bins`` (Q, 2) the ab
    centres, ``prior`` and ``class_weights`` (Q,) set from the training photos, ``prior_ready``."""

    def __init__(self, dim: int, image_size: int, width: int) -> None:
        super().__init__()
        bins = ab_bins()
        q = len(bins)
        self.register_buffer("bins", bins)
        self.register_buffer("prior", torch.full((q,), 1.0 / q))
        self.register_buffer("class_weights", torch.ones(q))
        self.register_buffer("prior_ready", torch.zeros((), dtype=torch.bool))
        self.decoder = UpDecoder(dim, q, n_upsamplings(32, OUT_STRIDE), width, out_size=max(1, image_size // OUT_STRIDE))

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.decoder(fmap)


@register
class Colorization(PretextTask):
    name = "colorization"
    Config = ColorizationConfig
    kind = "reconstruction"
    # +8.7 points over scratch on validation at 60 epochs vs +5.6 at 30
    recipe = Recipe(epochs=60, epochs_chosen_in="reports/budget-colorization.md")

    def build_head(self, info: EncoderInfo) -> nn.Module:
        return ColorizationHead(info.feature_dim, info.image_size, self.config.width)  # type: ignore[attr-defined]

    def make_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        """→ inputs (B, 3, S, S) = ``l_to_input(L)``, targets {"ab": (B, 2, S/4, S/4)}."""
        v = make_views(images, self.config, gen, train=True)  # type: ignore[arg-type]
        return l_to_input(v.L), {"ab": v.ab}

    def eval_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        v = make_views(images, self.config, gen, train=False)  # type: ignore[arg-type]
        return l_to_input(v.L), {"ab": v.ab}

    def forward(self, encoder: nn.Module, head: nn.Module, inputs: torch.Tensor):
        """→ {"logits": (B, Q, S/4, S/4), "class_weights": (Q,), "bins": (Q, 2)}: the head's
        buffers travel with the output because ``loss`` has no access to the head."""
        return {"logits": head(encoder(inputs)), "class_weights": head.class_weights, "bins": head.bins}

    def loss(self, out, targets) -> torch.Tensor:
        cfg: ColorizationConfig = self.config  # type: ignore[assignment]
        logp = torch.log_softmax(out["logits"].float(), dim=1)
        idx, w = encode_ab(targets["ab"], cfg.soft_neighbours, cfg.soft_sigma)
        ce = -(w * logp.gather(1, idx)).sum(1)  # (B, h, w) soft-target cross-entropy
        v = out["class_weights"].float()[idx[:, 0]]  # rebalancing weight of the nearest bin
        return (v * ce).mean()

    def metrics(self, out, targets) -> dict[str, float]:
        ab = decode_ab(out["logits"].detach(), out["bins"], self.config.temperature)  # type: ignore[attr-defined]
        return {"ab_rmse": ((ab - targets["ab"].float()) ** 2).sum(1).mean().sqrt().item()}

    @torch.no_grad()
    def on_epoch_start(self, ctx: EpochContext) -> None:
        """Once per run (the first epoch; a resumed run has it in the checkpoint): the ab-bin prior
        of all training photos at the target resolution → class-rebalancing weights."""
        head = ctx.head
        if bool(head.prior_ready):
            return
        counts = torch.zeros(len(head.bins), device=head.bins.device)
        for i in range(0, len(ctx.images), 256):  # chunks: bounded memory at any dataset size
            x = ctx.images[i : i + 256].float().div(255.0).to(head.bins.device)
            _, ab = rgb_to_l_ab(x)
            nearest, _ = encode_ab(F.adaptive_avg_pool2d(ab, max(1, x.shape[-1] // OUT_STRIDE)), 1)
            counts += torch.bincount(nearest.flatten(), minlength=len(counts)).float()
        lam = self.config.rebalance_lambda  # type: ignore[attr-defined]
        prior, w = rebalancing_weights(counts, lam, self.config.soft_sigma)  # type: ignore[attr-defined]
        head.prior.copy_(prior)
        head.class_weights.copy_(w)
        head.prior_ready.fill_(True)

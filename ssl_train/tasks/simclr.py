"""SimCLR: instance discrimination between two augmented views (Chen et al., ICML 2020).

The pretext label is the photo's identity: two independently augmented views of the same photo
(random resized crop and flip, colour jitter, greyscale) must embed closer to each other than to the
views of every other photo in the batch — Exemplar-CNN's idea (Dosovitskiy et al. 2014) with the
normalised-temperature cross-entropy (NT-Xent) over in-batch negatives:

- views: ``two_views`` (pure, shared by training and the app), inputs (2B, 3, S, S) ordered
  [first views of all photos, second views of all photos];
- head: the projection MLP ``g`` (Linear–BN–ReLU–Linear) on the pooled last feature map; the loss
  reads ``g``'s output, the downstream methods read the encoder's pooled features before ``g``;
- loss: for view i with partner p(i), −log( exp(s_i,p(i)/τ) / Σ_{j≠i} exp(s_ij/τ) ), s the cosine
  similarity, averaged over all 2B views;
- metric ``acc``: the share of views whose most similar other view is their partner (top-1 among
  2B − 1 candidates; chance 1/(2B − 1), so it depends on the batch size — the test split is scored
  in batches of 128 photos, ``train.pretext_scores``' default, the last one smaller).

Under torchrun the views of every rank are gathered (``distributed.all_gather_cat_grad``), as the
paper gathered every core's: each view's candidates are all 2B views of the global batch, so N
processes train what one does with the same global batch (up to per-rank augmentation draws and
batch-norm statistics). The logged training ``acc`` stays per rank (2b − 1 candidates).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import augment
from ..distributed import all_gather_cat_grad
from ..encoders import pooled
from ..errors import UserError
from .base import EncoderInfo, PretextTask, Recipe, TaskConfig, normalize, register


@dataclass(frozen=True)
class SimCLRConfig(TaskConfig):
    embed_dim: int = 128  # projection output
    hidden: int = 512  # projection MLP width
    temperature: float = 0.2  # τ; 0.2 suits batches of a few hundred views
    crop_scale_min: float = 0.2  # random-resized-crop area range [min, 1]
    color_jitter: float = 0.4  # brightness, contrast, saturation strength
    color_p: float = 0.8  # probability of colour jitter per view
    grayscale_p: float = 0.2

    def validate(self, image_size: int) -> None:
        if self.temperature <= 0:
            raise UserError(f"temperature={self.temperature} must be > 0")
        if self.embed_dim < 1 or self.hidden < 1:
            raise UserError(f"embed_dim={self.embed_dim} and hidden={self.hidden} must be ≥ 1")
        if not 0 < self.crop_scale_min <= 1 or not 0 <= self.grayscale_p <= 1 or not 0 <= self.color_p <= 1 or self.color_jitter < 0:
            raise UserError("crop_scale_min must be in (0, 1], grayscale_p and color_p in [0, 1], color_jitter ≥ 0")


def augment_view(images: torch.Tensor, cfg: SimCLRConfig, gen: torch.Generator) -> torch.Tensor:
    """One augmented view of each photo: (B, 3, S, S) in [0, 1] → same, every draw from ``gen``."""
    v = augment.random_resized_crop(images, gen, scale=(cfg.crop_scale_min, 1.0))
    if cfg.color_jitter > 0 and cfg.color_p > 0:
        v = augment.color_jitter(v, gen, cfg.color_jitter, cfg.color_jitter, cfg.color_jitter, p=cfg.color_p)
    if cfg.grayscale_p > 0:
        v = augment.random_grayscale(v, gen, cfg.grayscale_p)
    return v


def two_views(images: torch.Tensor, cfg: SimCLRConfig, gen: torch.Generator) -> torch.Tensor:
    """(B, 3, S, S) in [0, 1] → (2B, 3, S, S): [first views of all B photos, second views]."""
    return torch.cat([augment_view(images, cfg, gen), augment_view(images, cfg, gen)])


def partner_index(n_views: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(2B,) the row of each view's partner in the [first views, second views] order."""
    b = n_views // 2
    return torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(device)


def similarity_logits(z: torch.Tensor, temperature: float, candidates: torch.Tensor | None = None, offset: int = 0) -> torch.Tensor:
    """(n, d) projections → (n, N) cosine similarities / τ to ``candidates`` (N, d; default ``z``
    itself, N = n), fp32, with each view's own column (``offset + i``: ``z`` is rows offset … offset+n
    of ``candidates``) at −inf so that it is never a candidate."""
    cand = z if candidates is None else candidates
    s = F.normalize(z.float(), dim=1) @ F.normalize(cand.float(), dim=1).T / temperature
    rows = torch.arange(z.shape[0], device=s.device)
    own = torch.zeros_like(s, dtype=torch.bool)
    own[rows, rows + offset] = True
    return s.masked_fill(own, float("-inf"))


def nt_xent(z: torch.Tensor, temperature: float, candidates: torch.Tensor | None = None, offset: int = 0) -> torch.Tensor:
    """NT-Xent of (2b, d) projections in [first views, second views] order (scalar, mean over 2b),
    against ``candidates`` (every rank's views, this rank's at ``offset``; default ``z``)."""
    return F.cross_entropy(similarity_logits(z, temperature, candidates, offset), offset + partner_index(z.shape[0], z.device))


class ProjectionHead(nn.Module):
    """Last feature map (B, C, h, w) → {"projection": (B, embed_dim)}, not normalised (a dict, so
    the exported model.onnx names the output "projection", not "logits")."""

    def __init__(self, dim: int, hidden: int, embed_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, embed_dim))

    def forward(self, fmap: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"projection": self.mlp(pooled(fmap))}


@register
class SimCLR(PretextTask):
    name = "simclr"
    Config = SimCLRConfig
    # +20.0 points over scratch on validation at 200 epochs vs +15.0 at 60
    recipe = Recipe(epochs=200, epochs_chosen_in="reports/budget-simclr.md")

    def build_head(self, info: EncoderInfo) -> nn.Module:
        cfg: SimCLRConfig = self.config  # type: ignore[assignment]
        return ProjectionHead(info.feature_dim, cfg.hidden, cfg.embed_dim)

    def make_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        """→ inputs (2B, 3, S, S) normalised, targets None (each view's positive is its partner)."""
        return normalize(two_views(images, self.config, gen)), None  # type: ignore[arg-type]

    def loss(self, out: dict[str, torch.Tensor], targets) -> torch.Tensor:
        z = out["projection"]
        # a training step (gradients on) contrasts with every rank's views; scoring held-out photos
        # (no_grad, on rank 0 alone under torchrun) with its own batch's, so no rank waits for another
        cand, offset = all_gather_cat_grad(z) if torch.is_grad_enabled() else (z, 0)
        return nt_xent(z, self.config.temperature, cand, offset)  # type: ignore[attr-defined]

    def metrics(self, out: dict[str, torch.Tensor], targets) -> dict[str, float]:
        """acc: share of views whose nearest other view (cosine) is their partner."""
        z = out["projection"].detach()
        with torch.no_grad():
            hit = similarity_logits(z, 1.0).argmax(1) == partner_index(z.shape[0], z.device)
        return {"acc": hit.float().mean().item()}

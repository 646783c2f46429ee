"""Synthetic imagery (Ren & Lee, "Cross-Domain Self-supervised Multi-task Feature Learning using
Synthetic Imagery", CVPR 2018): learn from rendered scenes whose every pixel's depth, surface normal
and object contour are known for free, and adapt the features to real photos.

**Rendered domain.** Every step renders as many scenes as there are photos in the batch with
``ssl_train.render`` (procedural flowers on ground and sky or a blurred backdrop, from side view to
top view; all draws from the training generator, so a resumed run renders the same scenes). Nothing
is stored. The encoder sees a rendered picture; three light dense heads (each a
``_decoder.UpDecoder`` from the last feature map to stride 4, resized to the input size, as the
other dense tasks) predict, per pixel:

* ``depth``: the log of the camera-space z-depth (scene units; the sky at the scene's far depth).
  Loss: the scale-invariant log error of Eigen et al. (the paper's choice),
  ``mean(d²) − 0.5·mean(d)²`` with d = prediction − target per image: the 0.5 leaves half of a
  global scale error unpunished, since one picture cannot tell how far away things are.
* ``normals``: unit surface normals in camera coordinates (x right, y up, z towards the camera).
  Loss: ``1 − cos`` between the (normalised) prediction and the truth, averaged over pixels.
* ``contours``: logits of "the visible object changes here" (sigmoid → probability). Loss: binary
  cross-entropy with each image's classes balanced by the edge / non-edge ratio (HED's weighting:
  edges are ~5 % of pixels; unweighted, "no edge anywhere" would be nearly optimal).

**Real domain and adaptation.** The photos of the training batch (labels unused) are the real
domain. With ``adapt`` (default) the encoder runs on [renders; photos], and a discriminator (an MLP on
the pooled last feature map) learns to tell rendered (1) from real (0), with binary cross-entropy.
Its input passes a **gradient-reversal layer** (Ganin & Lempitsky 2015) of weight ``grl_weight`` = 0.1:
forward the identity, backward the gradient times −0.1, so in one backward pass the discriminator
descends its loss while the encoder *ascends* it, learning features in which renders and photos look
alike. Why a GRL rather than the paper's alternating GAN updates: the training loop has one loss, one
backward and one optimizer step per batch (the task contract), and two-player updates would need a
second optimizer and step that the contract cannot express; the GRL reaches the same saddle point
(min over the discriminator, max over the encoder of its loss) within the contract, and keeps the
discriminator's weights in the head, so checkpoints and resumed runs carry it. ``adapt=false`` is the
ablation: renders only, no discriminator.

The discriminator runs only in training mode: in eval mode (scoring, export) the head returns just
``depth``, ``normals`` and ``contours``, so the exported model.onnx outputs ``features``, ``depth``,
``normals`` and ``contours``. Its accuracy is a training metric (``disc_acc``: 0.5 is chance, the
goal of adaptation); ``domain_accuracy`` measures it on held-out photos.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders import pooled
from ..errors import UserError
from ..render import render
from ..render_scenes import RenderConfig
from ._decoder import UpDecoder, n_upsamplings
from .base import EncoderInfo, PretextTask, Recipe, TaskConfig, normalize, register

OUT_STRIDE = 4  # the dense heads' resolution before resizing to the input: 24×24 for 96 px
MIN_DEPTH = 1e-3  # scene units; log depth is taken of depths clamped to at least this


class _GradReverse(torch.autograd.Function):
    """Identity forward; gradient × (−weight) backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:  # type: ignore[override]
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return -ctx.weight * grad, None


def _dot3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel dot product of (B, 3, H, W) fields → (B, 1, H, W). Written out over the three
    channels: torch's CPU reductions over dim 1 of this layout (norm, sum, cosine_similarity) are
    ~10× slower, and were most of a training step."""
    return (a[:, 0:1] * b[:, 0:1] + a[:, 1:2] * b[:, 1:2]) + a[:, 2:3] * b[:, 2:3]


def unit_normals(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) → unit vectors along each pixel's 3 channels (zero stays ~zero)."""
    return x * torch.rsqrt(_dot3(x, x) + 1e-12)


def grad_reverse(x: torch.Tensor, weight: float) -> torch.Tensor:
    """Gradient-reversal layer: ``x`` unchanged, its gradient multiplied by −``weight``."""
    return _GradReverse.apply(x, weight)


@dataclass(frozen=True)
class SyntheticConfig(TaskConfig):
    adapt: bool = True  # domain adaptation to the real photos (False: the ablation, renders only)
    grl_weight: float = 0.1  # gradient reversal: the encoder gets −grl_weight × the discriminator's gradient
    disc_hidden: int = 256  # width of the discriminator's hidden layer
    depth_weight: float = 1.0
    normals_weight: float = 1.0
    contours_weight: float = 1.0
    si_weight: float = 0.5  # λ of the scale-invariant term of the depth loss (Eigen et al.: 0.5)
    width: int = 64  # width of each dense head (halves per upsampling)
    # the rendered scenes (see ssl_train.render_scenes.RenderConfig); image size = the input size
    flowers: tuple[int, int] = RenderConfig.flowers
    petals: tuple[int, int] = RenderConfig.petals
    leaves: tuple[int, int] = RenderConfig.leaves
    elevation_deg: tuple[float, float] = RenderConfig.elevation_deg
    blurred_background: float = RenderConfig.blurred_background

    def render_config(self, image_size: int) -> RenderConfig:
        return RenderConfig(image_size=image_size, flowers=tuple(self.flowers), petals=tuple(self.petals),  # type: ignore[arg-type]
                            leaves=tuple(self.leaves), elevation_deg=tuple(self.elevation_deg),  # type: ignore[arg-type]
                            blurred_background=self.blurred_background)

    def validate(self, image_size: int) -> None:
        self.render_config(image_size).validate()
        if not 0.0 <= self.grl_weight <= 10.0:
            raise UserError(f"synthetic grl_weight={self.grl_weight:g} must be 0..10 (0.1: Ren & Lee's adversarial weight)")
        if self.disc_hidden < 1:
            raise UserError(f"synthetic disc_hidden={self.disc_hidden} must be ≥ 1")
        for name in ("depth_weight", "normals_weight", "contours_weight"):
            if getattr(self, name) < 0:
                raise UserError(f"synthetic {name}={getattr(self, name):g} must be ≥ 0")
        if self.depth_weight + self.normals_weight + self.contours_weight <= 0:
            raise UserError("synthetic depth_weight, normals_weight and contours_weight are all 0; give one a positive weight")
        if not 0.0 <= self.si_weight <= 1.0:
            raise UserError(f"synthetic si_weight={self.si_weight:g} must be 0..1 (0: plain log MSE, 1: fully scale-invariant)")
        if self.width < 16:
            raise UserError(f"synthetic width={self.width} must be ≥ 16")


class SyntheticHead(nn.Module):
    """Last feature map (B, D, h, w) → {"depth": (B, 1, S, S) log depth, "normals": (B, 3, S, S)
    unit vectors, "contours": (B, 1, S, S) logits}; in training mode with a discriminator, the batch
    is [renders; photos] in equal halves: the dense heads read the rendered half only, and "domain"
    (2·B',) holds the discriminator's logits (rendered = 1) of every row, through the gradient
    reversal."""

    def __init__(self, dim: int, image_size: int, width: int, adapt: bool, grl_weight: float, disc_hidden: int) -> None:
        super().__init__()
        n_up = n_upsamplings(32, OUT_STRIDE)
        self.depth = UpDecoder(dim, 1, n_up, width, out_size=image_size)
        self.normals = UpDecoder(dim, 3, n_up, width, out_size=image_size)
        self.contours = UpDecoder(dim, 1, n_up, width, out_size=image_size)
        self.grl_weight = grl_weight
        self.discriminator: nn.Module | None = (
            nn.Sequential(nn.Linear(dim, disc_hidden), nn.LeakyReLU(0.2, inplace=True), nn.Linear(disc_hidden, 1)) if adapt else None
        )

    def forward(self, fmap: torch.Tensor) -> dict[str, torch.Tensor]:
        adversarial = self.training and self.discriminator is not None
        dense = fmap[: fmap.shape[0] // 2] if adversarial else fmap
        out = {
            "depth": self.depth(dense),
            "normals": unit_normals(self.normals(dense)),
            "contours": self.contours(dense),
        }
        if adversarial:
            out["domain"] = self.discriminator(grad_reverse(pooled(fmap), self.grl_weight)).squeeze(1)  # type: ignore[misc]
        return out


def depth_loss(pred: torch.Tensor, target: torch.Tensor, si_weight: float = 0.5) -> torch.Tensor:
    """Scale-invariant log-depth error (Eigen et al. 2014): per image mean(d²) − λ·mean(d)², averaged
    over images; ``pred``, ``target`` (B, 1, H, W) log depths."""
    d = (pred.float() - target.float()).flatten(1)
    return ((d * d).mean(1) - si_weight * d.mean(1) ** 2).mean()


def normals_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − cosine between (B, 3, H, W) predicted and true normals, averaged over pixels."""
    return (1 - _cos(pred, target)).mean()


def _cos(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) cosine between (B, 3, H, W) fields (the prediction re-normalised)."""
    p = pred.float()
    return (_dot3(p, target.float()) * torch.rsqrt(_dot3(p, p) + 1e-12)).clamp(-1, 1)


def contours_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Class-balanced binary cross-entropy (HED): per image, edge pixels weighted by the share of
    non-edge pixels and non-edge pixels by the share of edges. (B, 1, H, W) logits and 0/1 targets."""
    t = target.float()
    pos = t.flatten(1).mean(1).view(-1, 1, 1, 1)  # share of edge pixels
    w = t * (1 - pos) + (1 - t) * pos
    bce = F.binary_cross_entropy_with_logits(logits.float(), t, weight=w, reduction="none")
    return 2 * bce.flatten(1).mean(1).mean()  # ×2: a balanced image's weights average 1/2


@register
class Synthetic(PretextTask):
    name = "synthetic"
    Config = SyntheticConfig
    kind = "reconstruction"
    # the release's common settings: 30 epochs beat 15 and 60 on validation (+2.8 ± 1.2 vs +1.7 ± 2.1
    # and +2.2 ± 2.0 over scratch at 10% labels, reports/budget-synthetic.md)
    recipe = Recipe()

    def build_head(self, info: EncoderInfo) -> nn.Module:
        cfg: SyntheticConfig = self.config  # type: ignore[assignment]
        return SyntheticHead(info.feature_dim, info.image_size, cfg.width, cfg.adapt, cfg.grl_weight, cfg.disc_hidden)

    def _renders(self, images: torch.Tensor, gen: torch.Generator):
        cfg: SyntheticConfig = self.config  # type: ignore[assignment]
        scene = render(cfg.render_config(images.shape[-1]), images.shape[0], gen)
        targets = {
            "depth": scene.depth.clamp_min(MIN_DEPTH).log().to(images.device),
            "normals": scene.normals.to(images.device),
            "contours": scene.contours.to(images.device),
        }
        return normalize(scene.rgb.to(images.device, images.dtype)), targets

    def make_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        """→ inputs (2B, 3, S, S): B rendered scenes, then the B photos (B only without ``adapt``);
        targets {"depth": (B, 1, S, S) log depth, "normals": (B, 3, S, S), "contours": (B, 1, S, S),
        "domain": (2B,) 1 rendered / 0 real (with ``adapt``)}."""
        x, targets = self._renders(images, gen)
        if self.config.adapt:  # type: ignore[attr-defined]
            b = images.shape[0]
            x = torch.cat([x, normalize(images)])
            targets["domain"] = torch.cat([torch.ones(b, device=x.device), torch.zeros(b, device=x.device)])
        return x, targets

    def eval_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        """Rendered scenes only, from the caller's fixed-seed generator: the dense predictions are
        scored; the discriminator does not run in eval mode (see ``domain_accuracy``)."""
        return self._renders(images, gen)

    def _parts(self, out: dict, targets: dict) -> dict[str, torch.Tensor]:
        cfg: SyntheticConfig = self.config  # type: ignore[assignment]
        parts = {
            "depth": depth_loss(out["depth"], targets["depth"], cfg.si_weight),
            "normals": normals_loss(out["normals"], targets["normals"]),
            "contours": contours_loss(out["contours"], targets["contours"]),
        }
        if "domain" in out and "domain" in targets:
            parts["disc"] = F.binary_cross_entropy_with_logits(out["domain"].float(), targets["domain"].float())
        return parts

    def loss(self, out: dict, targets: dict) -> torch.Tensor:
        cfg: SyntheticConfig = self.config  # type: ignore[assignment]
        p = self._parts(out, targets)
        total = cfg.depth_weight * p["depth"] + cfg.normals_weight * p["normals"] + cfg.contours_weight * p["contours"]
        # the discriminator's loss at full weight: its own layers descend it; the reversal layer
        # hands the encoder −grl_weight × its gradient
        return total + p["disc"] if "disc" in p else total

    @torch.no_grad()
    def metrics(self, out: dict, targets: dict) -> dict[str, float]:
        p = self._parts(out, targets)
        d = (out["depth"].float() - targets["depth"].float()).flatten(1)
        cos = _cos(out["normals"], targets["normals"])
        edge = targets["contours"].bool()
        hit = (out["contours"] > 0) == edge
        stats = {
            "depth_loss": p["depth"].item(),
            "normals_loss": p["normals"].item(),
            "contours_loss": p["contours"].item(),
            "depth_rmse_log": d.pow(2).mean().sqrt().item(),  # log units: 0.1 ≈ 10 % off
            "normals_deg": torch.rad2deg(torch.acos(cos)).mean().item(),  # mean angle error, degrees
            # balanced accuracy of the contour map: the mean of the edge and non-edge recalls
            "contours_bacc": 0.5 * ((hit & edge).sum() / edge.sum().clamp_min(1) + (hit & ~edge).sum() / (~edge).sum().clamp_min(1)).item(),
        }
        if "disc" in p:
            stats["disc_loss"] = p["disc"].item()
            stats["disc_acc"] = ((out["domain"] > 0).float() == targets["domain"]).float().mean().item()
        return stats


@torch.no_grad()
def domain_accuracy(task: Synthetic, encoder: nn.Module, head: SyntheticHead, photos: torch.Tensor, gen: torch.Generator) -> float:
    """The discriminator's accuracy at telling ``len(photos)`` fresh renders (drawn from ``gen``)
    from ``photos`` (B, 3, S, S) in [0, 1], e.g. held-out ones; encoder and head in eval mode (the
    state they are restored to afterwards). 0.5 is chance: what adaptation aims for."""
    if head.discriminator is None:
        raise UserError("this synthetic model was trained without adaptation (adapt=false): it has no discriminator")
    was_e, was_h = encoder.training, head.training
    encoder.eval()
    head.eval()
    try:
        x, _ = task._renders(photos, gen)
        feats = pooled(encoder(torch.cat([x, normalize(photos)])))
        logits = head.discriminator(feats).squeeze(1)
        labels = torch.cat([torch.ones(len(photos)), torch.zeros(len(photos))]).to(logits.device)
        return ((logits > 0).float() == labels).float().mean().item()
    finally:
        encoder.train(was_e)
        head.train(was_h)

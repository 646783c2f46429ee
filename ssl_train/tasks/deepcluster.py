"""DeepCluster (Caron, Bojanowski, Joulin & Douze, ECCV 2018): classify photos into the clusters of
their own features, re-clustered every epoch.

At every epoch start (``on_epoch_start``): embed all training photos with the current encoder
(``ctx.embed``: pooled last-stage features, eval mode, un-augmented), PCA-whiten them to
``pca_dim`` dimensions and L2-normalise (as the paper), run k-means (``kmeans``: batched Lloyd
iterations in torch on the training device, seeded from ``ctx.generator``; k = 50 by default, for
a few thousand photos), and store the cluster ids as pseudo-labels in a head buffer. The epoch
then trains encoder + MLP + classifier to predict each photo's pseudo-label from an augmented view.

- **Empty clusters** (a trivial-solution guard from the paper) are re-seeded during k-means by
  splitting a large cluster: the empty centroid becomes a copy of a cluster chosen with probability
  ∝ its size−1, the two copies pushed apart by a relative ±1/1024 (the faiss rule the paper used).
- **Uniform sampling over clusters** (the other guard: otherwise one huge cluster is a good
  solution) cannot be done by resampling, since the loop fixes the batch order; instead every
  photo's loss is weighted by N / (K_nonempty · |its cluster|), so each cluster carries the same
  total weight per epoch (weights average 1).
- **Cluster ids are carried over** from one clustering to the next (``match_clusters``, default on):
  k-means numbers its clusters arbitrarily, so the new clusters are renumbered by the one-to-one
  matching that agrees most with the previous epoch's pseudo-labels (Hungarian assignment on their
  k × k contingency table, ``match_ids``), and the classifier keeps what it learnt. The paper instead
  **re-initialises the classifier** every epoch (N(0, 0.01) weights, zero bias, drawn from
  ``ctx.generator``; ``match_clusters=false`` does that, in place with its optimizer momentum
  cleared). Under the paper's constant learning rate that is harmless; under this loop's cosine
  decay it is not: in the last epochs the rate is too small for a fresh classifier to learn anything
  in one epoch, so training accuracy fell back to chance (50 clusters: from 21% at epoch 14 to 1.7% at
  epoch 30, loss ln 50) and the pretext test score measured an untrained layer.
- Colour: the paper feeds Sobel edges to avoid clustering by colour; the shared 3-channel encoder
  here cannot take that, so random greyscale and colour jitter on the training views play that part.

The pseudo-labels and per-photo weights (N,) are sized from ``ctx.images`` (the head does not know N
when it is built); they are reloaded with their saved size (see ``_buffers``). Held-out photos have
no pseudo-label: ``eval_batch`` omits ``index`` and the target is the nearest centroid of the photo's
whitened features (PCA and centroids are head buffers), i.e. "does the classifier agree with the
clustering on new photos".
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import augment
from ..distributed import all_reduce_mean
from ..encoders import pooled
from ..errors import UserError
from ._buffers import resize_for_load
from .base import EncoderInfo, EpochContext, PretextTask, Recipe, TaskConfig, normalize, register

SPLIT_EPS = 1.0 / 1024  # relative perturbation when splitting a cluster (faiss)


# --------------------------------------------------------------------------------------------
# pure helpers: PCA-whitening and k-means
# --------------------------------------------------------------------------------------------
def pca_whiten(x: torch.Tensor, dim: int, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit PCA-whitening on ``x`` (N, D): → mean (D,), projection (D, dim) so that
    ``(x - mean) @ proj`` has unit variance along its top principal axes. Axes beyond the rank
    (dim > min(N-1, D)) are zero columns."""
    x = x.double()  # the eigen-decomposition of a covariance is precision-sensitive
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc / max(1, len(x) - 1)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    evals, evecs = evals.flip(0), evecs.flip(1)
    proj = torch.zeros(x.shape[1], dim, dtype=x.dtype, device=x.device)
    r = min(dim, x.shape[1], max(1, len(x) - 1))
    proj[:, :r] = evecs[:, :r] / torch.sqrt(evals[:r].clamp_min(0) + eps)
    return mean.float(), proj.float()


def whiten(x: torch.Tensor, mean: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """Features (N, D) → PCA-whitened, L2-normalised (N, dim): what k-means clusters."""
    return F.normalize((x.float() - mean) @ proj, dim=1)


def assign(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Nearest centroid (squared Euclidean) of each row of ``x`` (N, d) → (N,) int64, in chunks
    of ``chunk`` rows so memory stays O(chunk · k)."""
    c2 = (centroids * centroids).sum(1)
    out = [((c2 - 2 * x[i : i + chunk] @ centroids.T)).argmin(1) for i in range(0, len(x), chunk)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


def reseed_empty(centroids: torch.Tensor, counts: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Split a large cluster into every empty one. ``centroids`` (k, d), ``counts`` (k,) →
    (new centroids, new counts, how many were empty). For each empty j: pick l with probability
    ∝ counts−1, set c_j = c_l ⊙ (1 ± ε), c_l = c_l ⊙ (1 ∓ ε) (alternating signs per dimension,
    ε = 1/1024) and give each half of l's count."""
    centroids, counts = centroids.clone(), counts.clone()
    empty = (counts == 0).nonzero().flatten().tolist()  # loop over empty clusters only (few), not samples
    sign = torch.ones(centroids.shape[1], device=centroids.device, dtype=centroids.dtype)
    sign[1::2] = -1
    for j in empty:
        p = (counts - 1).clamp_min(0).float()
        if p.sum() <= 0:
            break  # no cluster has two members: nothing to split
        l = int(torch.multinomial(p, 1, generator=gen))
        centroids[j] = centroids[l] * (1 + SPLIT_EPS * sign)
        centroids[l] = centroids[l] * (1 - SPLIT_EPS * sign)
        counts[j] = counts[l] // 2
        counts[l] -= counts[j]
    return centroids, counts, len(empty)


def kmeans(x: torch.Tensor, k: int, gen: torch.Generator, n_iter: int = 20, init: torch.Tensor | None = None,
           chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Lloyd's k-means on ``x`` (N, d) (any device; all randomness from ``gen``, on that device).

    Initial centroids: ``k`` distinct random rows (or ``init`` (k, d)). Each iteration assigns in
    chunks (``assign``), recomputes centroids with one ``index_add_`` and re-seeds empty clusters
    (``reseed_empty``). → (centroids (k, d), labels (N,), number of re-seedings). After the last
    iteration empty clusters are re-seeded and re-assigned again (up to 5 rounds), so with at least
    k distinct points every cluster ends non-empty."""
    n = len(x)
    if k > n:
        raise UserError(f"k-means with k={k} needs at least {k} points, got {n}")
    x = x.float()
    c = x[torch.randperm(n, generator=gen, device=x.device)[:k]].clone() if init is None else init.to(x).clone()
    reseeded = 0
    for _ in range(n_iter):
        labels = assign(x, c, chunk)
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(c).index_add_(0, labels, x)
        c = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None].to(x.dtype), c)
        c, counts, e = reseed_empty(c, counts, gen)
        reseeded += e
    labels = assign(x, c, chunk)
    for _ in range(5):
        counts = torch.bincount(labels, minlength=k)
        if (counts > 0).all():
            break
        c, _, e = reseed_empty(c, counts, gen)
        reseeded += e
        labels = assign(x, c, chunk)
    return c, labels, reseeded


def match_ids(new: torch.Tensor, old: torch.Tensor, k: int) -> torch.Tensor:
    """Renumbering of the new clusters that agrees most with the old pseudo-labels: ``new``, ``old``
    (N,) cluster ids in [0, k) of the same photos → ``perm`` (k,) int64, a permutation, such that
    ``perm[new]`` equals ``old`` for as many photos as any one-to-one renumbering can make it."""
    from scipy.optimize import linear_sum_assignment

    table = torch.zeros(k, k, dtype=torch.long)
    table.index_put_((new.cpu(), old.cpu()), torch.ones(len(new), dtype=torch.long), accumulate=True)
    rows, cols = linear_sum_assignment(table.numpy(), maximize=True)
    perm = torch.empty(k, dtype=torch.long)
    perm[torch.as_tensor(rows)] = torch.as_tensor(cols)
    return perm.to(new.device)


def balanced_weights(labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per-sample weights (N,) = N / (K_nonempty · |cluster|): every non-empty cluster gets the
    same total weight, the mean weight is 1. The stand-in for the paper's uniform sampling."""
    counts = torch.bincount(labels, minlength=k).float()
    nonempty = (counts > 0).sum()
    return len(labels) / (nonempty * counts[labels])


# --------------------------------------------------------------------------------------------
# task
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeepClusterConfig(TaskConfig):
    k: int = 50  # clusters (the paper: 10k for 1.3 M photos; ~50 suits a few thousand)
    pca_dim: int = 64  # whitened dimensions clustered (capped at the feature width)
    kmeans_iters: int = 20
    hidden: int = 256  # MLP between the pooled features and the classifier (kept across epochs)
    match_clusters: bool = True  # renumber new clusters to agree with the last ones; False: the paper's re-initialisation
    crop_scale_min: float = 0.35
    color_jitter: float = 0.4
    grayscale_p: float = 0.2

    def validate(self, image_size: int) -> None:
        if self.k < 2:
            raise UserError(f"k={self.k} must be at least 2 clusters")
        if self.pca_dim < 1 or self.kmeans_iters < 1 or self.hidden < 1:
            raise UserError("pca_dim, kmeans_iters and hidden must be ≥ 1")
        if not 0 < self.crop_scale_min <= 1 or not 0 <= self.grayscale_p <= 1 or self.color_jitter < 0:
            raise UserError("crop_scale_min must be in (0, 1], grayscale_p in [0, 1], color_jitter ≥ 0")


class DeepClusterHead(nn.Module):
    """Feature map (B, C, h, w) → (logits (B, k), nearest centroid (B,) int64 of the whitened pooled
    features). Buffers: ``labels``, ``weights`` (N,) pseudo-labels and loss weights of the training
    photos; ``centroids`` (k, p), ``pca_mean`` (C,), ``pca_proj`` (C, p) of the last clustering."""

    def __init__(self, dim: int, k: int, pca_dim: int, hidden: int) -> None:
        super().__init__()
        p = min(pca_dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(hidden, k)
        self.register_buffer("labels", torch.zeros(0, dtype=torch.long))
        self.register_buffer("weights", torch.zeros(0))
        self.register_buffer("centroids", torch.zeros(k, p))
        self.register_buffer("pca_mean", torch.zeros(dim))
        self.register_buffer("pca_proj", torch.zeros(dim, p))

    def forward(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = pooled(fmap)
        with torch.no_grad():
            nearest = assign(whiten(v.detach(), self.pca_mean, self.pca_proj), self.centroids)
        return self.classifier(self.mlp(v)), nearest

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        resize_for_load(self, state_dict, prefix, ["labels", "weights"])  # N is known only from the data
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)


@register
class DeepCluster(PretextTask):
    name = "deepcluster"
    Config = DeepClusterConfig
    # +2.3 points over scratch on validation at 60 epochs vs +1.0 at 30
    recipe = Recipe(epochs=60, epochs_chosen_in="reports/budget-deepcluster.md")

    def build_head(self, info: EncoderInfo) -> nn.Module:
        cfg: DeepClusterConfig = self.config  # type: ignore[assignment]
        return DeepClusterHead(info.feature_dim, cfg.k, cfg.pca_dim, cfg.hidden)

    def make_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        """→ inputs {"x": normalised augmented photos (B, 3, S, S), "index": (B,) rows of the
        pseudo-label buffer}, targets None (the pseudo-labels live in the head)."""
        cfg: DeepClusterConfig = self.config  # type: ignore[assignment]
        x = augment.random_resized_crop(images, gen, scale=(cfg.crop_scale_min, 1.0))
        if cfg.color_jitter > 0:
            x = augment.color_jitter(x, gen, cfg.color_jitter, cfg.color_jitter, cfg.color_jitter)
        if cfg.grayscale_p > 0:
            x = augment.random_grayscale(x, gen, cfg.grayscale_p)
        return {"x": normalize(x), "index": index.to(images.device).long()}, None

    def eval_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        """Held-out photos, un-augmented, no index: scored against their nearest centroid."""
        return {"x": normalize(images)}, None

    def forward(self, encoder: nn.Module, head: nn.Module, inputs: dict) -> dict:
        """→ {"logits" (B, k), "assigned" (B,) nearest centroid[, "labels", "weights" (B,) of the
        photos' rows when "index" is given]}."""
        logits, nearest = head(encoder(inputs["x"]))
        out = {"logits": logits, "assigned": nearest}
        index = inputs.get("index")
        if index is not None:
            if head.labels.numel() == 0:
                raise RuntimeError("DeepCluster has no pseudo-labels yet: on_epoch_start must run before the first batch")
            out["labels"] = head.labels[index]
            out["weights"] = head.weights[index]
        return out

    def loss(self, out: dict, targets) -> torch.Tensor:
        labels = out.get("labels", out["assigned"])
        ce = F.cross_entropy(out["logits"].float(), labels, reduction="none")
        w = out.get("weights")
        if w is None:
            return ce.mean()
        return (w * ce).sum() / w.sum().clamp_min(1e-12)

    def metrics(self, out: dict, targets) -> dict[str, float]:
        labels = out.get("labels", out["assigned"])
        return {"acc": (out["logits"].argmax(1) == labels).float().mean().item()}

    @torch.no_grad()
    def on_epoch_start(self, ctx: EpochContext) -> None:
        """Cluster the training photos' current features; pseudo-labels and weights → head. The
        first epoch (or every epoch with ``match_clusters=false``) (re-)initialises the classifier;
        later ones renumber the clusters to match the previous pseudo-labels."""
        cfg: DeepClusterConfig = self.config  # type: ignore[assignment]
        head = ctx.head
        n = ctx.images.shape[0]
        if cfg.k > n:
            raise UserError(f"deepcluster k={cfg.k} is more than the {n} training photos; use --task-opt k=N with N ≤ {n}")
        dev = head.centroids.device
        # averaged over torchrun ranks (identity for one process): batch-norm statistics may differ
        # slightly per rank, and every rank must derive the same pseudo-labels (gen is shared)
        feats = all_reduce_mean(ctx.embed(ctx.images).float()).to(dev)
        mean, proj = pca_whiten(feats, head.centroids.shape[1])
        z = whiten(feats, mean, proj)
        centroids, labels, _ = kmeans(z, cfg.k, ctx.generator, cfg.kmeans_iters)
        first = head.labels.shape != labels.shape
        carry_over = cfg.match_clusters and not first
        if carry_over:
            perm = match_ids(labels, head.labels, cfg.k)
            labels = perm[labels]
            centroids = torch.empty_like(centroids).index_copy_(0, perm, centroids)  # new cluster j is now perm[j]
        head.pca_mean.copy_(mean)
        head.pca_proj.copy_(proj)
        head.centroids.copy_(centroids)
        weights = balanced_weights(labels, cfg.k)
        if first:  # first epoch: size the per-photo buffers
            head.labels = torch.zeros_like(labels, device=dev)
            head.weights = torch.zeros(n, device=dev, dtype=head.weights.dtype)
        head.labels.copy_(labels)  # in place afterwards: the buffers stay the same tensors
        head.weights.copy_(weights)
        if carry_over:
            return  # the classifier's rows still mean the same clusters
        w = head.classifier.weight
        w.copy_(torch.randn(w.shape, generator=ctx.generator, device=ctx.generator.device).to(w) * 0.01)
        head.classifier.bias.zero_()
        ctx.reset_optimizer_state(head.classifier.parameters())  # no stale momentum on fresh weights

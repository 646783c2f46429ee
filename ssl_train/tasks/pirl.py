"""PIRL: Pretext-Invariant Representation Learning (Misra & van der Maaten, CVPR 2020).

Instead of predicting the jigsaw permutation (which makes features *covary* with the shuffle), PIRL
asks that a photo and its shuffled tiles embed alike, and unlike other photos:

- image branch: the augmented photo → encoder → pool → linear ``f`` → 128-d, L2-normalised;
- jigsaw branch: 9 tiles cut with gap and jitter (``jigsaw.cut_tiles``), shuffled by a uniformly
  random permutation (``jigsaw.apply_permutation``), each colour-jittered on its own → shared
  encoder as a (B·9, 3, t, t) batch → pool → linear per tile → concatenated (in shuffled order) →
  linear ``g`` → 128-d, L2-normalised. Tiles are normalised with ``normalize``, like the photo (no
  per-tile standardisation: there is no position to give away here).
- a memory bank ``m`` (N, 128) of per-photo embeddings, an exponential moving average of ``f``:
  ``m_I ← normalise(0.5·m_I + 0.5·f(I))`` after every step that sees photo I (only those rows change).

Loss (paper eq. 5): L = λ·L_NCE(m_I, g(I_t)) + (1-λ)·L_NCE(m_I, f(I)), λ = 0.5, with the binary NCE
of Wu et al. 2018 that PIRL uses: L_NCE(m_I, v) = -log h(m_I, v) - Σ_{I'} log(1 - h(m_I', v)) over
``n_negatives`` bank rows drawn uniformly (the photo itself excluded), where
h(u, v) = exp(s/τ) / (exp(s/τ) + n_neg · Ẑ/N), s the cosine similarity, τ = 0.07, and the partition
function Ẑ estimated from the negatives of the batch (N·mean exp(s/τ), no gradient) — in log space,
so it never overflows. Vectorised: one matmul against the bank, one gather, no per-sample loop.

**Memory bank allocation.** The bank needs N, the number of training photos, which the head does
not know when it is built (``EncoderInfo`` has no N, and a config field would make the user state
it). It is therefore allocated in ``on_epoch_start`` from ``ctx.images.shape[0]`` (before the first
step) and initialised with the current network's ``f`` of every photo (``ctx.embed``), so the first
negatives are real photos, not noise. A bank of a wrong size there (another split) is a
``UserError``. To keep ``load_state_dict`` working (a fresh head's bank is (0, 128), a saved one
(N, 128)), the head resizes its bank to the incoming tensor's shape in ``_load_from_state_dict``;
a resumed run therefore restores the exact bank. ``index`` given to ``make_batch`` must be rows of
that bank: the loop passes positions in the training-subset tensor, 0..N_train-1. Under torchrun
each rank sees a shard of the batch; the bank update gathers every rank's rows
(``distributed.all_gather_cat``), so all ranks keep identical banks.

Evaluation (``eval_batch`` on held-out photos, which have no bank row): the positive is the photo's
own ``f`` and only the jigsaw term is scored; the bank is never written outside training mode.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import augment
from ..distributed import all_gather_cat, all_reduce_mean
from ..encoders import pooled
from ..errors import UserError
from ._buffers import resize_for_load
from .base import EncoderInfo, EpochContext, PretextTask, Recipe, TaskConfig, normalize, register
from .jigsaw import N_TILES, apply_permutation, centred_offsets, cut_tiles, random_offsets, tile_geometry


def nce_loss(s_pos: torch.Tensor, s_neg: torch.Tensor, valid: torch.Tensor, temperature: float) -> torch.Tensor:
    """Binary NCE (Wu et al. 2018, as used by PIRL), averaged over the batch.

    ``s_pos`` (B,) cosine similarity of each photo to its positive, ``s_neg`` (B, m) to its sampled
    negatives, ``valid`` (B, m) bool (False drops a negative, e.g. the photo itself). With
    P(i|v) = exp(s/τ)/Z and uniform noise 1/N: h = P / (P + m/N) = σ(s/τ − log(m·Z/N)), with
    Z/N = mean exp(s/τ) over the batch's negatives (detached), so N itself cancels."""
    valid_f = valid.float()
    m = valid_f.sum(1).clamp_min(1.0)
    lneg = s_neg / temperature
    n_valid = valid_f.sum().clamp_min(1.0)
    log_mean_exp = (torch.logsumexp(lneg.masked_fill(~valid, float("-inf")).flatten(), 0) - n_valid.log()).detach()
    shift = m.log() + log_mean_exp  # (B,) log(m · Z / N)
    pos_term = -F.logsigmoid(s_pos / temperature - shift)
    neg_term = -(F.logsigmoid(-(lneg - shift[:, None])) * valid_f).sum(1)
    return (pos_term + neg_term).mean()


@dataclass(frozen=True)
class PIRLConfig(TaskConfig):
    embed_dim: int = 128
    temperature: float = 0.07
    bank_momentum: float = 0.5  # weight of the old memory in the EMA (the paper's 0.5)
    n_negatives: int = 1024  # bank rows drawn per photo (uniform, with replacement)
    loss_lambda: float = 0.5  # weight of the jigsaw term; 1-λ on the image term
    crop_scale_min: float = 0.35  # image branch: random-resized-crop area range
    color_jitter: float = 0.4  # both branches (per tile in the jigsaw branch)
    grayscale_p: float = 0.2
    tile_size: int = 0  # jigsaw branch: px, 0 → automatic (27 px at 96 px)
    gap: int = 2
    jitter: bool = True

    def validate(self, image_size: int) -> None:
        tile_geometry(image_size, self.tile_size, self.gap)
        if not (self.temperature > 0 and 0 <= self.bank_momentum < 1 and 0 <= self.loss_lambda <= 1):
            raise UserError("temperature must be > 0, bank_momentum in [0, 1) and loss_lambda in [0, 1]")
        if self.n_negatives < 1 or self.embed_dim < 1:
            raise UserError(f"n_negatives={self.n_negatives} and embed_dim={self.embed_dim} must be ≥ 1")
        if not 0 < self.crop_scale_min <= 1 or not 0 <= self.grayscale_p <= 1 or self.color_jitter < 0:
            raise UserError("crop_scale_min must be in (0, 1], grayscale_p in [0, 1], color_jitter ≥ 0")


@dataclass
class PIRLViews:
    """The two views of each photo, in [0, 1] (before ``normalize``)."""

    image: torch.Tensor  # (B, 3, S, S)
    tiles: torch.Tensor  # (B, 9, 3, t, t) shuffled: position j holds tile perm[j]
    perm: torch.Tensor  # (B, 9)


def make_views(images: torch.Tensor, cfg: PIRLConfig, gen: torch.Generator, train: bool = True) -> PIRLViews:
    """Training: independently augmented photo and tiles (tiles cut from their own random crop,
    jittered, shuffled by a uniform random permutation, colour-augmented per tile). ``train``
    False: the photo itself and its centred tiles, shuffled (permutation from ``gen``)."""
    b, dev = images.shape[0], images.device
    geom = tile_geometry(images.shape[-1], cfg.tile_size, cfg.gap)
    if train:
        img = augment.random_resized_crop(images, gen, scale=(cfg.crop_scale_min, 1.0))
        if cfg.color_jitter > 0:
            img = augment.color_jitter(img, gen, cfg.color_jitter, cfg.color_jitter, cfg.color_jitter)
        if cfg.grayscale_p > 0:
            img = augment.random_grayscale(img, gen, cfg.grayscale_p)
        src = augment.random_resized_crop(images, gen, scale=(0.6, 1.0))
        off = random_offsets(b, geom, gen, dev) if cfg.jitter else centred_offsets(b, geom, dev)
    else:
        img, src, off = images, images, centred_offsets(b, geom, dev)
    tiles = cut_tiles(src, cfg.tile_size, cfg.gap, off)
    perm = torch.argsort(torch.rand(b, N_TILES, generator=gen, device=dev), dim=1)  # uniform over 9!
    tiles = apply_permutation(tiles, perm)
    if train:
        flat = tiles.reshape(b * N_TILES, *tiles.shape[2:])  # every tile its own colour draw
        if cfg.color_jitter > 0:
            flat = augment.color_jitter(flat, gen, cfg.color_jitter, cfg.color_jitter, cfg.color_jitter)
        if cfg.grayscale_p > 0:
            flat = augment.random_grayscale(flat, gen, cfg.grayscale_p)
        tiles = flat.reshape(tiles.shape)
    return PIRLViews(img, tiles, perm)


class PIRLHead(nn.Module):
    """(photo maps (B, C, h, w), tile maps (B·9, C, h', w')) → (f (B, d), g (B, d)), not yet
    normalised. ``bank`` (N, d) buffer: the memory, (0, d) until ``on_epoch_start`` sizes it."""

    def __init__(self, dim: int, embed_dim: int) -> None:
        super().__init__()
        self.f = nn.Linear(dim, embed_dim)
        self.g_tile = nn.Linear(dim, embed_dim)
        self.g = nn.Linear(N_TILES * embed_dim, embed_dim)
        self.register_buffer("bank", torch.zeros(0, embed_dim))

    def forward(self, img_fmap: torch.Tensor, tile_fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.f(pooled(img_fmap))
        t = self.g_tile(pooled(tile_fmap))
        return f, self.g(t.reshape(-1, N_TILES * t.shape[1]))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        resize_for_load(self, state_dict, prefix, ["bank"])  # N is known only from the data
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)


@register
class PIRL(PretextTask):
    name = "pirl"
    Config = PIRLConfig
    # +12.6 points over scratch on validation at 60 epochs vs +5.9 at 30
    recipe = Recipe(epochs=60, epochs_chosen_in="reports/budget-pirl.md")

    def build_head(self, info: EncoderInfo) -> nn.Module:
        return PIRLHead(info.feature_dim, self.config.embed_dim)  # type: ignore[attr-defined]

    def _batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor | None, train: bool):
        cfg: PIRLConfig = self.config  # type: ignore[assignment]
        v = make_views(images, cfg, gen, train)
        b = images.shape[0]
        inputs = {
            "image": normalize(v.image),
            "tiles": normalize(v.tiles.reshape(b * N_TILES, *v.tiles.shape[2:])),
            # negatives are drawn here (``gen``) as uniforms; forward maps them to bank rows (N is the head's)
            "neg_u": torch.rand(b, cfg.n_negatives, generator=gen, device=images.device),
        }
        if index is not None:
            inputs["index"] = index.to(images.device).long()
        return inputs, None

    def make_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        """→ inputs {"image": (B, 3, S, S), "tiles": (B·9, 3, t, t), both normalised, "neg_u":
        (B, n_negatives) uniforms, "index": (B,) bank rows}, targets None (the positives are the
        bank rows of ``index``)."""
        return self._batch(images, gen, index, True)

    def eval_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        """Held-out photos have no bank row: no "index"; the positive is the photo's own f."""
        return self._batch(images, gen, None, False)

    def forward(self, encoder: nn.Module, head: nn.Module, inputs: dict) -> dict:
        """Embeds both views, scores them against the bank and — in training mode only — writes the
        batch's rows of the bank (EMA). → {"pos_g", "neg_g", "valid"[, "pos_f", "neg_f"]}:
        cosine similarities (B,) / (B, m) and the negatives mask."""
        cfg: PIRLConfig = self.config  # type: ignore[assignment]
        bank_rows = head.bank.shape[0]
        if bank_rows == 0:
            raise RuntimeError("PIRL memory bank is empty: on_epoch_start must run before the first batch")
        f, g = head(encoder(inputs["image"]), encoder(inputs["tiles"]))
        with torch.autocast(device_type=f.device.type, enabled=False):  # similarities / τ need fp32
            f = F.normalize(f.float(), dim=1)
            g = F.normalize(g.float(), dim=1)
            bank = head.bank.detach().clone()  # snapshot: the in-place update below must not touch autograd's copy
            neg_idx = (inputs["neg_u"] * bank_rows).long().clamp_max(bank_rows - 1)  # (B, m) uniform rows
            index = inputs.get("index")
            train = head.training and index is not None
            pos = bank[index] if train else f.detach()
            valid = neg_idx != index[:, None] if train else torch.ones_like(neg_idx, dtype=torch.bool)
            out = {"pos_g": (g * pos).sum(1), "neg_g": (g @ bank.T).gather(1, neg_idx), "valid": valid}
            if train:
                out["pos_f"] = (f * pos).sum(1)
                out["neg_f"] = (f @ bank.T).gather(1, neg_idx)
                with torch.no_grad():  # under torchrun every rank applies every rank's rows: banks stay equal
                    rows, f_all = all_gather_cat(index), all_gather_cat(f.detach())
                    new = F.normalize(cfg.bank_momentum * head.bank[rows].float() + (1 - cfg.bank_momentum) * f_all, dim=1)
                    head.bank.index_copy_(0, rows, new.to(head.bank.dtype))
        return out

    def loss(self, out: dict, targets) -> torch.Tensor:
        cfg: PIRLConfig = self.config  # type: ignore[assignment]
        lg = nce_loss(out["pos_g"], out["neg_g"], out["valid"], cfg.temperature)
        if "pos_f" not in out:
            return lg
        lf = nce_loss(out["pos_f"], out["neg_f"], out["valid"], cfg.temperature)
        return cfg.loss_lambda * lg + (1 - cfg.loss_lambda) * lf

    def metrics(self, out: dict, targets) -> dict[str, float]:
        """acc: fraction of photos whose tiles are closer to their positive than to every negative."""
        neg = out["neg_g"].detach().masked_fill(~out["valid"], -math.inf).max(1).values
        return {"acc": (out["pos_g"].detach() > neg).float().mean().item()}

    @torch.no_grad()
    def on_epoch_start(self, ctx: EpochContext) -> None:
        """Allocate the bank (N = training photos) on the first epoch: f of every photo."""
        head = ctx.head
        n = ctx.images.shape[0]
        if head.bank.shape[0] == n:
            return
        if head.bank.shape[0] != 0:
            raise UserError(
                f"the PIRL memory bank has {head.bank.shape[0]} rows but the training split has {n} photos; "
                "resume with the same data and split, or start a new run with --out NEW_DIR"
            )
        # averaged over torchrun ranks (identity for one process): every rank starts from the same bank
        feats = all_reduce_mean(ctx.embed(ctx.images).float()).to(head.f.weight.device, head.f.weight.dtype)
        head.bank = F.normalize(head.f(feats).float(), dim=1).to(head.bank.dtype)

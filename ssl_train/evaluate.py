"""Downstream evaluation on the fixed test split: kNN, linear probe, fine-tuning.

Every method trains on a labelled subset of the training split only and is scored once on the test
split. Hyper-parameters are fixed in advance (kNN's k, fine-tuning's schedule), chosen by
cross-validation on the labelled subset (the linear probe's C) or on a validation split of the
training photos (each encoder's fine-tuning learning rate, ``finetune_lr``); the test split never chooses.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import augment
from .encoders import EncoderConfig, build_encoder, pooled
from .errors import UserError
from .tasks.base import normalize
from .runtime import as_float, lr_at, resolve_device

KNN_K = 20
PROBE_CS = (0.01, 0.1, 1.0, 10.0)


def scores(pred: np.ndarray, true: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Accuracy, per-class accuracy and confusion matrix (rows true, columns predicted)."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (true, pred), 1)
    per_class = [float(cm[c, c] / cm[c].sum()) if cm[c].sum() else float("nan") for c in range(n_classes)]
    return {"test_accuracy": float((pred == true).mean()), "per_class_accuracy": per_class, "confusion": cm.tolist()}


@torch.no_grad()
def extract_features(encoder: nn.Module, images_u8: torch.Tensor, device: torch.device, batch: int = 256) -> list[np.ndarray]:
    """uint8 (N, 3, S, S) → one array per encoder stage of globally pooled features (N, C_i)."""
    encoder.eval().to(device)
    per_stage: list[list[torch.Tensor]] = []
    for i in range(0, len(images_u8), batch):
        x = normalize(as_float(images_u8[i : i + batch].to(device), False))
        maps = encoder.forward_stages(x)
        if not per_stage:
            per_stage = [[] for _ in maps]
        for s, m in enumerate(maps):
            per_stage[s].append(pooled(m).float().cpu())
    return [torch.cat(p).numpy() for p in per_stage]


def knn_eval(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, n_classes: int, k: int = KNN_K) -> dict[str, Any]:
    """Distance-weighted cosine kNN (k fixed in advance, capped at the labelled count)."""
    from sklearn.neighbors import KNeighborsClassifier

    k_used = min(k, len(train_x))
    clf = KNeighborsClassifier(n_neighbors=k_used, metric="cosine", weights="distance", algorithm="brute")
    clf.fit(train_x, train_y)
    return {**scores(clf.predict(test_x), test_y, n_classes), "k": k_used}


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, n_classes: int, seed: int) -> dict[str, Any]:
    """Standardised features → multinomial logistic regression. C is chosen by stratified k-fold
    cross-validation on the labelled subset (k = min(3, smallest class count)); with fewer than two
    photos in some class no CV is possible and C = 1 is used (recorded as ``c_chosen_by``)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def model(c: float):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))

    min_count = int(np.bincount(train_y, minlength=n_classes)[np.unique(train_y)].min())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if min_count >= 2:
            folds = StratifiedKFold(n_splits=min(3, min_count), shuffle=True, random_state=seed)
            cv = {c: float(cross_val_score(model(c), train_x, train_y, cv=folds).mean()) for c in PROBE_CS}
            best = max(PROBE_CS, key=lambda c: (cv[c], -abs(math.log10(c))))
            how = "cv"
        else:
            cv, best, how = {}, 1.0, "fixed (a class has one labelled photo)"
        clf = model(best).fit(train_x, train_y)
    return {**scores(clf.predict(test_x), test_y, n_classes), "C": best, "c_chosen_by": how, "cv_accuracy": cv.get(best)}


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning schedule, fixed in advance and identical for scratch and pretrained encoders;
    the protocol may give each encoder its own ``lr``, chosen on validation (``finetune_lr``).

    Steps = ``epochs`` passes over the labelled subset, clamped to [min_steps, max_steps], so the
    1% subset still gets enough updates and a very large ``--data`` set a bounded time. The cap is
    set above what this dataset's full training split needs (30 × 44 = 1320 steps): an earlier cap of
    500 gave the 100% subset 11 epochs and the 50% subset 23, so scratch scored more with half the labels."""

    epochs: int = 30
    min_steps: int = 100
    max_steps: int = 2000
    batch_size: int = 64
    lr: float = 0.03
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    crop_scale_min: float = 0.35
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.min_steps < 1 or self.max_steps < self.min_steps:
            raise UserError("fine-tune epochs and min steps must be ≥ 1 and max steps ≥ min steps")
        if self.batch_size < 2:
            raise UserError(f"--ft-batch-size {self.batch_size} must be at least 2")
        if not self.lr > 0:
            raise UserError(f"--ft-lr {self.lr} must be positive")

    def steps_for(self, n: int) -> int:
        per_epoch = math.ceil(n / min(self.batch_size, n))
        return int(min(self.max_steps, max(self.min_steps, self.epochs * per_epoch)))

    def to_dict(self) -> dict:
        return asdict(self)


class Classifier(nn.Module):
    """Encoder + linear layer on the pooled last stage: (B, 3, S, S) normalised → (B, classes)."""

    def __init__(self, encoder: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.fc = nn.Linear(encoder.feature_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(pooled(self.encoder(x)))


@torch.no_grad()
def predict(model: nn.Module, images_u8: torch.Tensor, device: torch.device, batch: int = 256) -> np.ndarray:
    """uint8 (N, 3, S, S) → class probabilities (N, classes), eval mode."""
    model.eval()
    out = [F.softmax(model(normalize(as_float(images_u8[i : i + batch].to(device), False))).float(), 1).cpu() for i in range(0, len(images_u8), batch)]
    return torch.cat(out).numpy()


def _watched(watch: Callable[[int, int, float | None, Classifier], None] | None, step: int, total: int, loss: float | None, model: Classifier) -> None:
    """Call ``finetune``'s ``watch`` so that it cannot change the run: the training draws from its own
    generators, the global CPU random state is put back (a watcher may draw from it), and so is train
    mode (scoring switches batch norm to its running statistics)."""
    if watch is None:
        return
    with torch.random.fork_rng(devices=[]):
        watch(step, total, loss, model)
    model.train()


def finetune(
    encoder_state: dict[str, torch.Tensor] | None,
    enc_cfg: EncoderConfig,
    train_u8: torch.Tensor,
    train_y: np.ndarray,
    n_classes: int,
    cfg: FinetuneConfig,
    seed: int,
    on_step: Callable[[int, int, float], bool | None] | None = None,
    watch: Callable[[int, int, float | None, Classifier], None] | None = None,
) -> tuple[Classifier, dict[str, Any]]:
    """Fine-tune the whole encoder (from ``encoder_state``, or random init when None) plus a linear
    layer on a labelled set: uint8 (n, 3, S, S), labels (n,). SGD with Nesterov momentum, warm-up
    and cosine decay, random resized crops and flips. ``on_step(step, total, loss)`` may return
    True to stop early (the app's stop button). Returns the model (eval mode) and a log.

    ``watch(step, total, loss, model)``, if given, sees the model before the first update (step 0,
    loss None) and after each update (step ≥ 1, that step's loss): it may score it (eval mode, no
    gradients; ``replay`` records test accuracy this way) but must not change its weights. The model
    goes back to train mode after each call and the CPU random state is restored, so a run with a
    ``watch`` trains exactly as one without."""
    dev = resolve_device(cfg.device)
    torch.manual_seed(seed)
    encoder = build_encoder(enc_cfg)
    if encoder_state is not None:
        encoder.load_state_dict(encoder_state)
    model = Classifier(encoder, n_classes).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    n = len(train_u8)
    bs = min(cfg.batch_size, n)
    total = cfg.steps_for(n)
    warm = max(1, total // 20)
    gen = torch.Generator(device=dev).manual_seed(seed)
    perm_gen = torch.Generator().manual_seed(seed)
    images = train_u8.to(dev)
    labels = torch.as_tensor(train_y, device=dev)
    losses: list[float] = []
    t0 = time.time()
    order = torch.randperm(n, generator=perm_gen)
    pos = 0
    model.train()
    stopped = False
    _watched(watch, 0, total, None, model)
    for step in range(total):
        if pos + bs > n:
            order, pos = torch.randperm(n, generator=perm_gen), 0
        idx = order[pos : pos + bs].to(dev)
        pos += bs
        x = augment.random_resized_crop(as_float(images[idx], True), gen, scale=(cfg.crop_scale_min, 1.0))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, warm, cfg.lr)
        loss = F.cross_entropy(model(normalize(x)), labels[idx], label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        _watched(watch, step + 1, total, losses[-1], model)
        if on_step is not None and on_step(step + 1, total, losses[-1]):
            stopped = True
            break
    model.eval()
    return model, {"steps": len(losses), "planned_steps": total, "stopped_early": stopped, "final_loss": losses[-1] if losses else None, "train_seconds": time.time() - t0}

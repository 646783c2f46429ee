"""The pretraining loop. It knows nothing about any task: it calls only the PretextTask contract.

Data path: the uint8 photo cache moves to the device once; each step indexes a batch there, turns
it into float [0, 1] and hands it to the task. CPU and CUDA share this code; on CUDA the step runs
under bf16 autocast. All randomness comes from one generator per epoch seeded by (seed, epoch), so
``resume`` from an epoch's checkpoint repeats exactly what the uninterrupted run would have done.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .snapshots import save_snapshot
from .data import SplitData, validation_split
from .distributed import DistInfo, all_reduce_mean, barrier, init_from_env
from .encoders import EncoderConfig, build_encoder, encoder_info, pooled
from .errors import UserError
from .runtime import as_float, device_name, library_versions, lr_at, peak_rss_mb, resolve_device
from .tasks.base import EpochContext, PretextTask, normalize

CHECKPOINT_NAME = "checkpoint.safetensors"
HOLDOUTS = ("test", "validation")  # which photos a pretraining run scores its pretext task on


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings for pretraining. ``lr`` is the peak learning rate after warm-up."""

    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU
    channels_last: bool = True
    compile: bool = False
    tensorboard: bool = False
    sync_bn: bool = False  # under torchrun: batch-norm statistics over the global batch

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise UserError(f"--epochs {self.epochs} must be at least 1")
        if self.batch_size < 2:
            raise UserError(f"--batch-size {self.batch_size} must be at least 2 (batch norm needs 2 samples)")
        if self.optimizer not in ("sgd", "adamw"):
            raise UserError(f"--optimizer {self.optimizer!r} is not one of sgd, adamw")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"--lr {self.lr} must be a positive number")
        if self.warmup_epochs < 0:
            raise UserError(f"--warmup-epochs {self.warmup_epochs} must be ≥ 0")

    def to_dict(self) -> dict:
        return asdict(self)


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed * 1_000_003 + epoch)
    return g


class TaskModel(nn.Module):
    """Encoder + head as one module, so DDP or ``torch.compile`` can wrap the pair."""

    def __init__(self, task: PretextTask, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.task = task
        self.encoder = encoder
        self.head = head

    def forward(self, inputs: Any) -> Any:
        return self.task.forward(self.encoder, self.head, inputs)


class TrainingDiverged(UserError):
    pass


def _to_device(x: Any, dev: torch.device) -> Any:
    if torch.is_tensor(x):
        return x.to(dev, non_blocking=True)
    if isinstance(x, dict):
        return {k: _to_device(v, dev) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(v, dev) for v in x)
    return x


@torch.no_grad()
def embed_images(encoder: nn.Module, images_u8: torch.Tensor, batch: int = 256, channels_last: bool = True) -> torch.Tensor:
    """uint8 (N, 3, S, S) on any device → pooled last-stage features (N, D) float32, eval mode."""
    was = encoder.training
    encoder.eval()
    out = [pooled(encoder(normalize(as_float(images_u8[i : i + batch], channels_last)))).float() for i in range(0, len(images_u8), batch)]
    encoder.train(was)
    return torch.cat(out)


@torch.no_grad()
def pretext_scores(task: PretextTask, encoder: nn.Module, head: nn.Module, images_u8: torch.Tensor, device: torch.device, batch: int = 128, seed: int = 1234) -> dict[str, float]:
    """The pretext task's loss and metrics on held-out photos (eval mode, fixed seed), averaged
    over photos."""
    was_e, was_h = encoder.training, head.training
    encoder.eval()
    head.eval()
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    totals: dict[str, float] = {}
    n = 0
    for i in range(0, len(images_u8), batch):
        x = as_float(images_u8[i : i + batch].to(device), False)
        idx = torch.arange(i, i + len(x), device=device)
        inputs, targets = task.eval_batch(x, gen, idx)
        out = task.forward(encoder, head, inputs)
        stats = {"loss": task.loss(out, targets).item(), **task.metrics(out, targets)}
        for k, v in stats.items():
            totals[k] = totals.get(k, 0.0) + v * len(x)
        n += len(x)
    encoder.train(was_e)
    head.train(was_h)
    return {k: v / n for k, v in totals.items()}


def _training_photos(task: PretextTask, data: SplitData) -> torch.Tensor:
    """(N, 3, S, S) uint8: every photo of ``data`` at the side the task crops its training batches
    from (``task.source_size``): ``data``'s own when it is the input size, else decoded again at S
    (its own cache), in the same order."""
    size = task.source_size(data.cfg.image_size)
    if size == data.cfg.image_size:
        return data.ds.images
    from dataclasses import replace

    from .data import load_dataset

    ds = load_dataset(replace(data.cfg, image_size=size))
    if ds.files != data.ds.files:
        raise UserError(f"the photos of {data.cfg.root} decoded at {size} px are not those at {data.cfg.image_size} px "
                        f"(a photo changed or became unreadable meanwhile); rerun the command")
    return ds.images


def _differences(saved: dict, now: dict, prefix: str) -> list[str]:
    return [f"{prefix}{k}: the run has {saved.get(k)!r}, now {now.get(k)!r}" for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]


def check_resume(out_dir: str | Path, task: PretextTask, enc_cfg: EncoderConfig, cfg: TrainConfig, data_cfg, holdout: str = "test"):
    """Refuse, before any work, to resume a run that is not there or was made with other settings
    (task options, training, photo size and split, encoder, holdout; not the device). Returns the
    loaded checkpoint."""
    ckpt_path = Path(out_dir) / CHECKPOINT_NAME
    if not ckpt_path.exists():
        raise UserError(f"--resume: {out_dir} holds no run ({CHECKPOINT_NAME} is missing); leave out --resume to start one there")
    ck = load_checkpoint(ckpt_path)
    ck.expect(task=task.name, encoder=enc_cfg.to_dict())
    saved = ck.meta.get("config", {})
    now = json.loads(json.dumps({"task": task.config_dict(), "train": cfg.to_dict(), "data": data_cfg.to_dict()}))
    diffs = _differences(saved.get("task", {}), now["task"], "task ")
    diffs += _differences({k: v for k, v in saved.get("train", {}).items() if k != "device"}, {k: v for k, v in now["train"].items() if k != "device"}, "")
    root = lambda d: str(Path(d.get("root", "")).resolve()) if d.get("root") else ""
    diffs += _differences({**saved.get("data", {}), "root": root(saved.get("data", {}))}, {**now["data"], "root": root(now["data"])}, "") if "data" in saved else []
    if ck.meta.get("holdout", "test") != holdout:
        diffs.append(f"holdout: the run has {ck.meta.get('holdout', 'test')!r}, now {holdout!r}")
    if diffs:
        raise UserError(f"{ckpt_path} was made with other settings ({'; '.join(diffs[:3])}); resume with the same options, or use --out NEW_DIR")
    return ck


def _device_and_ranks(cfg: TrainConfig) -> tuple[torch.device, DistInfo]:
    """The device this process trains on and its place among torchrun's processes."""
    dev = resolve_device(cfg.device)
    di = init_from_env(dev.type)
    if di.enabled and dev.type == "cuda":
        dev = torch.device("cuda", di.local_rank)
        torch.cuda.set_device(dev)
    return dev, di


def _build_model(task: PretextTask, enc_cfg: EncoderConfig, cfg: TrainConfig, image_size: int, dev: torch.device, di: DistInfo) -> TaskModel:
    """Encoder + head initialised from ``cfg.seed`` (same weights on every rank), on ``dev``."""
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    encoder = build_encoder(enc_cfg)
    head = task.build_head(encoder_info(encoder, image_size))
    model = TaskModel(task, encoder, head)
    if cfg.sync_bn and dev.type != "cuda":
        raise UserError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm is GPU-only); leave it out on CPU")
    if di.enabled and cfg.sync_bn:
        model.encoder = nn.SyncBatchNorm.convert_sync_batchnorm(model.encoder)
    model = model.to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _resume(model: TaskModel, opt: torch.optim.Optimizer, out_dir: Path, task: PretextTask, enc_cfg: EncoderConfig, cfg: TrainConfig,
            data_cfg, holdout: str) -> tuple[int, list[dict]]:
    """Load the run's checkpoint into ``model`` and ``opt`` → (first epoch to train, history so far)."""
    ck = check_resume(out_dir, task, enc_cfg, cfg, data_cfg, holdout)
    model.encoder.load_state_dict(ck.encoder_state)
    model.head.load_state_dict(ck.head_state)
    opt_state = ck.optimizer_state()
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    return int(ck.meta["epoch"]) + 1, ck.meta.get("history", [])


def _open_logs(out_dir: Path, cfg: TrainConfig, di: DistInfo, resume: bool, start_epoch: int) -> tuple[Path, Any]:
    """(metrics.jsonl, a TensorBoard writer or None): on rank 0 the metrics file is emptied for a new
    run, or cut back to the epochs before ``start_epoch`` on resume."""
    metrics_path = out_dir / "metrics.jsonl"
    if di.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if resume and metrics_path.exists():  # drop lines of the epoch the kill interrupted
            keep = [ln for ln in metrics_path.read_text().splitlines() if ln and json.loads(ln).get("epoch", 0) < start_epoch]
            metrics_path.write_text("".join(k + "\n" for k in keep))
        elif not resume:
            metrics_path.write_text("")
    tb = None
    if cfg.tensorboard and di.is_main:
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(out_dir / "tb"))
        except ImportError:
            raise UserError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
    return metrics_path, tb


def _wrapped(model: TaskModel, cfg: TrainConfig, dev: torch.device, di: DistInfo) -> nn.Module:
    """The module a step calls: ``model`` under DDP (torchrun) and/or ``torch.compile`` as asked."""
    step_model: nn.Module = model
    if di.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        step_model = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if cfg.compile:
        step_model = torch.compile(step_model)
    return step_model


@dataclass
class _Plan:
    """The step schedule of a run: photos per step, steps per epoch, warm-up and total steps."""

    n: int
    bs: int
    steps_per_epoch: int
    total_steps: int
    warmup: int


def _plan(cfg: TrainConfig, n: int, di: DistInfo) -> _Plan:
    bs = min(cfg.batch_size, n)
    if bs % di.world_size:
        raise UserError(f"--batch-size {bs} must be divisible by the {di.world_size} processes of torchrun")
    steps_per_epoch = n // bs
    return _Plan(n, bs, steps_per_epoch, steps_per_epoch * cfg.epochs, int(round(cfg.warmup_epochs * steps_per_epoch)))


def _train_epoch(epoch: int, task: PretextTask, model: TaskModel, step_model: nn.Module, opt: torch.optim.Optimizer, images: torch.Tensor,
                 gen: torch.Generator, plan: _Plan, cfg: TrainConfig, dev: torch.device, di: DistInfo, use_amp: bool, bar_of, ckpt_path: Path) -> tuple[dict[str, float], float]:
    """One epoch of optimiser steps → (the epoch's mean loss and metrics, on every rank; the last lr).
    ``bar_of(epoch, steps)`` wraps the steps in a progress bar (or returns them as they are)."""
    perm_gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    perm = torch.randperm(plan.n, generator=perm_gen).to(dev)
    model.train()
    sums: dict[str, float] = {}
    bar = bar_of(epoch, range(plan.steps_per_epoch))
    for s in bar:
        step = epoch * plan.steps_per_epoch + s
        lr = lr_at(step, plan.total_steps, plan.warmup, cfg.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = perm[s * plan.bs : (s + 1) * plan.bs][di.rank :: di.world_size]  # this rank's shard of the global batch
        x = as_float(images[idx], cfg.channels_last)
        inputs, targets = task.make_batch(x, gen, idx)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            out = step_model(inputs)
            loss = task.loss(out, targets)
        lv = all_reduce_mean(loss.detach()).item()  # the global batch's loss, same on every rank
        if not math.isfinite(lv):
            kept = f"last good checkpoint (after epoch {epoch}) kept at {ckpt_path}" if ckpt_path.exists() else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"loss became {lv} at epoch {epoch + 1} step {s + 1}; training stopped, {kept}; lower --lr or check the data"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        stats = {"loss": lv, **task.metrics(out, targets)}
        for k, v in stats.items():
            sums[k] = sums.get(k, 0.0) + v
        if hasattr(bar, "set_postfix"):  # a progress bar
            bar.set_postfix(loss=f"{lv:.3f}", lr=f"{lr:.3g}")
    ep = {k: all_reduce_mean(torch.tensor(v / max(1, plan.steps_per_epoch), dtype=torch.float64, device=dev)).item() for k, v in sums.items()}
    return ep, lr


def _progress_bars(progress: bool, task: PretextTask, cfg: TrainConfig):
    """``bar_of(epoch, steps)``: an epoch's steps under a tqdm bar when ``progress`` (and tqdm is
    installed), else the steps as they are."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None

    def bar_of(epoch: int, steps):
        if progress and tqdm is not None:
            return tqdm(steps, desc=f"{task.name} epoch {epoch + 1}/{cfg.epochs}", leave=False, dynamic_ncols=True)
        return steps

    return bar_of


def _run_meta(task: PretextTask, enc_cfg: EncoderConfig, cfg: TrainConfig, data: SplitData, holdout: str) -> dict[str, Any]:
    """What every checkpoint of the run records besides its epoch and history."""
    return {
        "task": task.name,
        "encoder": enc_cfg.to_dict(),
        "config": {"task": task.config_dict(), "train": cfg.to_dict(), "data": data.cfg.to_dict()},
        "split_sha256": data.split_sha256,
        "classes": data.ds.classes,
        "holdout": holdout,
    }


def _log_epoch(rec: dict, ep: dict, metrics_path: Path, tb, progress: bool, task: PretextTask, cfg: TrainConfig) -> None:
    """One epoch's record to metrics.jsonl, TensorBoard and (with ``progress``) the terminal."""
    with open(metrics_path, "a") as f:
        f.write(json.dumps(rec) + "\n")
    if tb is not None:
        for k, v in rec.items():
            if isinstance(v, float):
                tb.add_scalar(k, v, rec["step"])
    if progress:
        print(f"[{task.name}] epoch {rec['epoch'] + 1}/{cfg.epochs} " + " ".join(f"{k}={v:.4f}" for k, v in ep.items()) + f" ({rec['seconds']:.1f}s)", flush=True)


def _summary(task: PretextTask, cfg: TrainConfig, enc_cfg: EncoderConfig, history: list[dict], wall: float, dev: torch.device, di: DistInfo,
             config: dict, ckpt_path: Path, data: SplitData) -> dict[str, Any]:
    finished = history and history[-1]["epoch"] == cfg.epochs - 1
    return {
        "task": task.name,
        "epochs": cfg.epochs,
        "completed_epochs": len(history),
        "finished": bool(finished),
        "wall_seconds_this_process": wall,
        "train_seconds_total": float(sum(h["seconds"] for h in history)),
        "device": device_name(dev),
        "world_size": di.world_size,
        "peak_rss_mb": peak_rss_mb(),
        "peak_cuda_mb": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None,
        "versions": library_versions(),
        "config": config,
        "encoder": enc_cfg.to_dict(),
        "checkpoint": str(ckpt_path),
        # photos the loader could not use (not an image, truncated, a strip, …): listed here, not only on stderr
        "skipped_files": [{"file": f, "why": why} for f, why in data.ds.skipped],
    }


def pretrain(
    task: PretextTask,
    data: SplitData,
    out_dir: str | Path,
    enc_cfg: EncoderConfig | None = None,
    cfg: TrainConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after_epoch: int | None = None,
    holdout: str = "test",
    snapshots: Sequence[int] = (),
) -> dict[str, Any]:  # ~100 lines (26 signature and docstring): one run's order of events — seeds, resume, epochs, snapshots, checkpoints — read top to bottom
    """Pretrain an encoder with ``task`` on the training split (labels unused).

    ``holdout="validation"`` trains on the fit photos of ``data.validation_split`` only and scores
    the pretext task on its validation photos (summary key ``pretext_validation``): for choosing a
    task's settings by its pretext score without reading a test photo. The default trains on the
    whole training split and scores the test split (``pretext_test``).

    Writes ``<out_dir>/checkpoint.safetensors`` after every epoch and ``metrics.jsonl`` (one JSON
    object per log line). Returns a summary dict (also saved as ``summary.json``).
    ``stop_after_epoch`` ends the run early after that epoch, as a kill would (used by tests).
    ``snapshots``: numbers of epochs done (0 = before training) after which the test photos' pooled
    features are added to ``<out_dir>/snapshots.safetensors`` (see ``snapshots.py``); taking them
    changes nothing in training.
    """
    enc_cfg = enc_cfg or EncoderConfig()
    cfg = cfg or TrainConfig()
    if holdout not in HOLDOUTS:
        raise UserError(f"--holdout {holdout!r} is not one of {', '.join(HOLDOUTS)}")
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    if ckpt_path.exists() and not resume:
        raise UserError(f"{ckpt_path} already exists; pass --resume to continue that run, or --out NEW_DIR to start another")
    dev, di = _device_and_ranks(cfg)
    task.config.validate(data.cfg.image_size)
    model = _build_model(task, enc_cfg, cfg, data.cfg.image_size, dev, di)
    opt = make_optimizer(model.parameters(), cfg)

    train_idx, eval_idx = validation_split(data) if holdout == "validation" else (data.train_idx, data.test_idx)
    plan = _plan(cfg, len(train_idx), di)
    progress = progress and di.is_main
    meta_base = _run_meta(task, enc_cfg, cfg, data, holdout)
    start_epoch, history = 0, []
    if resume and ckpt_path.exists():
        start_epoch, history = _resume(model, opt, out_dir, task, enc_cfg, cfg, data.cfg, holdout)
    barrier()  # every rank has read the checkpoint before rank 0 may overwrite it
    metrics_path, tb = _open_logs(out_dir, cfg, di, resume, start_epoch)

    images = _training_photos(task, data)[torch.as_tensor(train_idx)].to(dev)  # uint8, resident on the device
    use_amp = cfg.amp and dev.type == "cuda"
    step_model = _wrapped(model, cfg, dev, di)
    t_start = time.time()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    def reset_optimizer_state(params) -> None:
        for p in params:
            opt.state.pop(p, None)

    def embed(u8: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            return embed_images(model.encoder, u8, channels_last=cfg.channels_last)

    bar_of = _progress_bars(progress, task, cfg)
    last_epoch = cfg.epochs - 1 if stop_after_epoch is None else min(cfg.epochs - 1, stop_after_epoch)
    snap_at = set(int(e) for e in snapshots)
    snap_u8 = data.ds.images[torch.as_tensor(data.test_idx)].to(dev) if snap_at and di.is_main else None

    def snapshot(epochs_done: int) -> None:
        if snap_u8 is not None and epochs_done in snap_at:
            save_snapshot(out_dir, epochs_done, embed(snap_u8), data.test_idx, data.cfg.image_size)

    if start_epoch == 0:
        snapshot(0)
    for epoch in range(start_epoch, last_epoch + 1):
        t_epoch = time.time()
        # every rank draws the same pseudo-labels / bank state from gen_shared; augmentation per rank
        gen_shared = epoch_generator(cfg.seed, epoch, dev)
        task.on_epoch_start(EpochContext(epoch, images, embed, gen_shared, model.head, di.world_size, reset_optimizer_state))
        gen = gen_shared if not di.enabled else epoch_generator(cfg.seed + 7919 * di.rank, epoch, dev)
        ep, lr = _train_epoch(epoch, task, model, step_model, opt, images, gen, plan, cfg, dev, di, use_amp, bar_of, ckpt_path)
        rec = {"epoch": epoch, "step": (epoch + 1) * plan.steps_per_epoch, "lr": lr, "seconds": time.time() - t_epoch, **{f"train_{k}": v for k, v in ep.items()}}
        history.append(rec)
        if not di.is_main:
            barrier()  # wait for rank 0's checkpoint
            continue
        _log_epoch(rec, ep, metrics_path, tb, progress, task, cfg)
        snapshot(epoch + 1)  # before the checkpoint: a kill between the two redoes the epoch and its snapshot
        save_checkpoint(ckpt_path, model.encoder, model.head, dict(meta_base, epoch=epoch, history=history), opt)
        if di.enabled:
            barrier()

    summary = _summary(task, cfg, enc_cfg, history, time.time() - t_start, dev, di, meta_base["config"], ckpt_path, data)
    if summary["finished"] and di.is_main:
        held_u8 = data.ds.images[torch.as_tensor(eval_idx)]
        summary["holdout"] = holdout
        summary[f"pretext_{holdout}"] = pretext_scores(task, model.encoder, model.head, held_u8, dev)
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if tb is not None:
        tb.close()
    barrier()
    return summary


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)

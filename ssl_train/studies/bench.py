"""Throughput of the whole pretraining step, per task: the project's path vs the conventional one.

(a) project path: the decoded uint8 photo cache lives on the device; each step indexes a batch
    there and the task makes its inputs with batched, per-sample-random tensor ops (the code of
    ``train.pretrain``).
(b) conventional path: a torchvision ``ImageFolder`` decoding JPEGs with PIL, per-sample
    ``RandomResizedCrop`` + flip + ``ToTensor``-style transforms in ``DataLoader`` workers, the
    batch copied to the device, then the same ``task.make_batch`` and step.

Same encoder, head, optimizer, batch size and device in both; warm-up steps are excluded; each path
is timed ``repeats`` times over ``steps`` steps and the median images/s is reported (images = photos
per step, before a task expands them into several inputs). On CUDA the achieved TFLOP/s (FLOPs of
one step counted by ``torch.utils.flop_counter``) is compared with the device's dense bf16 peak.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import SplitData
from ..encoders import EncoderConfig, build_encoder, encoder_info
from ..paths import portable
from ..runtime import as_float, device_name, library_versions, peak_rss_mb, resolve_device
from ..tasks import get_task
from ..tasks.base import EpochContext, PretextTask
from ..train import TaskModel, TrainConfig, embed_images, make_optimizer

# dense bf16 tensor-core peaks from vendor datasheets, TFLOP/s (a lead, not a measurement)
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "RTX 4090": 165.0}


def _peak_for(name: str) -> float | None:
    for key, v in BF16_PEAK_TFLOPS.items():
        if key.lower() in name.lower():
            return v
    return None


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


class _Stepper:
    """One training step of ``task`` on a model, as the loop does it."""

    def __init__(self, task: PretextTask, enc_cfg: EncoderConfig, image_size: int, dev: torch.device, cfg: TrainConfig, images_u8: torch.Tensor) -> None:
        torch.manual_seed(0)
        enc = build_encoder(enc_cfg)
        self.model = TaskModel(task, enc, task.build_head(encoder_info(enc, image_size))).to(dev).to(memory_format=torch.channels_last)
        self.opt = make_optimizer(self.model.parameters(), cfg)
        self.task, self.dev = task, dev
        self.amp = cfg.amp and dev.type == "cuda"
        self.fn: nn.Module = torch.compile(self.model) if cfg.compile else self.model
        self.gen = torch.Generator(device=dev).manual_seed(0)
        # the epoch start of stateful tasks (DeepCluster's k-means, PIRL's bank) is set-up, not timed
        self.epoch_start_s = time.perf_counter()
        task.on_epoch_start(EpochContext(0, images_u8, lambda u8: embed_images(enc, u8), self.gen, self.model.head, 1,
                                         lambda params: [self.opt.state.pop(p, None) for p in params]))
        _sync(dev)
        self.epoch_start_s = time.perf_counter() - self.epoch_start_s

    def __call__(self, x: torch.Tensor, idx: torch.Tensor) -> None:
        inputs, targets = self.task.make_batch(x, self.gen, idx)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            loss = self.task.loss(self.fn(inputs), targets)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def _time_path(next_batch, step: _Stepper, batch: int, steps: int, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        step(*next_batch())
    _sync(step.dev)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step(*next_batch())
        _sync(step.dev)
        rates.append(batch * steps / (time.perf_counter() - t0))
    return rates


def _conventional_loader(root: Path, files: list[str], image_size: int, batch: int, workers: int):
    from .._torchvision_compat import import_torchvision

    tv = import_torchvision()
    from torchvision.transforms import v2

    tf = v2.Compose([
        v2.RandomResizedCrop(image_size, scale=(0.35, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
    ])
    keep = set(files)
    ds = tv.datasets.ImageFolder(str(root), transform=tf, is_valid_file=lambda p: Path(p).relative_to(root).as_posix() in keep)
    return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers, persistent_workers=workers > 0, pin_memory=False)


def _flops_per_step(step: _Stepper, x: torch.Tensor, idx: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        step(x, idx)
    return float(fc.get_total_flops())


def bench_task(name: str, data: SplitData, enc_cfg: EncoderConfig, cfg: TrainConfig, steps: int, warmup: int, repeats: int, workers: int) -> dict[str, Any]:
    dev = resolve_device(cfg.device)
    task = get_task(name)
    size = data.cfg.image_size
    bs = cfg.batch_size
    train_idx = torch.as_tensor(data.train_idx)
    n = len(train_idx)
    if n < bs:
        raise ValueError(f"batch size {bs} is larger than the {n} training photos")
    out: dict[str, Any] = {"task": name, "batch_size": bs}

    # (a) project path
    cache = data.ds.images[train_idx].to(dev)
    step = _Stepper(task, enc_cfg, size, dev, cfg, cache)
    out["epoch_start_seconds"] = step.epoch_start_s
    g = torch.Generator(device="cpu").manual_seed(1)

    def project_batch():
        idx = torch.randint(0, n, (bs,), generator=g).to(dev)
        return as_float(cache[idx], True), idx

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    rates_a = _time_path(project_batch, step, bs, steps, warmup, repeats)
    out["project"] = {"images_per_s": statistics.median(rates_a), "repeats": rates_a, "peak_mem_mb": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else peak_rss_mb()}
    if dev.type == "cuda":
        flops = _flops_per_step(step, *project_batch())
        out["flops_per_step"] = flops
        out["project"]["tflops"] = flops * out["project"]["images_per_s"] / bs / 1e12
    del step

    # (b) conventional path
    loader = _conventional_loader(data.ds.root, [data.ds.files[i] for i in data.train_idx], size, bs, workers)
    it = iter(loader)
    step = _Stepper(task, enc_cfg, size, dev, cfg, cache)

    def conventional_batch():
        nonlocal it
        try:
            x, _ = next(it)
        except StopIteration:
            it = iter(loader)
            x, _ = next(it)
        x = x.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
        return x, torch.arange(len(x), device=dev)

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    rates_b = _time_path(conventional_batch, step, bs, steps, warmup, repeats)
    out["conventional"] = {"images_per_s": statistics.median(rates_b), "repeats": rates_b, "workers": workers, "peak_mem_mb": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else peak_rss_mb()}
    if dev.type == "cuda" and "flops_per_step" in out:
        out["conventional"]["tflops"] = out["flops_per_step"] * out["conventional"]["images_per_s"] / bs / 1e12
    out["ratio"] = out["project"]["images_per_s"] / out["conventional"]["images_per_s"]
    return out


def run_bench(data: SplitData, tasks: list[str], enc_cfg: EncoderConfig, cfg: TrainConfig, steps: int, warmup: int, repeats: int, workers: int, out_dir: Path) -> Path:
    dev = resolve_device(cfg.device)
    name = device_name(dev)
    results = []
    for t in tasks:
        r = bench_task(t, data, enc_cfg, cfg, steps, warmup, repeats, workers)
        results.append(r)
        print(f"[bench] {t:>14}: project {r['project']['images_per_s']:8.0f} img/s, conventional {r['conventional']['images_per_s']:8.0f} img/s, ratio {r['ratio']:.2f}", flush=True)
    peak = _peak_for(name) if dev.type == "cuda" else None
    report = {
        "device": name,
        "device_type": dev.type,
        "bf16_peak_tflops": peak,
        "image_size": data.cfg.image_size,
        "encoder": enc_cfg.to_dict(),
        "train": cfg.to_dict(),
        "steps": steps,
        "warmup": warmup,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "versions": library_versions(),
        "tasks": results,
    }
    if peak:
        for r in results:
            r["project"]["fraction_of_bf16_peak"] = r["project"].get("tflops", 0) / peak
    slug = "cpu" if dev.type == "cpu" else "cuda-" + "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    path = out_dir / f"bench-{slug}.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(portable(report), indent=1))
    print(table(report))
    return path


def table(report: dict[str, Any]) -> str:
    lines = [f"{report['device']} — images/s of the whole training step (median of {report['repeats']} × {report['steps']} steps, batch {report['train']['batch_size']}, {report['image_size']} px)",
             f"{'task':>14} | {'project':>9} | {'conventional':>12} | {'ratio':>5} | {'TFLOP/s':>7}"]
    for r in report["tasks"]:
        tf = r["project"].get("tflops")
        lines.append(f"{r['task']:>14} | {r['project']['images_per_s']:9.0f} | {r['conventional']['images_per_s']:12.0f} | {r['ratio']:5.2f} | {tf if tf is None else f'{tf:7.1f}'!s:>7}")
    return "\n".join(lines)

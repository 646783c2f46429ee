"""Multi-task self-supervision (Doersch & Zisserman, ICCV 2017): several pretext tasks train one
shared encoder at once, the loss a weighted sum.

``tasks="rotation:1,jigsaw:0.5"`` names registered tasks with their loss weights (a missing weight
is 1); ``options`` gives each its own config, e.g. ``{"jigsaw": {"n_permutations": 30}}`` (on the
command line: ``--task-opt 'options={"jigsaw": {"n_permutations": 30}}'``). Every step each
sub-task makes its own batch from the same photos (drawing from the same generator in the listed
order, so runs stay reproducible), the encoder runs once per sub-task on that sub-task's inputs
(their shapes differ: tiles, pairs, greyscale…), and each sub-task's own ``forward`` and ``loss``
apply. Inputs are normalised as each sub-task does it.

The head is an ``nn.ModuleDict`` of the sub-tasks' heads (state-dict keys ``<task>.<...>``), so
sub-task state (PIRL's bank, DeepCluster's labels) is saved with it; ``on_epoch_start`` is forwarded
to every sub-task with its own sub-head; metrics are prefixed by the sub-task name, with each
sub-task's unweighted loss as ``<task>_loss``. The paper's "lasso" layer mixing and input
harmonisation are not reproduced: this is the plain weighted sum of its baseline.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .base import TASKS, EncoderInfo, EpochContext, PretextTask, TaskConfig, get_task, register, task_names


def parse_tasks(spec: str) -> list[tuple[str, float]]:
    """``"rotation:1,jigsaw:0.5"`` → [("rotation", 1.0), ("jigsaw", 0.5)]. ``UserError`` for an
    empty list, a bad or negative weight, all weights zero, a repeated or unknown task, or
    ``multitask`` itself."""
    from . import load_all

    load_all()
    out: list[tuple[str, float]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, w = part.partition(":")
        name = name.strip()
        try:
            weight = float(w) if w.strip() else 1.0
        except ValueError:
            raise UserError(f"multitask weight {w!r} of {name!r} is not a number; write tasks like rotation:1,jigsaw:0.5") from None
        if not (math.isfinite(weight) and weight >= 0):
            raise UserError(f"multitask weight {weight} of {name!r} must be a finite number ≥ 0")
        if name == MultiTask.name:
            raise UserError("multitask cannot contain multitask; list the tasks themselves, e.g. rotation:1,jigsaw:0.5")
        if name not in TASKS:
            others = ", ".join(n for n in task_names() if n != MultiTask.name)
            raise UserError(f"unknown task {name!r} in multitask tasks; registered tasks: {others}")
        if name in (n for n, _ in out):
            raise UserError(f"task {name!r} appears twice in multitask tasks={spec!r}")
        out.append((name, weight))
    if not out:
        raise UserError("multitask needs at least one task, e.g. tasks=rotation:1,jigsaw:0.5")
    if sum(w for _, w in out) <= 0:
        raise UserError(f"multitask weights in {spec!r} are all zero; give at least one task a positive weight")
    return out


@dataclass(frozen=True)
class MultitaskConfig(TaskConfig):
    tasks: str = "rotation:1,jigsaw:0.5"  # name:weight, comma-separated
    options: dict = field(default_factory=dict)  # {task name: {option: value}} for the sub-tasks

    def validate(self, image_size: int) -> None:
        for name, sub in _build_subtasks(self).items():
            sub.config.validate(image_size)


def _build_subtasks(cfg: MultitaskConfig) -> dict[str, PretextTask]:
    names = [n for n, _ in parse_tasks(cfg.tasks)]
    if not isinstance(cfg.options, dict):
        raise UserError(f"multitask options must be a JSON object like {{\"jigsaw\": {{\"n_permutations\": 30}}}}, got {cfg.options!r}")
    stray = sorted(set(cfg.options) - set(names))
    if stray:
        raise UserError(f"multitask options for {', '.join(stray)}, which is not in tasks={cfg.tasks!r}")
    return {n: get_task(n, dict(cfg.options.get(n) or {})) for n in names}


@register
class MultiTask(PretextTask):
    name = "multitask"
    Config = MultitaskConfig
    # the release's common settings (Recipe()): reports/budget-multitask.md chose 30 epochs, the common budget

    def __init__(self, config: MultitaskConfig | None = None) -> None:
        super().__init__(config)
        cfg: MultitaskConfig = self.config  # type: ignore[assignment]
        self.weights = dict(parse_tasks(cfg.tasks))
        self.subtasks = _build_subtasks(cfg)
        # "reconstruction" only if every sub-task reconstructs; otherwise accuracies are reported
        self.kind = "reconstruction" if all(t.kind == "reconstruction" for t in self.subtasks.values()) else "classification"

    def build_head(self, info: EncoderInfo) -> nn.Module:
        return nn.ModuleDict({n: t.build_head(info) for n, t in self.subtasks.items()})

    def make_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        """→ ({task: inputs}, {task: targets}), each sub-task's own ``make_batch`` in listed order."""
        pairs = {n: t.make_batch(images, gen, index) for n, t in self.subtasks.items()}
        return {n: p[0] for n, p in pairs.items()}, {n: p[1] for n, p in pairs.items()}

    def eval_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor):
        pairs = {n: t.eval_batch(images, gen, index) for n, t in self.subtasks.items()}
        return {n: p[0] for n, p in pairs.items()}, {n: p[1] for n, p in pairs.items()}

    def forward(self, encoder: nn.Module, head: nn.Module, inputs: dict) -> dict:
        """One encoder pass per sub-task (inputs differ in shape), each through its own forward."""
        return {n: t.forward(encoder, head[n], inputs[n]) for n, t in self.subtasks.items()}

    def loss(self, out: dict, targets: dict) -> torch.Tensor:
        return sum(self.weights[n] * t.loss(out[n], targets[n]) for n, t in self.subtasks.items())  # type: ignore[return-value]

    def metrics(self, out: dict, targets: dict) -> dict[str, float]:
        stats: dict[str, Any] = {}
        for n, t in self.subtasks.items():
            with torch.no_grad():
                stats[f"{n}_loss"] = t.loss(out[n], targets[n]).item()
            stats.update({f"{n}_{k}": v for k, v in t.metrics(out[n], targets[n]).items()})
        return stats

    def on_epoch_start(self, ctx: EpochContext) -> None:
        for n, t in self.subtasks.items():
            t.on_epoch_start(dataclasses.replace(ctx, head=ctx.head[n]))

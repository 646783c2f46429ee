"""The PretextTask contract and the task registry.

A pretext task turns a batch of unlabelled images into (inputs, targets), owns a head that maps
encoder features to predictions, and a loss. The training loop calls only this::

    task.on_epoch_start(ctx)                       # optional hook (e.g. DeepCluster's k-means)
    inputs, targets = task.make_batch(images, gen, index)
    out = task.forward(encoder, head, inputs)      # default: head(encoder(inputs))
    loss = task.loss(out, targets)
    stats = task.metrics(out, targets)             # e.g. {"acc": 0.93}

``images`` are float32 in [0, 1], (B, 3, S, S), on the training device; ``gen`` is a
``torch.Generator`` on that device (all randomness comes from it, so a run is reproducible and a
resumed run equals an uninterrupted one); ``index`` (B,) int64 are the photos' dataset indices
(tasks with per-image state, like PIRL's memory bank, use it). ``inputs`` come out ready for the
encoder (normalised with ``normalize``). All state that must survive a checkpoint lives in the head
(parameters or buffers).

A task registers itself with ``@register`` and is found by name; its frozen ``Config`` dataclass is
saved in every checkpoint and model card. Its ``recipe`` (a ``Recipe``) says what the shipped encoder is
pretrained with where that differs from the release's common settings, and which report chose it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable

import torch
from torch import nn

from ..errors import UserError

# Normalisation of encoder inputs (RGB in [0, 1]); written to every model.json.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] → encoder input (per-channel mean/std)."""
    mean = torch.tensor(MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


@dataclass(frozen=True)
class EncoderInfo:
    """What a head needs to know about the encoder it sits on."""

    feature_dim: int  # channels of the last feature map
    stage_dims: tuple[int, ...]  # channels after each stage
    image_size: int  # side of the square input, pixels
    stride: int  # input pixels per feature-map cell of the last stage


@dataclass
class EpochContext:
    """Handed to ``on_epoch_start``: the whole training set and a way to embed it."""

    epoch: int
    images: torch.Tensor  # (N, 3, S, S) uint8 on the training device
    embed: Callable[[torch.Tensor], torch.Tensor]  # uint8 images (n,3,S,S) → pooled features (n, D), no grad
    generator: torch.Generator
    head: nn.Module
    world_size: int = 1
    # forget the optimizer's state (momentum, Adam moments) of these parameters, e.g. after a task
    # re-initialises a layer, so stale momentum does not push the fresh weights
    reset_optimizer_state: Callable[[Iterable[nn.Parameter]], None] = lambda params: None


@dataclass(frozen=True)
class TaskConfig:
    """Base for task configs; subclasses add fields (all with defaults)."""

    def validate(self, image_size: int) -> None:
        """Raise ``UserError`` for settings impossible at this input size (before training)."""


@dataclass(frozen=True)
class Recipe:
    """What a task's shipped encoder is pretrained with, where it is not the release's common setting
    (``None`` / ``()``: the common ``--epochs``, ``--batch-size``, ``--image-size``, the config's
    defaults), and the report that chose each (a validation study, never the test split), the way a
    timm model carries its default config. ``release`` pretrains every task with its recipe;
    ``protocol``, ``finetune-lr`` and ``budget`` with ``--recipes``; the per-task flags
    (``--task-epochs`` …) override it field by field."""

    epochs: int | None = None  # pretraining epochs
    batch_size: int | None = None  # photos per step
    image_size: int | None = None  # side of the photos it is pretrained on, px (downstream: the protocol's)
    options: tuple[tuple[str, str], ...] = ()  # (config field, value) pairs, as --task-options gives them
    # the report each choice was made in, e.g. "reports/budget-simclr.md" (a task's declared recipe names
    # one for every field it sets: tests/ssl_train/tasks/test_recipe.py)
    epochs_chosen_in: str = ""
    batch_size_chosen_in: str = ""
    image_size_chosen_in: str = ""
    options_chosen_in: str = ""

    def __post_init__(self) -> None:
        for name, least in (("epochs", 1), ("batch_size", 2), ("image_size", 16)):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < least):
                raise ValueError(f"Recipe.{name}={v!r}: a whole number ≥ {least}, or None for the common setting")
        if not all(isinstance(o, tuple) and len(o) == 2 and isinstance(o[0], str) for o in self.options):
            raise ValueError(f"Recipe.options={self.options!r}: (field, value) pairs, e.g. (('grid', '2'),)")


class PretextTask:
    """Base class: subclasses set ``name``, ``Config`` and implement ``build_head``,
    ``make_batch`` and ``loss``."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[TaskConfig]] = TaskConfig
    # "classification" tasks report accuracy; "reconstruction" tasks report a loss and have images
    kind: ClassVar[str] = "classification"
    # what its shipped encoder is pretrained with (``Recipe()``: the release's common settings)
    recipe: ClassVar[Recipe] = Recipe()

    def __init__(self, config: TaskConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()

    # -- contract -----------------------------------------------------------------------------
    def build_head(self, info: EncoderInfo) -> nn.Module:
        raise NotImplementedError

    def make_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor) -> tuple[Any, Any]:
        raise NotImplementedError

    def eval_batch(self, images: torch.Tensor, gen: torch.Generator, index: torch.Tensor) -> tuple[Any, Any]:
        """(inputs, targets) for scoring the pretext task on held-out photos (the test split).
        Default: ``make_batch`` with the caller's fixed-seed generator; override to drop augmentation."""
        return self.make_batch(images, gen, index)

    def forward(self, encoder: nn.Module, head: nn.Module, inputs: Any) -> Any:
        return head(encoder(inputs))

    def loss(self, out: Any, targets: Any) -> torch.Tensor:
        raise NotImplementedError

    def metrics(self, out: Any, targets: Any) -> dict[str, float]:
        return {}

    def on_epoch_start(self, ctx: EpochContext) -> None:
        """Called before every epoch. Default: nothing."""

    def source_size(self, image_size: int) -> int:
        """Side in px of the photos ``make_batch`` receives in pretraining, for an encoder whose
        input is ``image_size`` px (``eval_batch`` and everything downstream always get
        ``image_size``). Default: the same; a task may cut its training crops from photos decoded
        larger, so that a crop resized to the input size is as sharp as a whole photo is."""
        return image_size

    # -- config -------------------------------------------------------------------------------
    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)


TASKS: dict[str, type[PretextTask]] = {}


def register(cls: type[PretextTask]) -> type[PretextTask]:
    """Class decorator: make a task findable by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in TASKS and TASKS[cls.name] is not cls:
        raise ValueError(f"task name {cls.name!r} registered twice")
    TASKS[cls.name] = cls
    return cls


def task_names() -> list[str]:
    return sorted(TASKS)


def recipe_of(name: str) -> Recipe:
    """The ``Recipe`` the registered task ``name`` declares (``Recipe()`` when it declares none)."""
    from . import load_all

    load_all()
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; registered tasks: {', '.join(task_names())}")
    return TASKS[name].recipe


def config_from_dict(cls: type[TaskConfig], values: dict[str, Any]) -> TaskConfig:
    """Build a task config from plain values (JSON or CLI strings), converting to field types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserError(f"unknown option(s) {', '.join(unknown)} for this task; known: {', '.join(fields) or 'none'}")
    kw = {}
    for k, v in values.items():
        default = getattr(cls(), k)
        kw[k] = _coerce(k, v, default)
    return cls(**kw)


def _coerce(key: str, value: Any, default: Any) -> Any:
    if not isinstance(value, str):
        if isinstance(default, tuple) and isinstance(value, list):
            return tuple(value)
        return value
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return value.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            return tuple(type(default[0])(p) if default else p for p in value.split(","))
        if isinstance(default, dict):
            import json

            return json.loads(value)
    except ValueError:
        raise UserError(f"option {key}={value!r} is not a valid {type(default).__name__}") from None
    return value


def get_task(name: str, options: dict[str, Any] | None = None) -> PretextTask:
    """The registered task ``name`` with ``options`` overriding its config defaults."""
    from . import load_all  # noqa: F401  (registers every task module)

    load_all()
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; registered tasks: {', '.join(task_names())}")
    cls = TASKS[name]
    cfg = config_from_dict(cls.Config, options or {})
    return cls(cfg)

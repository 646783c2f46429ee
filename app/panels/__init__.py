"""The explorer's panels: one file per pretext task, registered by task name.

A panel is what the explorer (and talk mode) shows for one task: the question the task asks, in one
sentence, the model's answer on the user's photos, and its score in plain words with the chance
level. ``app/views/explorer.py`` knows no task by name: it asks ``panel_for(task)`` and draws what
comes back, so a models/ folder of a task with no panel still gets ``generic`` (the photos its
encoder finds most alike). Adding a task's panel = one file here with ``@register``.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from PIL import Image

GENERIC = "generic"
DEMO_SIDE = 320  # px: the longer side of a demo's pictures (a slide shows them about this size)


@dataclass(frozen=True)
class Demo:
    """One photo's question and the model's answer, for a slide (talk mode), without Streamlit.

    ``input``: what the model is given (the shuffled tiles, the grey photo…), ``output``: what it
    answers, both PIL RGB images whose longer side is ``DEMO_SIDE`` px; ``input_caption`` /
    ``output_caption``: a few plain words under each ("no colour", "the model's colours");
    ``question``: the task as a short plain-English instruction ("Put the shuffled tiles back")."""

    input: "Image.Image"
    output: "Image.Image"
    input_caption: str
    output_caption: str
    question: str


@dataclass(frozen=True)
class Panel:
    """How the explorer shows one task.

    ``label``: its name in the task picker ("Rotation"); ``title``: the panel's heading, the
    task's question in a few words ("Which way is up?"); ``question``: the one
    sentence the panel opens with; ``show(entry, photos, ctx)`` draws it for a model entry and
    the photos ``[(name, PIL.Image)]``; ``order`` places it in the picker (the story first);
    ``show_sub(entry, photos, ctx)``, when set, draws the task's head inside a multi-task model;
    ``compute(entry, image)``, when set, is all the network work the panel does for one photo
    (a PIL image), without Streamlit: ``python -m app.measure`` times it; ``demo(entry, image)``,
    when set, is the task's question and the model's answer on one photo as two pictures (``Demo``),
    without Streamlit: talk mode shows it."""

    task: str
    label: str
    title: str
    question: str
    show: Callable[..., None]
    order: int = 100
    show_sub: Callable[..., None] | None = None
    compute: Callable[..., object] | None = None
    demo: Callable[..., Demo] | None = None


PANELS: dict[str, Panel] = {}


def register(task: str, label: str, title: str, question: str, order: int = 100) -> Callable:
    """Decorator: ``@register("rotation", "Rotation", "Which way is up?", "…")`` over the panel's ``show``."""

    def deco(fn: Callable[..., None]) -> Callable[..., None]:
        PANELS[task] = Panel(task, label, title, question, fn, order)
        return fn

    return deco


def register_sub(task: str) -> Callable:
    """Decorator: how the panel of ``task`` (registered first) shows that task's head inside a
    multi-task model."""

    def deco(fn: Callable[..., None]) -> Callable[..., None]:
        PANELS[task] = dataclasses.replace(PANELS[task], show_sub=fn)
        return fn

    return deco


def register_compute(task: str) -> Callable:
    """Decorator: the panel of ``task``'s network work for one photo (see ``Panel.compute``)."""

    def deco(fn: Callable[..., object]) -> Callable[..., object]:
        PANELS[task] = dataclasses.replace(PANELS[task], compute=fn)
        return fn

    return deco


def register_demo(task: str) -> Callable:
    """Decorator: the panel of ``task``'s one-photo demo for talk mode (see ``Panel.demo``)."""

    def deco(fn: Callable[..., Demo]) -> Callable[..., Demo]:
        PANELS[task] = dataclasses.replace(PANELS[task], demo=fn)
        return fn

    return deco


def load_all() -> dict[str, Panel]:
    """Import every panel module of this package once (each registers itself)."""
    for m in pkgutil.iter_modules(__path__):
        if not m.name.startswith("_") and m.name != "common":
            importlib.import_module(f"{__name__}.{m.name}")
    return PANELS


def panel_for(task: str) -> Panel:
    """The task's own panel, else the generic one (similar photos by the encoder's features)."""
    load_all()
    return PANELS.get(task) or PANELS[GENERIC]

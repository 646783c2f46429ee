"""The explorer's panels: one file per pretext task, registered by task name.

A panel is what the explorer (and talk mode) shows for one task: the question the task asks, in one
sentence, the model's answer on the user's photos, and its score in plain words with the chance
level. ``app/views/explorer.py`` knows no task by name: it asks ``panel_for(task)`` and draws what
comes back, so a models/ folder of a task with no panel still gets ``generic`` (the photos its
encoder finds most alike). Adding a task's panel = one file here with ``@register``.

The panel file is also all the app knows of its task outside the page, without Streamlit calls:
what the model folder must hold for it (``Needs``, read by ``app.pretext.open_pretext``), the
task's network work on photos (``Panel.answer``), its score on the test photos and that score in
plain words (``Panel.score``, ``score_sub``, ``words``, ``baseline``, read by ``app.scores``).
Nothing outside this folder names a task.
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
class Needs:
    """What a task's panel needs from a model folder beyond model.onnx's features (``app.pretext.open_pretext``
    turns a missing piece into one line, ``Pretext.problem``).

    ``output``: one head output of model.onnx the panel reads, with ``lacking``, what is missing
    without it ("there is no filling to show"); ``head``: head.onnx, fed the encoder's feature
    map(s); ``stage_maps``: the encoder's stage maps too, named by what reads them ("the
    super-resolution head")."""

    output: str | None = None
    lacking: str = ""
    head: bool = False
    stage_maps: str | None = None


@dataclass(frozen=True)
class Panel:
    """How the explorer shows one task.

    ``label``: its name in the task picker ("Rotation"); ``name``: the task's name in a chart's legend
    when it is not the task's own ("super-resolution"); ``title``: the panel's heading, the
    task's question in a few words ("Which way is up?"); ``question``: the one
    sentence the panel opens with; ``show(entry, photos, ctx)`` draws it for a model entry and
    the photos ``[(name, PIL.Image)]``; ``order`` places it in the picker (the story first);
    ``show_sub(entry, photos, ctx)``, when set, draws the task's head inside a multi-task model;
    ``compute(entry, image)``, when set, is all the network work the panel does for one photo
    (a PIL image), without Streamlit: ``python -m app.measure`` times it; ``demo(entry, image)``,
    when set, is the task's question and the model's answer on one photo as two pictures (``Demo``),
    without Streamlit: talk mode shows it.

    Without Streamlit too: ``needs`` (``Needs``); ``answer(p, image_u8, *args)``, the task's
    network work on photos of the model's size (``p``: an ``app.pretext.Pretext``) → plain arrays;
    ``score(job)``, its score on the test photos (``job``: an ``app.scores.Scoring``; it adds to
    ``job.entry`` and returns None, or returns why the model cannot be scored); ``score_sub(job,
    sub)``, the same for its head inside a multi-task model; ``words(s)``: one score (a dict whose
    "kind" is the task) in plain words; ``baseline(s)``: the baseline that score is weighed
    against, in a few words; ``unscored``: why a task is never scored (the no-pretraining reference)."""

    task: str
    label: str
    title: str
    question: str
    show: Callable[..., None]
    order: int = 100
    show_sub: Callable[..., None] | None = None
    compute: Callable[..., object] | None = None
    demo: Callable[..., Demo] | None = None
    needs: Needs = Needs()
    answer: Callable[..., dict] | None = None
    score: Callable[..., str | None] | None = None
    score_sub: Callable[..., None] | None = None
    words: Callable[[dict], str] | None = None
    baseline: Callable[[dict], str] | None = None
    unscored: str | None = None
    name: str | None = None


PANELS: dict[str, Panel] = {}


def register(task: str, label: str, title: str, question: str, order: int = 100, needs: Needs = Needs(),
             unscored: str | None = None, name: str | None = None) -> Callable:
    """Decorator: ``@register("rotation", "Rotation", "Which way is up?", "…")`` over the panel's ``show``."""

    def deco(fn: Callable[..., None]) -> Callable[..., None]:
        PANELS[task] = Panel(task, label, title, question, fn, order, needs=needs, unscored=unscored, name=name)
        return fn

    return deco


def _part(task: str, field: str) -> Callable:
    """Decorator: the function is the panel of ``task``'s (registered first) ``field``."""

    def deco(fn: Callable) -> Callable:
        PANELS[task] = dataclasses.replace(PANELS[task], **{field: fn})
        return fn

    return deco


def register_answer(task: str) -> Callable:
    """Decorator: the task's network work on photos (see ``Panel.answer``)."""
    return _part(task, "answer")


def register_score(task: str) -> Callable:
    """Decorator: the task's score on the test photos (see ``Panel.score``)."""
    return _part(task, "score")


def register_score_sub(task: str) -> Callable:
    """Decorator: the score of the task's head inside a multi-task model (see ``Panel.score_sub``)."""
    return _part(task, "score_sub")


def register_words(task: str) -> Callable:
    """Decorator: the task's score in plain words (see ``Panel.words``)."""
    return _part(task, "words")


def register_baseline(task: str) -> Callable:
    """Decorator: the baseline of the task's score in a few words (see ``Panel.baseline``)."""
    return _part(task, "baseline")


def register_sub(task: str) -> Callable:
    """Decorator: how the panel of ``task`` (registered first) shows that task's head inside a
    multi-task model."""
    return _part(task, "show_sub")


def register_compute(task: str) -> Callable:
    """Decorator: the panel of ``task``'s network work for one photo (see ``Panel.compute``)."""
    return _part(task, "compute")


def register_demo(task: str) -> Callable:
    """Decorator: the panel of ``task``'s one-photo demo for talk mode (see ``Panel.demo``)."""
    return _part(task, "demo")


def load_all() -> dict[str, Panel]:
    """Import every panel module of this package once (each registers itself). Outside a running app
    (``python -m app.scores``, the talk's export) Streamlit's "No runtime found" warning for each
    panel cache is silenced: those caches are not used there."""
    import logging

    from streamlit.runtime.caching import cache_data_api

    log = logging.getLogger(cache_data_api.__name__)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        for m in pkgutil.iter_modules(__path__):
            if not m.name.startswith("_") and m.name != "common":
                importlib.import_module(f"{__name__}.{m.name}")
    finally:
        log.setLevel(level)
    return PANELS


def answer_of(task: str) -> Callable[..., dict]:
    """The task's ``Panel.answer`` (every panel loaded first)."""
    return (PANELS.get(task) or load_all()[task]).answer


def panel_for(task: str) -> Panel:
    """The task's own panel, else the generic one (similar photos by the encoder's features)."""
    load_all()
    return PANELS.get(task) or PANELS[GENERIC]

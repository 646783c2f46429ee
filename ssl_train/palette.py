"""One palette for every chart: the app's (and talk mode's) and the report figures (``ssl_train.report``),
a colour per encoder and per flower class, so a task has the same colour wherever it is drawn.

It lives in ``ssl_train`` because the training package never imports the app; ``app.palette``
re-exports it. Plain hex strings, no plotting library: plotly (the app) and matplotlib (the
reports) both take them.

Colour-blind safe: the encoder colours are Paul Tol's "bright" and "muted" qualitative schemes
(designed to stay distinct under the common colour-vision deficiencies), scratch is neutral grey.
Class colours follow the flowers where the eye expects it (sunflower gold, dandelion yellow, rose
red, tulip pink) and keep the five apart for colour-blind viewers (Okabe–Ito hues, dandelion
darkened so it reads on white). Unknown names hash into the same scheme, so a new task or class
gets a stable colour without editing this file.
"""
from __future__ import annotations

import zlib

__all__ = ["SCRATCH", "UPLOAD", "HIGHLIGHT", "ENCODERS", "CLASSES", "encoder_colour", "class_colour", "class_colours"]

SCRATCH = "#7F7F7F"  # the no-pretraining reference ("scratch", "random_init"): neutral, never a task's hue
UPLOAD = "#111111"  # ★ uploads on maps: black with a white rim, above every class colour
HIGHLIGHT = "#FFD400"  # rim of selected points

# the story's two protagonists get the strongest hues: rotation (the idea) and SimCLR (the best encoder)
ENCODERS: dict[str, str] = {
    "rotation": "#EE6677",  # Tol bright red
    "simclr": "#4477AA",  # Tol bright blue
    "jigsaw": "#228833",  # Tol bright green
    "colorization": "#CCBB44",  # Tol bright yellow
    "context": "#66CCEE",  # Tol bright cyan
    "pirl": "#AA3377",  # Tol bright purple
    "deepcluster": "#EE7733",  # Tol vibrant orange
    "inpainting": "#882255",  # Tol muted wine
    "superres": "#44AA99",  # Tol muted teal
    "multitask": "#332288",  # Tol muted indigo
    "synthetic": "#999933",  # Tol muted olive
}
_SCRATCH_NAMES = ("scratch", "random_init")

CLASSES: dict[str, str] = {
    "daisy": "#0072B2",  # Okabe–Ito blue (a white flower: blue keeps it visible on white)
    "dandelion": "#C9A800",  # Okabe–Ito yellow, darkened to read on white
    "rose": "#D55E00",  # Okabe–Ito vermillion
    "sunflower": "#E69F00",  # Okabe–Ito orange-gold
    "tulip": "#CC79A7",  # Okabe–Ito reddish purple
}
_SPARE = ("#009E73", "#56B4E9", "#000000", "#BBBBBB")  # further classes: the rest of Okabe–Ito


def _hashed(name: str, colours: list[str] | tuple[str, ...]) -> str:
    return colours[zlib.crc32(name.encode()) % len(colours)]


def encoder_colour(name: str) -> str:
    """The colour of an encoder or task name; grey for scratch / random_init. A model folder named
    after its task with a suffix (``rotation-128``) takes its task's colour when given the task."""
    if name in _SCRATCH_NAMES:
        return SCRATCH
    return ENCODERS.get(name) or _hashed(name, list(ENCODERS.values()))


def class_colour(name: str, index: int = 0) -> str:
    """The colour of a flower class; an unknown class takes a spare colour by its position."""
    return CLASSES.get(name) or (_SPARE[index % len(_SPARE)] if index >= 0 else _hashed(name, _SPARE))


def class_colours(classes: list[str] | tuple[str, ...]) -> list[str]:
    """One colour per class, in the given order; distinct for up to 9 classes."""
    out, spare = [], iter(c for c in (*_SPARE, *ENCODERS.values()) if c not in CLASSES.values())
    for c in classes:
        out.append(CLASSES[c] if c in CLASSES else next(spare))
    return out

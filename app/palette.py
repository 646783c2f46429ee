"""The app's palette: ``ssl_train.palette`` re-exported (one palette for the app, the talk and the
report figures; it lives in ``ssl_train`` because the training package never imports the app).

A colour per encoder / task (scratch grey) and per flower class, colour-blind safe; see
``ssl_train.palette`` for the schemes and how unknown names get a stable colour.
"""
from __future__ import annotations

from ssl_train.palette import *  # noqa: F401,F403 — the names below, defined once in ssl_train

__all__ = ["SCRATCH", "UPLOAD", "HIGHLIGHT", "ENCODERS", "CLASSES", "encoder_colour", "class_colour", "class_colours"]

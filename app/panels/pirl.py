"""PIRL (Misra & van der Maaten, CVPR 2020): a photo and its own jigsaw version should look alike."""
from __future__ import annotations

from app.config import data_dir

from . import _contrast, register, register_compute
from .common import bundled_index

TITLE = "Recognise a photo from its shuffled version"
QUESTION = ("The model does not predict anything: it learns to give a photo and **its own shuffled version** (jigsaw tiles) "
            "alike features, unlike **every other photo**. Shuffling cannot change what the photo shows, so the features "
            "must describe that.")


@register("pirl", "PIRL", TITLE, QUESTION, order=6)
def show(entry, items, ctx) -> None:
    _contrast.show(entry, items, ctx, "pirl", TITLE, QUESTION, "its shuffled version",
                   lambda r, i: [(r["puzzles"][i], "its shuffled version")])


@register_compute("pirl")
def compute(entry, img) -> dict:
    return _contrast.compute(entry, img, bundled_index(str(data_dir())), "pirl")

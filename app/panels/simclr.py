"""SimCLR (Chen et al., ICML 2020): two random views of one photo should look alike."""
from __future__ import annotations

from app.config import data_dir

from . import _contrast, register, register_compute
from .common import bundled_index

TITLE = "Recognise a photo from another view of it"
QUESTION = ("The model does not predict anything: it learns to give **two random views** of one photo (cropped, flipped, "
            "colours changed) alike features, unlike the views of **every other photo**. The views differ in everything "
            "but what the photo shows, so the features must describe that.")


@register("simclr", "SimCLR", TITLE, QUESTION, order=7)
def show(entry, items, ctx) -> None:
    _contrast.show(entry, items, ctx, "simclr", TITLE, QUESTION, "its first view",
                   lambda r, i: [(r["first"][i], "view 1"), (r["second"][i], "view 2")])


@register_compute("simclr")
def compute(entry, img) -> dict:
    return _contrast.compute(entry, img, bundled_index(str(data_dir())), "simclr")

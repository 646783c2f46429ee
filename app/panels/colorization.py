"""Colorization (Zhang et al., ECCV 2016): colour a black-and-white photo."""
from __future__ import annotations

import streamlit as st

from app import pretext

from . import DEMO_SIDE, Demo, register, register_compute, register_demo
from .common import answer, answers, details, header, load, measured_sentence, photo_box, picture_row

TITLE = "Colour this black-and-white photo"
QUESTION = ("We take the colour out of your photo and ask the model to **paint it back**. To colour a tulip red and the "
            "leaves green, it has to recognise what is in the picture.")


@register("colorization", "Colouring", TITLE, QUESTION, order=2)
def show(entry, items, ctx) -> None:
    p = load(entry)
    if p is None:
        return
    header(entry, TITLE, QUESTION, measured_sentence(entry), p.model.image_size)
    errs = []
    for name, u8, r in answers(entry, p, items, "colorization"):
        errs.append((r["ab_rmse"], r["ab_rmse_grey"]))
        with photo_box(name):
            picture_row([(r["grey"], "what the model gets: no colour"), (r["predicted"], "the model's colours"), (r["original"], "the real colours")])
            better = r["ab_rmse"] < r["ab_rmse_grey"]
            st.markdown(("✅ Closer to the real colours than leaving the photo grey" if better else
                         "❌ Not closer to the real colours than leaving the photo grey")
                        + f" (colour error {r['ab_rmse']:.1f} vs {r['ab_rmse_grey']:.1f} for grey).")
    details(entry, ["colour error: root-mean-square distance of the colours in Lab a/b units on the model's 1/4-size "
                    "grid (0 = the real colours; grey everywhere scores the photo's own colourfulness, ≈ 20–40 on flowers)",
                    "the model predicts a probability for each of 313 colour bins per pixel and shows their annealed mean, "
                    "so colours come out muted where it is unsure"])


@register_compute("colorization")
def compute(entry, img) -> dict:
    return answer(entry, "colorization", img)


@register_demo("colorization")
def demo(entry, img) -> Demo:
    """``img`` without its colour → the colours the model paints on it."""
    r = answer(entry, "colorization", img)
    return Demo(pretext.enlarge(r["grey"], DEMO_SIDE, smooth=True), pretext.enlarge(r["predicted"], DEMO_SIDE, smooth=True),
                "no colour", "the model's colours", "Put the colour back")

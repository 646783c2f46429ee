"""Inpainting, the context encoder (Pathak et al., CVPR 2016): fill the hole."""
from __future__ import annotations

import streamlit as st

from app import pretext

from . import DEMO_SIDE, Demo, register, register_compute, register_demo
from .common import answer, answers, details, header, load, measured_sentence, photo_box, picture_row

TITLE = "Fill the hole"
QUESTION = ("We cut a square **hole** out of your photo and ask the model to **paint what was there** from the "
            "surroundings. To do it well, it has to understand what the rest of the picture shows.")


@register("inpainting", "Fill the hole", TITLE, QUESTION, order=4)
def show(entry, items, ctx) -> None:
    p = load(entry)
    if p is None:
        return
    header(entry, TITLE, QUESTION, measured_sentence(entry), p.model.image_size)
    for name, u8, r in answers(entry, p, items, "inpainting"):
        with photo_box(name):
            picture_row([(r["masked"], "what the model gets: a hole"), (r["filled"], "the hole filled by the model"),
                         (r["flat"], "the plain answer: one flat colour"), (r["original"], "the real photo")], width=140)
            better = r["hole_mse"] < r["hole_mse_flat"]
            st.markdown(("✅ Closer to the real photo than filling the hole with the colour around it" if better else
                         "❌ Not closer to the real photo than filling the hole with the colour around it")
                        + f" (error {r['hole_mse']:.4f} vs {r['hole_mse_flat']:.4f}).")
            st.caption("A blurry filling is normal: the model paints the likely colours and shapes, not the exact pixels.")
    details(entry, ["error: mean squared difference inside the hole, pixel values 0–1 (0 = the real photo)",
                    "the plain answer fills the hole with the mean colour of a 2-pixel ring around it",
                    f"training cut holes at {'random places' if p.config.mask_mode == 'random' else 'the centre'}; here the hole is in the centre"])


@register_compute("inpainting")
def compute(entry, img) -> dict:
    return answer(entry, "inpainting", img)


@register_demo("inpainting")
def demo(entry, img) -> Demo:
    """``img`` with the centre hole the panel cuts → the hole filled by the model."""
    r = answer(entry, "inpainting", img)
    return Demo(pretext.enlarge(r["masked"], DEMO_SIDE, smooth=True), pretext.enlarge(r["filled"], DEMO_SIDE, smooth=True),
                "a hole", "filled by the model", "Paint what was in the hole")

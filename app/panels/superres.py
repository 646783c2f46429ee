"""Super-resolution as a pretext task: sharpen a shrunken photo."""
from __future__ import annotations

import streamlit as st

from app import pretext

from . import DEMO_SIDE, Demo, register, register_compute, register_demo
from .common import answer, answers, details, header, load, measured_sentence, photo_box, picture_row

TITLE = "Make the small photo sharp again"
QUESTION = ("We shrink your photo and ask the model to **restore the detail**. The plain way — smooth enlargement "
            "(bicubic) — is the answer to beat; to beat it, the model has to know what petal edges and textures look like.")
VISIBLE_DB = 0.5  # a PSNR gain below this is not something a viewer can see


@register("superres", "Sharpen", TITLE, QUESTION, order=5)
def show(entry, items, ctx) -> None:
    p = load(entry)
    if p is None:
        return
    header(entry, TITLE, QUESTION, measured_sentence(entry), p.model.image_size)
    for name, u8, r in answers(entry, p, items, "superres"):
        gain = r["psnr_model"] - r["psnr_bicubic"]
        with photo_box(name):
            s = r["small"].shape[-1]
            picture_row([(r["small"], f"what the model gets: {s}×{s} px"), (r["bicubic"], "smooth enlargement (bicubic)"),
                         (r["restored"], "the model's restoration"), (r["change"], "what it changed, ×4 (black: nothing)"),
                         (r["original"], "the real photo")], width=130, smooth=False)
            if gain >= VISIBLE_DB:
                st.markdown(f"✅ The model is closer to the real photo than bicubic by **{gain:.1f} dB** — a difference you can see.")
            else:
                st.markdown(f"➖ **No visible gain over bicubic** on this photo ({r['psnr_model']:.1f} dB vs {r['psnr_bicubic']:.1f} dB; "
                            f"a difference under {VISIBLE_DB} dB cannot be seen). The dark *what the model changed* picture "
                            "shows how little it adds: at this training budget it has learnt almost nothing beyond smooth enlargement.")
    details(entry, ["PSNR (dB): how close a picture is to the real photo; higher is closer, +1 dB is a small but visible step",
                    f"the model predicts a correction on top of bicubic enlargement (×{p.config.factor}); "
                    "'what the model changed' is that correction's size, amplified 4×"])


@register_compute("superres")
def compute(entry, img) -> dict:
    return answer(entry, "superres", img)


@register_demo("superres")
def demo(entry, img) -> Demo:
    """``img`` shrunk by the task's factor (its pixels shown blocky, as the model gets them) → the
    model's restoration. Honest like the panel: the caption says whether it is visibly sharper than
    plain smooth enlargement (bicubic), which at this training budget it mostly is not."""
    r = answer(entry, "superres", img)
    s = r["small"].shape[-1]
    gain = r["psnr_model"] - r["psnr_bicubic"]
    verdict = "visibly sharper than smooth enlarging" if gain >= VISIBLE_DB else "no sharper than smooth enlarging"
    return Demo(pretext.enlarge(r["small"], DEMO_SIDE, smooth=False), pretext.enlarge(r["restored"], DEMO_SIDE, smooth=True),
                f"shrunk to {s}×{s} pixels", verdict, "Make the small photo sharp")

"""Colorization (Zhang et al., ECCV 2016): colour a black-and-white photo."""
from __future__ import annotations

import streamlit as st

import numpy as np

from app import pretext, scores
from app.inference import ModelFileError
from app.pretext import Pretext, as_tensor, fmap_for_head, first_output, reexport, to_np, to_u8

from . import (DEMO_SIDE, Demo, Needs, register, register_answer, register_baseline, register_compute, register_demo,
               register_score, register_words)
from .common import answer, answers, details, header, load, measured_sentence, photo_box, picture_row

TITLE = "Colour this black-and-white photo"
QUESTION = ("We take the colour out of your photo and ask the model to **paint it back**. To colour a tulip red and the "
            "leaves green, it has to recognise what is in the picture.")


@register("colorization", "Colouring", TITLE, QUESTION, order=2, needs=Needs(head=True))
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


# -- without Streamlit: the model's answer, its score on the test photos, in plain words -----------------
@register_answer("colorization")
def colour(p: Pretext, image_u8: np.ndarray) -> dict:
    """The photo's lightness L (all the encoder sees), the colours the model predicts for it
    (annealed mean of its colour-bin probabilities, put back on L) and the original.

    → {"grey", "predicted", "original": uint8 (3, S, S), "ab_rmse": error of the predicted colour
    (ab units, on the model's S/4 grid), "logits" (1, Q, S/4, S/4), "ab" (1, 2, S/4, S/4)}."""
    import torch

    from ssl_train.tasks import colorization as Co

    cfg = p.config
    x = as_tensor(image_u8)
    L, ab = Co.rgb_to_l_ab(x)
    fmap = fmap_for_head(p, p.encoder.run(to_np(Co.l_to_input(L)))["fmap"])
    logits = first_output(p.head.run(fmap))
    bins = Co.ab_bins()
    if logits.ndim != 4 or logits.shape[1] != len(bins):
        raise ModelFileError(f"{p.model.name}: head.onnx gives {list(logits.shape)}, not scores over the {len(bins)} colour bins; {reexport(p.model)}")
    ab_pred = Co.decode_ab(torch.from_numpy(logits), bins, cfg.temperature)
    target = Co.make_views(x, cfg, None, train=False).ab
    rmse = float(((ab_pred - target) ** 2).sum(1).mean().sqrt())
    rmse_grey = float((target ** 2).sum(1).mean().sqrt())  # the no-colour answer: a = b = 0 everywhere
    return {
        "grey": to_u8(Co.l_ab_to_rgb(L, torch.zeros_like(ab))[0]), "predicted": to_u8(Co.colorize(L, ab_pred)[0]),
        "original": np.asarray(image_u8), "ab_rmse": rmse, "ab_rmse_grey": rmse_grey, "logits": logits, "ab": to_np(ab_pred),
    }


def score_photos(p: Pretext, images_u8: np.ndarray) -> dict:
    """``colour`` on each test photo → {"model_rmse", "baseline_rmse": root mean square ab error
    (Lab colour units, on the model's S/4 grid) of the predicted colours and of grey (a = b = 0) over
    all photos' pixels, "share_beats_baseline" photos whose predicted colours are closer than grey,
    "photos"}."""
    m, g = [], []
    for img in images_u8:
        r = colour(p, img)
        m.append(r["ab_rmse"])
        g.append(r["ab_rmse_grey"])
    m_, g_ = np.asarray(m), np.asarray(g)
    return {"kind": "colorization", "baseline": "grey (no colour: a = b = 0)",
            "model_rmse": float(np.sqrt(np.mean(m_ ** 2))) if len(m_) else 0.0,
            "baseline_rmse": float(np.sqrt(np.mean(g_ ** 2))) if len(g_) else 0.0,
            "share_beats_baseline": float(np.mean(m_ < g_)) if len(m_) else 0.0, "photos": len(m)}


@register_score("colorization")
def score(job: scores.Scoring) -> str | None:
    return scores.on_pretext(job, lambda p: score_photos(p, job.images))


@register_words("colorization")
def words(s: dict) -> str:
    worse = "" if s["model_rmse"] < s["baseline_rmse"] else " — no better than leaving it grey"
    return (f"colours a photo closer to the real one than leaving it grey {scores.times_in_100(s['share_beats_baseline'])}; "
            f"colour error {s['model_rmse']:.1f} vs {s['baseline_rmse']:.1f} for grey (lower is closer){worse}")


@register_baseline("colorization")
def baseline(s: dict) -> str:
    return f"grey: error {s['baseline_rmse']:.1f}"

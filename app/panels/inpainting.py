"""Inpainting, the context encoder (Pathak et al., CVPR 2016): fill the hole."""
from __future__ import annotations

import math

import numpy as np
import streamlit as st

from app import pretext, scores
from app.pretext import Pretext, as_tensor, to_np, to_u8

from . import (DEMO_SIDE, Demo, Needs, register, register_answer, register_baseline, register_compute, register_demo,
               register_score, register_words)
from .common import answer, answers, details, header, load, measured_sentence, photo_box, picture_row

TITLE = "Fill the hole"
QUESTION = ("We cut a square **hole** out of your photo and ask the model to **paint what was there** from the "
            "surroundings. To do it well, it has to understand what the rest of the picture shows.")


@register("inpainting", "Fill the hole", TITLE, QUESTION, order=4,
          needs=Needs(output="prediction", lacking="there is no filling to show"))
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


# -- without Streamlit: the model's answer, its score on the test photos, in plain words -----------------
@register_answer("inpainting")
def fill(p: Pretext, image_u8: np.ndarray, where: str = "center") -> dict:
    """Cut the task's square hole (``where`` "center", or "random" with a fixed seed), let the
    model repaint the whole photo from the rest, keep its painting inside the hole.

    → {"masked", "filled", "prediction", "original": uint8 (3, S, S), "box" (top, left, bottom,
    right), "hole_mse", "context_mse", "raw" (1, 3, S, S) float32 model output}."""
    import torch

    from ssl_train.tasks import inpainting as I
    from ssl_train.tasks.base import normalize

    cfg = p.config
    x = as_tensor(image_u8)
    s = x.shape[-1]
    side = I.hole_side(s, cfg.hole_fraction)
    pos = I.hole_positions(1, s, side, where, torch.Generator().manual_seed(0), "cpu")
    mask = I.box_mask(pos, side, s)
    masked = I.mask_image(x, mask)
    m = p.model
    raw = m.session.run(["prediction"], {m.input_name: to_np(normalize(masked))})[0]
    pred = torch.from_numpy(raw)
    filled = I.fill_hole(x, pred, mask)
    se = ((pred - x) ** 2).mean(1, keepdim=True)
    t, l = (int(v) for v in pos[0])
    # the plain answer to beat: the hole filled with the mean colour of the pixels around it
    ring = (I.box_mask(pos - 2, side + 4, s) - mask).clamp_min(0)
    flat = (x * ring).sum((2, 3), keepdim=True) / ring.sum().clamp_min(1)
    se_flat = ((flat - x) ** 2).mean(1, keepdim=True)
    return {
        "masked": to_u8(masked[0]), "filled": to_u8(filled[0]), "prediction": to_u8(pred[0]), "original": np.asarray(image_u8),
        "box": (t, l, t + side, l + side), "hole_mse": float((se * mask).sum() / mask.sum()),
        "hole_mse_flat": float((se_flat * mask).sum() / mask.sum()),
        "flat": to_u8(x * (1 - mask) + flat * mask)[0],
        "context_mse": float((se * (1 - mask)).sum() / (1 - mask).sum().clamp_min(1)), "raw": raw,
    }


def score_photos(p: Pretext, images_u8: np.ndarray, where: str = "center") -> dict:
    """``fill`` on each test photo (the hole ``where`` the panel cuts it) → {"model_mse",
    "baseline_mse": mean square error in the hole (RGB in [0, 1]) of the model's painting and of the
    hole filled with the mean colour of its 2-px border, "model_rms_levels", "baseline_rms_levels":
    the same as root mean square in 0..255 levels, "share_beats_baseline" photos where the model's
    hole error is lower, "photos", "hole"}."""
    m, f = [], []
    for img in images_u8:
        r = fill(p, img, where)
        m.append(r["hole_mse"])
        f.append(r["hole_mse_flat"])
    m_, f_ = np.asarray(m), np.asarray(f)
    mm, fm = (float(m_.mean()), float(f_.mean())) if len(m_) else (0.0, 0.0)
    return {"kind": "inpainting", "baseline": "the hole filled with the mean colour of its border", "hole": where,
            "model_mse": mm, "baseline_mse": fm, "model_rms_levels": 255 * math.sqrt(mm), "baseline_rms_levels": 255 * math.sqrt(fm),
            "share_beats_baseline": float(np.mean(m_ < f_)) if len(m_) else 0.0, "photos": len(m)}


@register_score("inpainting")
def score(job: scores.Scoring) -> str | None:
    return scores.on_pretext(job, lambda p: score_photos(p, job.images))


@register_words("inpainting")
def words(s: dict) -> str:
    worse = "" if s["model_rms_levels"] < s["baseline_rms_levels"] else " — no better than the flat fill"
    return (f"fills the hole closer to the real photo than a flat fill of the border's colour "
            f"{scores.times_in_100(s['share_beats_baseline'])}; off by {s['model_rms_levels']:.1f} vs {s['baseline_rms_levels']:.1f} "
            f"brightness levels (of 255) in the hole (lower is closer){worse}")


@register_baseline("inpainting")
def baseline(s: dict) -> str:
    return f"flat fill: {s['baseline_rms_levels']:.0f} levels"

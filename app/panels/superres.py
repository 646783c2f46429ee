"""Super-resolution as a pretext task: sharpen a shrunken photo."""
from __future__ import annotations

import numpy as np
import streamlit as st

from app import pretext, scores
from app.pretext import Pretext, as_tensor, fmap_for_head, first_output, to_np, to_u8
from app.scores import VISIBLE_DB  # a PSNR gain below this is not something a viewer can see

from . import (DEMO_SIDE, Demo, Needs, register, register_answer, register_baseline, register_compute, register_demo,
               register_score, register_words)
from .common import answer, answers, details, header, load, measured_sentence, photo_box, picture_row

TITLE = "Make the small photo sharp again"
QUESTION = ("We shrink your photo and ask the model to **restore the detail**. The plain way — smooth enlargement "
            "(bicubic) — is the answer to beat; to beat it, the model has to know what petal edges and textures look like.")


@register("superres", "Sharpen", TITLE, QUESTION, order=5, needs=Needs(head=True, stage_maps="the super-resolution head"),
          name="super-resolution")
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
    verdict = "sharper than plain enlarging" if gain >= VISIBLE_DB else "no sharper than plain enlarging"
    return Demo(pretext.enlarge(r["small"], DEMO_SIDE, smooth=False), pretext.enlarge(r["restored"], DEMO_SIDE, smooth=True),
                f"shrunk to {s}×{s} pixels", verdict, "Make the small photo sharp")


# -- without Streamlit: the model's answer, its score on the test photos, in plain words -----------------
@register_answer("superres")
def sharpen(p: Pretext, image_u8: np.ndarray) -> dict:
    """Shrink the photo by the task's factor, let the model restore it, compare with plain bicubic.

    → {"small" uint8 (3, S/f, S/f), "bicubic", "restored", "original" uint8 (3, S, S),
    "psnr_bicubic", "psnr_model" (dB), "factor", "raw" (1, 3, S, S) float32 head output}."""
    import torch

    from ssl_train.tasks import superres as SR
    from ssl_train.tasks.base import normalize

    cfg = p.config
    x = as_tensor(image_u8)
    small, up = SR.degrade(x, cfg.factor)
    enc_in = normalize(up if cfg.input_mode == "upsampled" else small)
    stages = p.encoder.run(to_np(enc_in), stages=True)["stages"]
    for i, st_ in enumerate(stages):
        fmap_for_head(p, st_, i)
    raw = first_output(p.head.run(*stages, to_np(up)))  # = bicubic + the predicted residual
    restored = SR.restore(up, torch.from_numpy(raw) - up)
    # what the model changed on top of bicubic, amplified ×4 around mid-grey so a viewer can see it
    change = (restored - up)[0].abs().mean(0, keepdim=True).mul(4).clamp(0, 1).expand(3, -1, -1)
    return {
        "small": to_u8(small[0]), "bicubic": to_u8(up[0]), "restored": to_u8(restored[0]), "original": np.asarray(image_u8),
        "change": to_u8(change),
        "psnr_bicubic": SR.psnr(up, x), "psnr_model": SR.psnr(restored, x), "factor": cfg.factor, "raw": raw,
    }


def score_photos(p: Pretext, images_u8: np.ndarray) -> dict:
    """``sharpen`` on each test photo → {"model_psnr_db", "baseline_psnr_db": mean over photos of each
    photo's PSNR (dB) of the model's restoration and of bicubic enlargement, "share_beats_baseline":
    photos where the model beats bicubic by ≥ ``VISIBLE_DB``, "share_worse" photos where it is below
    bicubic, "photos", "factor"}."""
    m, b = [], []
    factor = None
    for img in images_u8:
        r = sharpen(p, img)
        m.append(r["psnr_model"])
        b.append(r["psnr_bicubic"])
        factor = r["factor"]
    m_, b_ = np.asarray(m), np.asarray(b)
    return {"kind": "superres", "baseline": "bicubic enlargement", "factor": factor, "visible_db": VISIBLE_DB,
            "model_psnr_db": float(m_.mean()) if len(m_) else 0.0, "baseline_psnr_db": float(b_.mean()) if len(b_) else 0.0,
            "share_beats_baseline": float(np.mean(m_ - b_ >= VISIBLE_DB)) if len(m_) else 0.0,
            "share_worse": float(np.mean(m_ < b_)) if len(m_) else 0.0, "photos": len(m)}


@register_score("superres")
def score(job: scores.Scoring) -> str | None:
    return scores.on_pretext(job, lambda p: score_photos(p, job.images))


@register_words("superres")
def words(s: dict) -> str:
    gain = s["model_psnr_db"] - s["baseline_psnr_db"]
    worse = "" if gain >= s["visible_db"] else " — no visible gain over bicubic"
    return (f"beats plain enlargement (bicubic) by a visible margin (≥ {s['visible_db']} dB) "
            f"{scores.times_in_100(s['share_beats_baseline'])}; {s['model_psnr_db']:.2f} dB vs bicubic's {s['baseline_psnr_db']:.2f} dB "
            f"on average (higher is closer){worse}")


@register_baseline("superres")
def baseline(s: dict) -> str:
    return f"bicubic: {s['baseline_psnr_db']:.2f} dB (model {s['model_psnr_db']:.2f} dB)"

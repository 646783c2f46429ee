"""Context prediction (Doersch et al., ICCV 2015): where does this patch sit?"""
from __future__ import annotations

import numpy as np
import streamlit as st

from app import pretext, scores, state
from app.inference import softmax
from app.pretext import Pretext, as_tensor, fmap_for_head, first_output, to_np, to_u8

from . import Needs, register, register_answer, register_compute, register_score, register_score_sub, register_words
from .common import answer, answers, W, card_score, chance_words, details, header, load, photo_box

TITLE = "Where does this piece go?"
QUESTION = ("We show the model the **centre** of your photo and one **neighbouring piece**, and ask **where the piece "
            "sits** around the centre (8 places). To answer, it must recognise what is above or beside what — sky "
            "above, stem below.")


@register("context", "Where it goes", TITLE, QUESTION, order=3, needs=Needs(head=True))
def show(entry, items, ctx) -> None:
    from ssl_train.tasks.context import POSITION_NAMES

    p = load(entry)
    if p is None:
        return
    acc = card_score(entry, "acc")
    header(entry, TITLE, QUESTION, chance_words(acc, 1 / 8) if acc is not None else None, p.model.image_size)
    neighbour = st.segmented_control("Neighbour shown in detail", list(POSITION_NAMES), key=state.EXPLORER_NEIGHBOUR, required=True)
    for name, u8, r in answers(entry, p, items, "context"):
        names = list(r["names"])
        k = names.index(neighbour) if neighbour in names else 2
        pred = r["predicted"]
        with photo_box(name):
            c1, c2, c3, c4 = st.columns([1.3, 0.8, 0.8, 1.6])
            c1.image(pretext.draw_boxes(u8, r["boxes"], W, {4: "yellow", r["cells"][k]: "red"}), width=W,
                     caption="yellow: the centre · red: the piece")
            c2.image(pretext.enlarge(r["centre"], 110), caption="centre", width=110)
            c3.image(pretext.enlarge(r["neighbours"][k], 110), caption="the piece", width=110)
            with c4:
                ok = int(pred[k]) == k
                st.markdown(f"{'✅' if ok else '❌'} The model puts the piece at the **{names[int(pred[k])]}** "
                            f"(truth: {names[k]}). For all 8 pieces of this photo it is right **{int((pred == np.arange(8)).sum())} of 8** times.")
                probs = r["probs"][k]
                cell_p = {c: probs[j] for j, c in enumerate(r["cells"])}
                rows = ["| | left | middle | right |", "|---|:-:|:-:|:-:|"]
                for ri, rn in enumerate(("top", "middle", "bottom")):
                    cells = []
                    for ci in range(3):
                        c = 3 * ri + ci
                        if c == 4:
                            cells.append("⬛")
                            continue
                        txt = f"{cell_p[c]:.0%}"
                        txt = f"**{txt}**" if c == r["cells"][int(pred[k])] else txt
                        cells.append(txt + (" 🎯" if c == r["cells"][k] else ""))
                    rows.append(f"| {rn} | " + " | ".join(cells) + " |")
                st.markdown("\n".join(rows))
                st.caption("How sure it is of each place; 🎯 the true place, bold its guess.")
            with st.expander("All 8 pieces"):
                cols = st.columns(8)
                for j, col in enumerate(cols):
                    col.image(pretext.enlarge(r["neighbours"][j], 64), width=64)
                    col.caption(f"{names[j]} → {names[int(pred[j])]} {'✅' if pred[j] == j else '❌'}")
    details(entry, ["8 places, so guessing is right 1 time in 8",
                    f"places right on the test split: {100 * acc:.1f}%" if acc is not None else "no pretext test in model.json",
                    "pieces are kept apart and brightness-equalised, so lines cannot simply be continued"])


@register_compute("context")
def compute(entry, img) -> dict:
    return answer(entry, "context", img)


# -- without Streamlit: the model's answer, its score on the test photos, in plain words -----------------
@register_answer("context")
def place_pieces(p: Pretext, image_u8: np.ndarray) -> dict:
    """All 8 (centre, neighbour) pairs of the photo (centred patches, as on the test split), each
    classified by the model into one of the 8 positions.

    → {"centre" uint8 (3, t, t), "neighbours" uint8 (8, 3, t, t) in label order, "probs" (8, 8):
    row = true position, column = the model's probability for each position, "predicted" (8,),
    "boxes" (9, 4) pixel boxes of the 9 cells' patches (row 4 = centre), "names", "cells": label →
    cell 0..8 in reading order, "logits" (8, 8)}."""
    import torch

    from ssl_train.tasks import context as C
    from ssl_train.tasks.jigsaw import standardize_tiles

    cfg = p.config
    x = as_tensor(image_u8)
    labels = torch.arange(8)
    pairs = C.cut_pair(x.expand(8, -1, -1, -1), labels, cfg.tile_size, cfg.gap)  # (8, 2, 3, t, t)
    inp = standardize_tiles(pairs).reshape(-1, *pairs.shape[2:])  # rows 2i / 2i+1 = centre / neighbour
    fmap = fmap_for_head(p, p.encoder.run(to_np(inp))["fmap"])
    logits = first_output(p.head.run(fmap))
    probs = softmax(logits)
    return {
        "centre": to_u8(pairs[0, 0]), "neighbours": to_u8(pairs[:, 1]), "probs": probs, "predicted": probs.argmax(1),
        "boxes": C.patch_boxes(x.shape[-1], cfg.tile_size, cfg.gap).numpy(), "names": C.POSITION_NAMES,
        "cells": C.NEIGHBOUR_CELLS, "logits": logits,
    }


def score_photos(p: Pretext, images_u8: np.ndarray) -> dict:
    """``place_pieces`` on each test photo: all 8 (centre, neighbour) pairs → {"share" of the 8N
    positions named right, "chance" 1/8, "answers" 8N, "photos" N}."""
    right = []
    for img in images_u8:
        r = place_pieces(p, img)
        right.append(np.asarray(r["predicted"]) == np.arange(len(r["predicted"])))
    a = np.concatenate(right) if right else np.zeros(0, bool)
    return {"kind": "context", "share": float(a.mean()) if len(a) else 0.0, "chance": 1.0 / 8, "answers": int(len(a)),
            "photos": len(right)}


@register_score("context")
def score(job: scores.Scoring) -> str | None:
    return scores.on_pretext(job, lambda p: score_photos(p, job.images))


@register_score_sub("context")
def score_sub(job: scores.Scoring, sub: str) -> None:
    """A multi-task model's context head, through its own graph."""
    p = scores.open_sub(job, sub)
    if p is not None:
        job.add(dict(score_photos(p, job.images), head=sub))


@register_words("context")
def words(s: dict) -> str:
    return f"names where a neighbouring patch sits {scores.times_in_100(s['share'])} ({scores.guessing(s)})"

"""Context prediction (Doersch et al., ICCV 2015): where does this patch sit?"""
from __future__ import annotations

import numpy as np
import streamlit as st

from app import pretext, state

from . import register, register_compute
from .common import answer, answers, W, card_score, chance_words, details, header, load, photo_box

TITLE = "Where does this piece go?"
QUESTION = ("We show the model the **centre** of your photo and one **neighbouring piece**, and ask **where the piece "
            "sits** around the centre (8 places). To answer, it must recognise what is above or beside what — sky "
            "above, stem below.")


@register("context", "Where it goes", TITLE, QUESTION, order=3)
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

"""The no-pretraining reference: what a random network's features confuse, beside a pretrained one."""
from __future__ import annotations

import streamlit as st

from app import inference, ui
from app.config import RANDOM_INIT
from app.uploads import md_escape

from . import register, register_compute
from .common import header
from .generic import compute as generic_compute
from .generic import look_alikes, show_look_alikes

TITLE = "Without pretraining: what looks alike to a random network?"
QUESTION = ("A network that never trained still turns photos into features, but they follow **colour and brightness**, "
            "not flowers. Beside it, the best pretrained encoder: pretraining is what makes look-alikes the same flower.")


@register(RANDOM_INIT, "No pretraining", TITLE, QUESTION, order=98,
          unscored="random init: no pretext task and no head, so nothing to score (the no-pretraining reference)")
def show(entry, items, ctx) -> None:
    header(entry, TITLE, QUESTION, None, int((entry.card or {}).get("input", {}).get("image_size", 0)) or 0)
    if ctx.index is None:
        st.info("The bundled test photos are needed to find look-alikes.")
        return
    best_name = inference.featured_model(ctx.entries, "knn")
    best = ui.model_by_name(ctx.entries, best_name)
    mine = look_alikes(entry, items, ctx.index) or []
    theirs = (look_alikes(best, items, ctx.index) if best is not None else None) or [None] * len(mine)
    for (name, near, vote), other in zip(mine, theirs):
        with st.container(border=True):
            st.markdown(f"##### {md_escape(name)}")
            st.markdown(f"**Random network** — its closest test photos (mostly {vote}):")
            show_look_alikes(ctx.index, name, near)
            if other is not None:
                st.markdown(f"**{md_escape(best.name)}, pretrained without labels** — its closest test photos (mostly {other[2]}):")
                show_look_alikes(ctx.index, name, other[1])
    st.caption("The flower names come from the labels, which neither encoder saw. Compare the two on the Embedding map "
               "and in the Few-shot lab.")


register_compute(RANDOM_INIT)(generic_compute)  # its own look-alikes (the pretrained encoder's are that encoder's)

"""Multi-task (Doersch & Zisserman, ICCV 2017): one encoder trained on several pretext tasks at once."""
from __future__ import annotations

import streamlit as st

from app import pretext, state
from app.uploads import md_escape

from . import PANELS, register, register_compute
from .common import header

TITLE = "Several questions at once"
QUESTION = ("One encoder learns several pretext tasks at the same time — here each of its questions, answered by its own "
            "small head on the shared features.")


@register("multitask", "Multi-task", TITLE, QUESTION, order=9)
def show(entry, items, ctx) -> None:
    try:
        parts = pretext.multitask_parts(entry.card)
    except Exception:  # noqa: BLE001 (a card this version cannot parse: say so, below)
        parts = []
    header(entry, TITLE, QUESTION, None, int((entry.card or {}).get("input", {}).get("image_size", 0)) or 0,
           use_measured=False)  # each sub-task's panel below says its own score
    if not parts:
        st.warning(f"{md_escape(entry.name)}'s model.json does not list its sub-tasks; re-export it.")
        return
    st.markdown("Its tasks and their weights in the loss: " + ", ".join(f"**{n}** ×{w:g}" for n, w in parts) + ".")
    names = [n for n, _ in parts]
    if st.session_state.get(state.EXPLORER_SUBTASK) not in names:
        st.session_state[state.EXPLORER_SUBTASK] = names[0]
    sub = st.segmented_control("Which of its questions?", names, key=state.EXPLORER_SUBTASK, required=True,
                               format_func=lambda n: PANELS[n].label if n in PANELS else n) or names[0]
    panel = PANELS.get(sub)
    with st.container(border=True):
        if panel is not None and panel.show_sub is not None:
            panel.show_sub(entry, items, ctx)
        else:
            st.info(f"No panel shows a multi-task model's **{md_escape(sub)}** head yet; its shared features work on the "
                    "Embedding map and in the Few-shot lab.")


@register_compute("multitask")
def compute(entry, img) -> dict:
    """Its first sub-task's answer (the one shown when the panel opens)."""
    from app import pretext as _p

    first = _p.multitask_parts(entry.card)[0][0]
    return PANELS[first].compute(entry, img)

"""Multi-task (Doersch & Zisserman, ICCV 2017): one encoder trained on several pretext tasks at once."""
from __future__ import annotations

import streamlit as st

from app import scores, state
from app.uploads import md_escape

from . import PANELS, register, register_compute, register_score
from .common import header

TITLE = "Several questions at once"
QUESTION = ("One encoder learns several pretext tasks at the same time — here each of its questions, answered by its own "
            "small head on the shared features.")


@register("multitask", "Multi-task", TITLE, QUESTION, order=9, name="multi-task")
def show(entry, items, ctx) -> None:
    try:
        parts = multitask_parts(entry.card)
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
    first = multitask_parts(entry.card)[0][0]
    return PANELS[first].compute(entry, img)


# -- without Streamlit: its sub-tasks, their scores on the test photos ---------------------------------------
def multitask_parts(card: dict) -> list[tuple[str, float]]:
    """[(sub-task, loss weight)] of a multitask model (``multitask.parse_tasks`` on its config)."""
    from ssl_train.tasks.multitask import parse_tasks

    return parse_tasks(str((card.get("task_config") or {}).get("tasks", "")))


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


@register_score("multitask")
def score(job: scores.Scoring) -> None:
    """Each sub-task whose panel scores a multi-task model's head (``Panel.score_sub``); the rest get a note."""
    scorers = sorted((p for p in PANELS.values() if p.score_sub is not None), key=lambda p: p.order)
    for sub, _w in multitask_parts(job.model.card):
        panel = PANELS.get(sub)
        if panel is not None and panel.score_sub is not None:
            panel.score_sub(job, sub)
        elif scores.open_sub(job, sub) is not None:
            job.note(f"its {sub} head is not scored here (only {_and([p.task for p in scorers])} sub-heads are)")
    return None

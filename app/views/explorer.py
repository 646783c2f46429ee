"""Pretext explorer: what one pretext task asks of a photo, and what its model answers.

Only the task on screen is computed: the picker chooses one model folder and its panel
(``app.panels``, one file per task) draws it. This page knows no task by name.
"""
from __future__ import annotations

import streamlit as st

from app import panels, photos, state, ui
from app.config import data_dir
from app.panels.common import Context
from app.uploads import md_escape

st.title("Pretext explorer")
st.markdown(
    "A **pretext task** is a question a photo can answer about itself — *which way is up? which piece goes where? what "
    "colour was this?* — so a model can practise on millions of photos with no labels. Practising makes it good at "
    "seeing flowers, which later helps with the real question (*which flower is this?*) when labels are few. "
    "Pick a task, then try it on your own photos."
)
entries = ui.usable_models()
index = ui.photo_index()
if not entries:
    st.stop()

# -- photos -------------------------------------------------------------------------------------------
items: list[tuple[str, object]] = []
st.subheader("Your photos")
c_up, c_pick = st.columns(2)
with c_up:
    uploads = ui.photo_input(state.EXPLORER_UPLOADER, "Pretext explorer", label="Upload your photos")
    items += [(p.name, p.image) for p in uploads]
with c_pick:
    if index is not None:
        options = index.picks()
        if state.EXPLORER_PICKS not in st.session_state:
            st.session_state[state.EXPLORER_PICKS] = options[:1] if uploads else options[:2]
        picked = st.multiselect(
            "…or pick bundled photos (test split: no model trained on them)", options, key=state.EXPLORER_PICKS,
            format_func=lambda f: f"{index.class_of(f)} · {f.rsplit('/', 1)[-1]}",
        )
        for f in picked:
            try:
                items.append((f"{index.class_of(f)} · {f.rsplit('/', 1)[-1]}", photos.open_bundled(data_dir(), f)))
            except Exception as e:  # noqa: BLE001 (a damaged bundled file: one line, the others still shown)
                st.error(f"{md_escape(f)}: cannot be opened ({type(e).__name__}); restore it from the repository")

# -- which task: one model folder at a time (?task=<folder> in the URL links to it) -------------------
by_name = {e.name: e for e in entries}
order = sorted(entries, key=lambda e: (panels.panel_for(e.task).order, e.name))
names = [e.name for e in order]
asked = st.query_params.get("task")
if not st.session_state.get(state.EXPLORER_TASK_FROM_URL):  # a link opens its task once; the picker rules after that
    st.session_state[state.EXPLORER_TASK_FROM_URL] = True
    if asked in by_name:
        st.session_state[state.EXPLORER_TASK] = asked
if st.session_state.get(state.EXPLORER_TASK) not in by_name:
    st.session_state[state.EXPLORER_TASK] = names[0]


def _label(name: str) -> str:
    e = by_name[name]
    label = panels.panel_for(e.task).label
    return label if e.name == e.task else f"{label} · {e.name}"


chosen = st.segmented_control("Pretext task", names, key=state.EXPLORER_TASK, format_func=_label, required=True) or names[0]
st.query_params["task"] = chosen

if not items:
    st.info("Upload a photo or pick a bundled one to see what the model makes of it.", icon="👆")
    st.stop()

entry = by_name[chosen]
panels.panel_for(entry.task).show(entry, items, Context(index=index, entries=entries))

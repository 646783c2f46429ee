"""Talk mode: the story of pretext tasks as projector slides, one live picture or chart each.

``?present=1`` (or the toggle) hides Streamlit's sidebar, header and toolbar; ``?step=N`` opens
slide N and follows every step, so a reload or a link lands on the same slide. ←/→, PageUp/PageDown
and Home/End step at any window size (``app/talk/keys.py``). Everything a slide shows is built once
and cached; sizes come from the browser's window, so every slide fits without scrolling.
"""
from __future__ import annotations

import streamlit as st

from app import state
from app.config import data_dir, models_dir, reports_dir
from app.talk import keys, layout, story


@st.cache_resource(show_spinner=False, max_entries=64)
def _visual(slide_key: str, choice: str | None, sources: story.Sources, signature: tuple):
    slide = next(s for s in story.SLIDES if s.key == slide_key)
    try:
        return story.build(slide, sources, choice)
    except story.MISSING as e:
        return e


def visual(slide: story.Slide, choice: str | None, sources: story.Sources):
    """The slide's visual or its Missing error, cached until an input file changes."""
    return _visual(slide.key, choice, sources, layout.signature(sources))


def step_to(i: int) -> None:
    st.session_state[state.TALK_STEP] = max(0, min(len(story.SLIDES) - 1, i))


def apply_key(step: str | None, i: int) -> int:
    n = len(story.SLIDES)
    return {"next": min(n - 1, i + 1), "prev": max(0, i - 1), "first": 0, "last": n - 1}.get(step or "", i)


def open_from_url() -> None:
    """The first run of a session takes ``?step=`` and ``?present=`` from the URL (once)."""
    if st.session_state.get(state.TALK_FROM_URL):
        return
    st.session_state[state.TALK_FROM_URL] = True
    st.session_state[state.TALK_STEP] = layout.step_from_url(st.query_params.get("step"), len(story.SLIDES))
    if "present" in st.query_params:
        st.session_state[state.TALK_PRESENT] = st.query_params.get("present") not in ("0", "false", "")


open_from_url()
k = keys.mount(state.TALK_KEYS)
if k.step:
    step_to(apply_key(k.step, int(st.session_state[state.TALK_STEP])))
i = max(0, min(len(story.SLIDES) - 1, int(st.session_state[state.TALK_STEP])))
slide = story.SLIDES[i]
present = bool(st.session_state[state.TALK_PRESENT])
notes = bool(st.session_state[state.TALK_NOTES])
st.query_params["step"] = str(i + 1)
if present:
    st.query_params["present"] = "1"
elif "present" in st.query_params:
    del st.query_params["present"]

sources = story.Sources(models_dir(), data_dir(), reports_dir())
choices = slide.choices(sources)
ck = f"{state.TALK_CHOICE}.{slide.key}"
if choices and st.session_state.get(ck) not in choices:
    st.session_state[ck] = choices[0]
choice = st.session_state.get(ck) if choices else None
shown = visual(slide, choice, sources)
box = layout.Box.for_window(k.width, k.height, present=present, notes=notes, controls=bool(choices), caption=bool(getattr(shown, "caption", "")))
st.html(layout.css(box, present))

st.markdown(f"<h1 class='talk-title'>{layout.esc(slide.title)}</h1><p class='talk-sub'>{layout.esc(slide.subtitle)}</p>", unsafe_allow_html=True)
if choices:
    st.segmented_control(slide.choice_label, choices, key=ck, label_visibility="collapsed")
if notes:
    body, side = st.columns([box.visual_w, box.notes_w], gap="medium")
    side.markdown(f"<div class='talk-notes'>{layout.esc(slide.notes)}</div>", unsafe_allow_html=True)
else:
    body = st.container()
with body:
    layout.draw(shown, box, key=f"talk.visual.{slide.key}.{choice}")

nav = st.columns([1, 1, 1.1, 1.6, 1.6, 2.6], vertical_alignment="center")
nav[0].button("◀", on_click=step_to, args=(i - 1,), disabled=i == 0, key=state.TALK_PREV, help="Previous slide (← or PageUp)", width="stretch")
nav[1].button("▶", on_click=step_to, args=(i + 1,), disabled=i == len(story.SLIDES) - 1, key=state.TALK_NEXT, type="primary",
              help="Next slide (→ or PageDown)", width="stretch")
nav[2].markdown(f"<span class='talk-count'>{i + 1} / {len(story.SLIDES)}</span>", unsafe_allow_html=True)
nav[3].toggle("Presenter", key=state.TALK_PRESENT, help="Hide the app's sidebar and header (or open the page with ?present=1)")
nav[4].toggle("Notes", key=state.TALK_NOTES, help="Speaker notes beside the slide")
nav[5].page_link(slide.link_page, label=slide.link_label, icon=":material/arrow_forward:")


# build the other slides now (cached per server), so a step never waits; a key pressed meanwhile
# interrupts this loop at the next placeholder update and reruns at once
tick = st.empty()
for other in story.SLIDES:
    for c in other.choices(sources) or (None,):
        try:
            visual(other, c, sources)
        except Exception:  # noqa: BLE001 — that slide shows its own error when it is opened
            pass
        tick.empty()

"""Talk mode's keyboard and screen size: a tiny ``st.components.v2`` component (no iframe).

Why our own: Streamlit's ``st.button(shortcut=…)`` knows only a button's own key and stops
answering once the button scrolls out of view; presentation clickers send PageUp/PageDown, and
slides must be sized to the screen, which Python cannot see. The component listens on the page's
``window`` (so a key works wherever the focus is, except in a text field), sends each step as a
one-shot trigger value (``next``, ``prev``, ``first``, ``last``) and reports the window's inner
size (px) as state, again after a resize settles. It draws nothing (height 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

KEYS = {"ArrowRight": "next", "PageDown": "next", "ArrowLeft": "prev", "PageUp": "prev", "Home": "first", "End": "last"}
DEFAULT_VIEWPORT = (1280, 720)  # until the browser has reported: the smaller projector, so nothing overflows

_JS = r"""
export default function (component) {
  const { data, setTriggerValue, setStateValue } = component;
  const G = window.__pretextTalk || (window.__pretextTalk = {});
  if (G.cleanup) G.cleanup();  // one listener per page, whatever the number of reruns
  const report = () => setStateValue('viewport', { w: window.innerWidth, h: window.innerHeight });
  const last = G.viewport || {};
  if (last.w !== window.innerWidth || last.h !== window.innerHeight || !data.known) report();
  G.viewport = { w: window.innerWidth, h: window.innerHeight };
  const onKey = (e) => {
    const t = e.target;
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    const step = data.keys[e.key];
    if (!step) return;
    e.preventDefault();
    e.stopPropagation();
    setTriggerValue('step', step);
  };
  let timer = null;
  const onResize = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => { G.viewport = { w: window.innerWidth, h: window.innerHeight }; report(); }, 250);
  };
  window.addEventListener('keydown', onKey, true);
  window.addEventListener('resize', onResize);
  G.cleanup = () => {
    window.removeEventListener('keydown', onKey, true);
    window.removeEventListener('resize', onResize);
    window.clearTimeout(timer);
    G.cleanup = null;
  };
  return G.cleanup;
}
"""

_component = st.components.v2.component("pretext_talk_keys", js=_JS)


@dataclass(frozen=True)
class Keys:
    step: str | None  # "next" | "prev" | "first" | "last" | None: the key pressed since the last run
    width: int  # the browser window's inner size, px (DEFAULT_VIEWPORT until reported)
    height: int
    known: bool  # False until the browser has reported its size


def mount(key: str) -> Keys:
    """Listen for the talk's keys and the window size; call before drawing the slide."""
    known = isinstance((st.session_state.get(key) or {}).get("viewport"), dict)
    res = _component(key=key, data={"keys": KEYS, "known": known}, height=0,
                     on_step_change=lambda: None, on_viewport_change=lambda: None)
    vp = getattr(res, "viewport", None) or {}
    w, h = int(vp.get("w") or DEFAULT_VIEWPORT[0]), int(vp.get("h") or DEFAULT_VIEWPORT[1])
    return Keys(getattr(res, "step", None), max(320, w), max(240, h), bool(vp))

"""Fitting a slide to the screen: sizes from the browser window, the talk's CSS, and drawing a visual.

Streamlit lays pages out for scrolling; a slide must not scroll. So every size on a talk slide is
derived from the window (px, reported by ``keys.py``): the title and sentence in ``vh`` units, and
the one visual given exactly the height that is left (``Box``). Pictures are drawn at the width that
keeps their aspect inside that box; plotly charts get that height.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from app import palette

from . import PROTAGONIST

HEADER_PX = 60  # Streamlit's header bar, when shown
SIDEBAR_PX = 300  # the expanded sidebar (outside presenter mode)
NAV_PX = 58  # the navigation row
CONTROLS_PX = 50  # a segmented control above the visual
SUB_GAP_PX = 10  # more room under the subtitle: Streamlit pulls the next element up and clipped its descenders at 1280×720
NOTES_SHARE = 0.27  # of the width, for speaker notes


@dataclass(frozen=True)
class Box:
    """The room a slide's parts get, px. ``visual_w × visual_h``: the one picture or chart."""

    width: int
    height: int
    pad_top: int
    pad_side: int
    title_px: int  # font sizes
    sub_px: int
    visual_w: int
    visual_h: int
    notes_w: int

    @classmethod
    def for_window(cls, w: int, h: int, present: bool, notes: bool = False, controls: bool = False, caption: bool = False) -> "Box":
        pad_top = int(0.022 * h) + (0 if present else HEADER_PX)
        pad_side = int(0.03 * w)
        title_px, sub_px = max(26, int(0.058 * h)), max(16, int(0.03 * h))
        used = (pad_top + int(1.25 * title_px) + int(1.5 * sub_px) + SUB_GAP_PX + 12 + NAV_PX + 14 + (CONTROLS_PX if controls else 0)
                + (int(2.1 * max(14, int(0.022 * h))) if caption else 0))
        inner_w = w - 2 * pad_side - (0 if present else SIDEBAR_PX)
        notes_w = int(NOTES_SHARE * inner_w) if notes else 0
        return cls(w, h, pad_top, pad_side, title_px, sub_px, max(200, inner_w - notes_w - (16 if notes else 0)), max(160, h - used), notes_w)


def css(box: Box, present: bool) -> str:
    """The talk's stylesheet for this window: type in proportion to the screen, no scrolling, and in
    presenter mode no sidebar, header or toolbar."""
    hide = """
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stHeader"],
[data-testid="stToolbar"], [data-testid="stDecoration"], [data-testid="stStatusWidget"] { display: none !important; }
""" if present else ""
    cap = max(14, int(0.022 * box.height))
    return f"""<style>{hide}
[data-testid="stMainBlockContainer"] {{ padding: {box.pad_top}px {box.pad_side}px 0 {box.pad_side}px !important; max-width: none; }}
[data-testid="stMain"] {{ overflow: hidden; }}
[data-testid="stMainBlockContainer"] [data-testid="stVerticalBlock"] {{ gap: 0.35rem; }}
h1.talk-title {{ font-size: {box.title_px}px !important; line-height: 1.15; margin: 0; padding: 0; font-weight: 700; }}
p.talk-sub {{ font-size: {box.sub_px}px; line-height: 1.3; margin: 0.15em 0 calc(0.25em + {SUB_GAP_PX}px) 0; color: #444; }}
p.talk-caption {{ font-size: {cap}px; line-height: 1.3; margin: 0.2em 0 0.5em 0; color: #555; text-align: center; }}
div.talk-notes {{ font-size: {max(15, int(0.024 * box.height))}px; line-height: 1.4; background: #FFF8E1; border-left: 5px solid {palette.HIGHLIGHT};
  padding: 0.7em 0.9em; border-radius: 6px; max-height: {box.visual_h}px; overflow-y: auto; }}
span.talk-count {{ font-size: {max(16, int(0.026 * box.height))}px; color: #555; }}
[class*="st-key-talk-visual"] img {{ display: block; margin: 0 auto; }}
[class*="st-key-talk-prev"] button p, [class*="st-key-talk-next"] button p {{ font-size: {max(18, int(0.03 * box.height))}px; line-height: 1; }}
[data-testid="stButtonGroup"] button p {{ font-size: {max(15, int(0.024 * box.height))}px; }}
[data-testid="stMain"] [data-testid="stWidgetLabel"] p, [data-testid="stPageLink"] p {{ font-size: {max(15, int(0.022 * box.height))}px; }}
</style>"""


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def step_from_url(value: str | None, n: int) -> int:
    """``?step=`` (1-based) → slide index; anything else (absent, not a number, out of range) → 0."""
    try:
        i = int(str(value)) - 1
    except (TypeError, ValueError):
        return 0
    return i if 0 <= i < n else 0


def signature(sources) -> tuple:
    """Sizes and times of the files the slides read: a re-exported model or a new report rebuilds them."""
    out = []
    for root in (sources.models, sources.reports):
        root = Path(root)
        if root.is_dir():
            out += [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.glob("*")) if p.is_file()]
            out += [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.glob("*/*")) if p.is_file()]
    split = Path(sources.data) / "split.csv"
    return tuple(out) + ((str(split), split.stat().st_mtime_ns) if split.is_file() else ())


def fit(aspect: float, w: int, h: int) -> tuple[int, int]:
    """The largest (width, height) of this aspect (w/h) inside w × h."""
    if w / h > aspect:
        return int(h * aspect), h
    return w, int(w / aspect)


def turns_picture(turns: list, selected: int, side: int) -> Image.Image:
    """The four turns in a 2 × 2 grid, ``side`` px square, the selected one rimmed in the highlight colour."""
    gap = max(6, side // 60)
    cell = (side - gap) // 2
    out = Image.new("RGB", (side, side), "white")
    for k, im in enumerate(turns):
        x, y = (k % 2) * (cell + gap), (k // 2) * (cell + gap)
        out.paste(im.convert("RGB").resize((cell, cell), Image.Resampling.LANCZOS), (x, y))
        if k != selected:
            out.paste(Image.blend(out.crop((x, y, x + cell, y + cell)), Image.new("RGB", (cell, cell), "white"), 0.45), (x, y))
    x, y = (selected % 2) * (cell + gap), (selected // 2) * (cell + gap)
    ImageDraw.Draw(out).rectangle((x, y, x + cell - 1, y + cell - 1), outline=palette.HIGHLIGHT, width=max(5, cell // 28))
    return out


def guesses_figure(idea, selected: int, height: int):
    """Horizontal bars: the rotation model's probability for each angle, for the selected turn."""
    import plotly.graph_objects as go

    p = np.asarray(idea.probs[selected], float)
    colours = [palette.encoder_colour(PROTAGONIST) if a == selected else "#BBBBBB" for a in range(len(p))]
    fig = go.Figure(go.Bar(x=100 * p, y=[f"turned {a}" for a in idea.angle_labels], orientation="h", marker_color=colours,
                           text=[f"{100 * v:.0f} %" for v in p], textposition="outside", cliponaxis=False))
    fs = max(18, height // 22)
    fig.update_layout(template="plotly_white", height=height, margin=dict(l=10, r=60, t=fs * 3, b=10), showlegend=False, paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
                      font_family="Source Sans Pro, Segoe UI, Helvetica, Arial, sans-serif", yaxis_ticksuffix="  ",
                      font=dict(size=fs), title=dict(text="The model's guess: how was it turned?", font=dict(size=int(fs * 1.1)), x=0.02),
                      xaxis=dict(visible=False, range=[0, 115]))
    fig.update_yaxes(autorange="reversed")
    return fig


def font_scale(box: "Box") -> float:
    """Charts are drawn for the visual box of a 1280×720 screen (about 1200 px wide); on a taller
    screen their type grows a little less than the screen (a 1080-px projector: ×1.3), in a narrower
    box (sidebar, notes) it shrinks with the width, never below ×0.7, so legends and labels still fit."""
    by_height = max(1.0, 1.0 + 0.6 * (box.height / 720 - 1.0))
    return max(0.7, min(by_height, box.visual_w / 1200))


def scaled(fig, factor: float, height: int):
    """A copy of a plotly figure with every font size × factor, ``height`` px tall, transparent paper
    (the page's background shows through), in the app's typeface."""
    import plotly.graph_objects as go

    def walk(node, under_font: bool = False):
        if isinstance(node, dict):
            return {k: (v * factor if under_font and k == "size" and isinstance(v, (int, float)) else walk(v, k.endswith("font")))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, under_font) for v in node]
        return node

    d = fig.to_dict()
    out = go.Figure(walk(d))
    base = (fig.layout.font.size or 18) * factor
    out.update_layout(height=height, paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)", font=dict(family="Source Sans Pro, Segoe UI, Helvetica, Arial, sans-serif", size=base))
    return out


def draw(visual, box: Box, key: str) -> None:
    """Draw a slide's visual (or its Missing note) inside ``box``."""
    from . import story

    if isinstance(visual, Exception):
        st.warning(f"**This slide needs a file that is not here.** {visual.what}. Make it with: `{visual.command}`", icon=":material/info:")
        return
    cap_px = int(1.6 * max(14, int(0.022 * box.height)))
    with st.container(key=key.replace(".", "-")):
        if isinstance(visual, story.Turns):
            left, right = st.columns([1, 1.05], gap="large")
            side = min(box.visual_h + cap_px, int(box.visual_w * 0.48))
            left.image(turns_picture(visual.idea.turns, visual.selected, side), width=side)
            right.plotly_chart(guesses_figure(visual.idea, visual.selected, side), key=f"{key}.bars", config={"displayModeBar": False}, width="stretch", theme=None)
            return
        if isinstance(visual, story.Picture):
            w, h = visual.image.size
            dw, _ = fit(w / h, box.visual_w, box.visual_h)
            st.image(visual.image, width=dw)
        else:
            fig = scaled(visual.figure, font_scale(box), box.visual_h)
            st.plotly_chart(fig, key=f"{key}.chart", config={"displayModeBar": False, "responsive": True}, width="stretch", theme=None)
        if visual.caption:
            st.markdown(f"<p class='talk-caption'>{esc(visual.caption)}</p>", unsafe_allow_html=True)

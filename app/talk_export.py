"""The talk as ONE self-contained HTML file, for when the laptop cannot run Streamlit.

    python -m app.talk_export --out talk.html

Pictures are inline (data URIs), plotly charts stay interactive (plotly.js inline once, ~4.6 MB),
and the file opens from disk in any browser with no server: ←/→, PageUp/PageDown, Home/End step,
``N`` shows the speaker notes, ``#3`` opens slide 3. A slide whose input is missing shows the same
one-line note (and the command that makes it) as the app.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import os
import sys
from pathlib import Path

from app.config import data_dir, display, models_dir, reports_dir
from app.talk import story

CSS = """
html, body { margin: 0; height: 100%; overflow: hidden; font-family: "Source Sans Pro", "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328; background: #fff; }
section { display: none; box-sizing: border-box; width: 100vw; height: 100vh; padding: 2.2vh 3vw 1vh 3vw; flex-direction: column; }
section.on { display: flex; }
h1 { font-size: 5.8vh; line-height: 1.15; margin: 0; }
p.sub { font-size: 3vh; margin: 0.2em 0 0.4em 0; color: #444; }
div.visual { flex: 1 1 auto; min-height: 0; display: flex; flex-direction: column; align-items: center; justify-content: center; }
div.visual img { max-width: 100%; max-height: 100%; object-fit: contain; min-height: 0; }
div.choice { flex: 1 1 auto; min-height: 0; width: 100%; display: none; flex-direction: column; align-items: center; justify-content: center; }
div.choice.on { display: flex; }
div.tabs { margin: 0 0 0.4em 0; } div.tabs button { font-size: 2.2vh; padding: 0.2em 0.8em; margin-right: 0.3em; border: 1px solid #bbb; background: #fff; border-radius: 6px; cursor: pointer; }
div.tabs button.on { background: #4477AA; color: #fff; border-color: #4477AA; }
p.caption { font-size: 2.2vh; color: #555; margin: 0.3em 0 0 0; text-align: center; }
div.notes { display: none; font-size: 2.3vh; background: #FFF8E1; border-left: 5px solid #FFD400; padding: 0.5em 0.8em; margin-top: 0.4em; }
body.notes div.notes { display: block; }
div.turns { display: flex; gap: 2vw; justify-content: center; align-items: flex-start; height: 100%; }
div.turns figure { margin: 0; text-align: center; font-size: 2.4vh; width: 22vw; }
div.turns img { width: 100%; height: auto; max-height: 45vh; object-fit: contain; border-radius: 6px; }
div.plot { width: 100%; height: 100%; }
div.missing { font-size: 2.6vh; background: #E8F1FB; padding: 1em; border-radius: 8px; max-width: 70vw; }
footer { font-size: 1.8vh; color: #777; display: flex; justify-content: space-between; }
"""

JS = """
const S = [...document.querySelectorAll('section')];
let i = Math.max(0, Math.min(S.length - 1, (parseInt(location.hash.slice(1)) || 1) - 1));
function resizePlots(el) { if (window.Plotly) el.querySelectorAll('.js-plotly-plot').forEach(p => Plotly.Plots.resize(p)); }
function show(k) {
  i = Math.max(0, Math.min(S.length - 1, k));
  S.forEach((s, j) => s.classList.toggle('on', j === i));
  history.replaceState(null, '', '#' + (i + 1));
  resizePlots(S[i]);
}
document.addEventListener('keydown', (e) => {
  const m = {ArrowRight: i + 1, PageDown: i + 1, ArrowLeft: i - 1, PageUp: i - 1, Home: 0, End: S.length - 1};
  if (e.key in m) { e.preventDefault(); show(m[e.key]); }
  if (e.key === 'n' || e.key === 'N') document.body.classList.toggle('notes');
});
document.querySelectorAll('div.tabs button').forEach((b) => b.addEventListener('click', () => {
  const sec = b.closest('section');
  sec.querySelectorAll('div.tabs button').forEach(x => x.classList.toggle('on', x === b));
  sec.querySelectorAll('div.choice').forEach(c => c.classList.toggle('on', c.dataset.choice === b.dataset.choice));
  resizePlots(sec);
}));
window.addEventListener('resize', () => resizePlots(S[i]));
show(i);
"""


def _img(image, fmt: str = "JPEG") -> str:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, fmt, quality=88)
    return f"<img alt='' src='data:image/{fmt.lower()};base64,{base64.b64encode(buf.getvalue()).decode()}'>"


class _Plotly:
    """Embeds plotly figures; plotly.js goes in with the first one only."""

    def __init__(self) -> None:
        self.first = True

    def __call__(self, fig) -> str:
        import plotly.graph_objects as go

        fig = go.Figure(fig)
        fig.update_layout(height=None, autosize=True)
        out = fig.to_html(full_html=False, include_plotlyjs=self.first, default_width="100%", default_height="100%",
                          config={"responsive": True, "displayModeBar": False}, auto_play=False)
        self.first = False
        return f"<div class='plot'>{out}</div>"


def _turns(v: story.Turns) -> str:
    idea, cells = v.idea, []
    for k, im in enumerate(idea.turns):
        best = int(idea.probs[k].argmax())
        mark = "✓" if idea.correct[k] else "✗"
        cells.append(f"<figure>{_img(im)}<figcaption><b>turned {html.escape(idea.angle_labels[k])}</b><br>model: {html.escape(idea.angle_labels[best])} "
                     f"({100 * float(idea.probs[k][best]):.0f} %) {mark}</figcaption></figure>")
    return f"<div class='turns'>{''.join(cells)}</div>"


def _visual(v, plot: _Plotly) -> str:
    if isinstance(v, story.MISSING):
        return f"<div class='missing'><b>This slide needs a file that is not here.</b> {html.escape(v.what)}.<br>Make it with: <code>{html.escape(v.command)}</code></div>"
    if isinstance(v, story.Turns):
        return _turns(v)
    body = _img(v.image) if isinstance(v, story.Picture) else plot(v.figure)
    cap = f"<p class='caption'>{html.escape(v.caption)}</p>" if v.caption else ""
    return body + cap


def _build(slide: story.Slide, sources: story.Sources, choice: str | None):
    try:
        return story.build(slide, sources, choice)
    except story.MISSING as e:
        return e


def render(sources: story.Sources) -> str:
    """The whole talk as one HTML document (str)."""
    plot, parts = _Plotly(), []
    n = len(story.SLIDES)
    for k, slide in enumerate(story.SLIDES, 1):
        choices = slide.choices(sources) if slide.choices else ()
        if len(choices) > 1 and not isinstance(_build(slide, sources, choices[0]), story.Turns):
            tabs = "".join(f"<button data-choice='{html.escape(c)}' class='{'on' if j == 0 else ''}'>{html.escape(c)}</button>" for j, c in enumerate(choices))
            inner = "".join(f"<div class='choice{' on' if j == 0 else ''}' data-choice='{html.escape(c)}'>{_visual(_build(slide, sources, c), plot)}</div>"
                            for j, c in enumerate(choices))
            visual = f"<div class='tabs'>{tabs}</div><div class='visual'>{inner}</div>"
        else:
            visual = f"<div class='visual'>{_visual(_build(slide, sources, choices[0] if choices else None), plot)}</div>"
        parts.append(f"<section id='s{k}' data-key='{slide.key}'><h1>{html.escape(slide.title)}</h1><p class='sub'>{html.escape(slide.subtitle)}</p>"
                     f"{visual}<div class='notes'>{html.escape(slide.notes)}</div>"
                     f"<footer><span>Pretext Lab · ← → to step · N for notes</span><span>{k} / {n}</span></footer></section>")
    head = "<meta charset='utf-8'><meta name='viewport' content='width=device-width, initial-scale=1'><title>Pretext Lab — pretext tasks in seven slides</title>"
    return f"<!DOCTYPE html><html lang='en'><head>{head}<style>{CSS}</style></head><body>{''.join(parts)}<script>{JS}</script></body></html>"


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse, before any work, an output that exists (without --overwrite) or cannot be written."""
    from ssl_train.errors import UserError

    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name, e.g. {out / 'talk.html'}")
    if out.exists() and not overwrite:
        raise UserError(f"--out {out} already exists; pass --overwrite to replace it, or choose another name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"--out {out}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise UserError(f"--out {out}: folder {parent} is not writable; choose another place")


def main(argv: list[str] | None = None) -> int:
    from ssl_train.errors import UserError

    p = argparse.ArgumentParser(prog="python -m app.talk_export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="talk.html", help="the HTML file to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    a = p.parse_args(argv)
    out = Path(a.out)
    try:
        check_out(out, a.overwrite)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    doc = render(story.Sources(models_dir(), data_dir(), reports_dir()))
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(doc, encoding="utf-8")
    os.replace(tmp, out)
    print(f"wrote {display(out.resolve())} ({out.stat().st_size / 1e6:.1f} MB): open it in a browser, no server needed (← → step, N notes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

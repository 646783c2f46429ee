"""Talk mode's charts: one plotly figure per slide, for a projector and a room of non-experts.

Pure compute (no Streamlit): each function reads one file and returns a ``plotly.graph_objects.Figure``.
Every figure is drawn for the back row of a 720p projector: base font 22 px, annotations 26 px and
up, lines 4 px and up, plain-word axis titles, no chart title (the slide has one), white background,
small margins, legend inside or on top. No fixed height: the page sizes the chart to the screen
(``autosize``); a ``height`` (px) is set only when passed. Every colour comes from ``app.palette``.

A missing or unreadable input raises ``Missing(what, command)``: what is wrong, and the command
that makes the file.
"""
from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app import palette, reference
from . import PROTAGONIST, Missing  # one "input missing" error for every slide; the story's task

FOCUS = 0.1  # the labelled fraction the talk quotes ("at 10 % labels")
FRACTION_TICKS = (1, 5, 10, 25, 50, 100)  # % of labelled photos: the protocol's fractions
BARELY = 2.0  # points: a gain under this is inside the seed-to-seed spread the protocol reports (paired std 1–3 points)
NEIGHBOURS = 10  # k of the 2-D neighbour agreement shown on "watch it learn"
MAX_REPLAY_FRAMES = 60  # a replay plays in ≤ ~10 s whatever the number of recorded points

FONT, BIG, HUGE = 22, 26, 30  # px: ticks/legend, axis titles and notes, the numbers the room must read
LINE, THICK = 4, 6  # px: every line, the lines the story is about

PROTOCOL_COMMAND = "python -m ssl_train release"
LEARNING_COMMAND = ("python -m ssl_train pretrain --task rotation --snapshots auto --out runs/rotation-snap, "
                    "then python -m ssl_train learning-map --run runs/rotation-snap --model models/rotation")
REPLAY_COMMAND = "python -m ssl_train replay"  # the recorder of reports/finetune-replay.json (its made_by names the exact call)
REPLAY_FORMAT = "pretext-lab-replay/1"

# plain names for the legend beyond the tasks' own (a task's panel names it, ``Panel.name``, else its own name)
NAMES = {reference.SCRATCH: "no pretraining (scratch)"}
X_FRACTION = "labelled photos used (%)"
Y_CORRECT = "correct on unseen test photos (%)"


def name(task: str) -> str:
    """The legend name of a task (or scratch) in plain words: its panel's ``name`` ("super-resolution"),
    else the task's own name."""
    if task in NAMES:
        return NAMES[task]
    from app import panels

    panel = panels.load_all().get(task)
    return (panel.name if panel is not None else None) or task


def rgba(colour: str, alpha: float) -> str:
    """A palette hex colour ``#RRGGBB`` with transparency, for bands and fills."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _style(fig: go.Figure, height: int | None, margin: dict, **layout) -> go.Figure:
    """The projector style every chart shares (fonts, white background, autosize; height only if given)."""
    fig.update_layout(template="plotly_white", autosize=True, font=dict(size=FONT), paper_bgcolor="white", plot_bgcolor="white",
                      margin=dict(l=10, r=10, t=10, b=10) | margin, hoverlabel=dict(font_size=FONT), **layout)
    if height is not None:
        fig.update_layout(height=height)
    fig.update_xaxes(title_font_size=BIG, tickfont_size=FONT)
    fig.update_yaxes(title_font_size=BIG, tickfont_size=FONT)
    return fig


def _fraction_axis(fig: go.Figure) -> None:
    fig.update_xaxes(type="log", title_text=X_FRACTION, tickvals=list(FRACTION_TICKS), ticktext=[str(t) for t in FRACTION_TICKS],
                     range=[math.log10(0.8), math.log10(125)], showgrid=True)


def finetune_table(protocol_json: Path) -> tuple[pd.DataFrame, dict]:
    """The protocol's fine-tune results: (table task, fraction (%), mean, std (points), seeds; the report's
    header: n_test, classes …). Raises ``Missing`` when the file is absent, unreadable or has no fine-tune runs."""
    path = Path(protocol_json)
    summary, note = reference.load(path)
    if summary is None:
        raise Missing(f"{path} is missing" if not path.is_file() else f"{path} cannot be used ({note})", PROTOCOL_COMMAND)
    ft = summary[summary["mode"] == "finetune"].copy()
    if ft.empty or reference.SCRATCH not in set(ft["task"]):
        raise Missing(f"{path} has no fine-tune results with scratch yet", PROTOCOL_COMMAND)
    ft["fraction"] = (100 * ft["fraction"]).round(6)
    ft[["mean", "std"]] = 100 * ft[["mean", "std"]]
    header = json.loads(path.read_text(encoding="utf-8"))
    return ft.drop(columns="mode").reset_index(drop=True), {k: v for k, v in header.items() if k not in ("runs", "summary")}


def gains(ft: pd.DataFrame) -> pd.DataFrame:
    """Pretrained minus scratch, fine-tune mean, in points: rows = tasks (scratch excluded), columns = fraction (%).
    (With the same seeds in both arms the difference of means is the mean of the paired differences.)"""
    means = ft.pivot(index="task", columns="fraction", values="mean")
    return means.drop(index=reference.SCRATCH).sub(means.loc[reference.SCRATCH], axis=1)


def best_other(ft: pd.DataFrame, exclude: str = PROTAGONIST, at: float = 100 * FOCUS) -> str:
    """The pretext task with the highest fine-tune mean at ``at`` % labels, other than scratch and ``exclude``."""
    at_focus = ft[(ft["fraction"] == at) & ~ft["task"].isin([reference.SCRATCH, exclude])]
    if at_focus.empty:
        raise Missing(f"no pretrained fine-tune results at {at:g} % labels", PROTOCOL_COMMAND)
    return str(at_focus.loc[at_focus["mean"].idxmax(), "task"])


def _points(v: float) -> str:
    """A gain in whole points with its sign ("+12", "-1", "0": never "-0")."""
    r = round(float(v))
    return f"{r:+d}" if r else "0"


def _caption(fig: go.Figure, text: str) -> None:
    """The source line, bottom right inside the plot (where accuracy curves never are: they rise)."""
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0.99, y=0.02, xanchor="right", yanchor="bottom", showarrow=False,
                       font=dict(size=BIG, color=palette.SCRATCH))


def headline(protocol_json: Path, height: int | None = None) -> go.Figure:
    """Slide "scratch vs pretrained": fine-tune accuracy (%) vs labelled photos (%, log axis) for scratch,
    the protagonist and the best other encoder at 10 % labels (mean ± std over seeds as error bars), with
    each pretrained line's gain over scratch at 10 % written on the chart."""
    ft, header = finetune_table(protocol_json)
    if PROTAGONIST not in set(ft["task"]):
        raise Missing(f"{protocol_json} has no {PROTAGONIST} results", PROTOCOL_COMMAND)
    gain, focus = gains(ft), 100 * FOCUS
    try:
        best: str | None = best_other(ft)
    except Missing:  # a protocol of the protagonist alone (the `protocol` command's default): scratch vs it
        best = None
    shown = [t for t in (reference.SCRATCH, PROTAGONIST, best) if t]
    fig = go.Figure()
    for task in shown:
        g, colour, baseline = ft[ft["task"] == task].sort_values("fraction"), palette.encoder_colour(task), task == reference.SCRATCH
        fig.add_trace(go.Scatter(  # the baseline dashed and thinner: the eye follows the two pretrained lines
            x=g["fraction"], y=g["mean"], name=name(task), mode="lines+markers",
            line=dict(color=colour, width=LINE if baseline else THICK, dash="dash" if baseline else "solid"),
            marker=dict(size=14, color=colour), error_y=dict(type="data", array=g["std"], thickness=3, width=8, color=colour),
            hovertemplate="%{x} % labelled: %{y:.1f} % correct<extra>" + name(task) + "</extra>"))
    # the two gains at 10 %: the best line's label above its point (clear of the legend), the protagonist's below-right
    # (the two lines are only a few points apart there)
    for task, ax, ay in ((best, 10, -115), (PROTAGONIST, 150, 80)):
        if task is None or focus not in gain.columns:
            continue
        y = float(ft[(ft["task"] == task) & (ft["fraction"] == focus)]["mean"].iloc[0])
        fig.add_annotation(x=math.log10(focus), y=y, ax=ax, ay=ay, xanchor="left", text=f"<b>{_points(gain.loc[task, focus])} points</b> at {focus:g} % labels",
                           font=dict(size=HUGE, color=palette.encoder_colour(task)), showarrow=True, arrowwidth=3, arrowhead=2,
                           arrowcolor=palette.encoder_colour(task), bgcolor="white")
    seeds = int(ft["seeds"].max())
    _caption(fig, f"mean of {seeds} runs · bars: run-to-run spread · {header.get('n_test', '?')} test photos")
    _fraction_axis(fig)
    fig.update_yaxes(title_text=Y_CORRECT)
    return _style(fig, height, dict(l=10), legend=dict(x=0.01, y=0.99, xanchor="left", yanchor="top", bgcolor="white", font_size=FONT),
                  hovermode="closest")


def caveats(protocol_json: Path, height: int | None = None) -> go.Figure:
    """Slide "what it does not buy": each pretext task's fine-tune gain over scratch (points) with 1 %,
    10 % and all labelled photos, as grouped bars (one bar per task, tasks ranked by their gain at 10 %),
    a grey "barely helps" band of ± ``BARELY`` points round the zero line, and the best encoder's
    gains written out.

    Grouped bars at three amounts, not lines over six: lines over every fraction zig-zag together
    (each gain subtracts the same noisy scratch run, so 5 % and 25 % bump for every task) and ten of
    them tangle; three groups of bars read at a glance — tall bars on the left, almost none on the
    right, and most bars inside the grey band. The story's two tasks are solid, the others pale."""
    ft, _ = finetune_table(protocol_json)
    gain, focus = gains(ft), 100 * FOCUS
    shown = [f for f in (FRACTION_TICKS[0], focus, FRACTION_TICKS[-1]) if f in gain.columns]
    if focus not in shown or gain.empty:
        raise Missing(f"{protocol_json} has no pretrained fine-tune results at {focus:g} % labels", PROTOCOL_COMMAND)
    groups = [f"{f:g} %" if f < 100 else "all (100 %)" for f in shown]
    order = gain[focus].sort_values(ascending=False).index  # bars and legend = the ranking at 10 %
    best, story = order[0], {order[0], PROTAGONIST}
    fig = go.Figure()
    fig.add_hrect(y0=-BARELY, y1=BARELY, fillcolor=rgba(palette.SCRATCH, 0.18), line_width=0, layer="below")
    fig.add_hline(y=0, line=dict(color=palette.SCRATCH, width=LINE, dash="dash"))
    for task in order:
        g, main, colour = gain.loc[task, shown], task in story, palette.encoder_colour(task)
        fig.add_trace(go.Bar(
            x=groups, y=g.values, name=name(task), marker=dict(color=colour, opacity=1.0 if main else 0.45, line_width=0),
            text=[_points(v) for v in g.values] if main else None, textposition="outside", cliponaxis=False, constraintext="none",
            textfont=dict(size=BIG, color=colour), hovertemplate="%{x}: %{y:+.1f} points<extra>" + name(task) + "</extra>"))
    few = int((gain[focus] < BARELY).sum())
    # the notes sit top right, above the last group's short bars: the empty corner the message leaves
    fig.add_annotation(x=len(groups) - 0.9, y=0, ax=0, ay=-140, text="no better than scratch", showarrow=True, arrowwidth=3,
                       arrowhead=2, arrowcolor=palette.SCRATCH, font=dict(size=BIG, color=palette.SCRATCH), bgcolor="white")
    fig.add_annotation(xref="paper", yref="paper", x=0.99, y=0.99, xanchor="right", yanchor="top", align="right", showarrow=False,
                       text=f"<b>{name(best)}</b>: " + " → ".join(_points(gain.loc[best, f]) for f in shown) + " points",
                       font=dict(size=HUGE, color=palette.encoder_colour(best)))
    fig.add_annotation(xref="paper", yref="paper", x=0.99, y=0.86, xanchor="right", yanchor="top", align="right", showarrow=False,
                       text=f"grey band: barely helps (under {BARELY:g} points)<br>{few} of {len(gain)} tasks at {focus:g} %",
                       font=dict(size=BIG, color=palette.SCRATCH))
    fig.update_xaxes(title_text=X_FRACTION, tickfont_size=BIG, range=[-0.5, len(groups) - 0.5])
    fig.update_yaxes(title_text="better than scratch (points)", zeroline=False, rangemode="tozero")
    return _style(fig, height, dict(t=10), barmode="group", bargap=0.18, bargroupgap=0.05,
                  legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom", font_size=FONT), hovermode="closest")


def _player(names: list[str], labels: list[str], prefix: str | None, frame_ms: int, move_ms: int, top: bool = False) -> dict:
    """Layout for an animation: a Play/Pause button and a slider with one step per frame (``names``),
    its steps labelled ``labels``, the current one shown big as ``prefix`` + label (None: not shown),
    below the plot or, ``top``, above it (where a chart's x axis title takes the space below).
    Scatter only: ``redraw=False`` lets plotly move the points smoothly instead of redrawing each frame."""
    play = dict(frame=dict(duration=frame_ms, redraw=False), transition=dict(duration=move_ms, easing="cubic-in-out"),
                fromcurrent=True, mode="immediate")
    pause = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")
    y, anchor = (1, "bottom") if top else (0, "top")
    buttons = dict(type="buttons", direction="left", showactive=False, x=0, y=y, xanchor="left", yanchor=anchor, pad=dict(t=10, r=10, b=10),
                   font=dict(size=FONT), buttons=[dict(label="▶ Play", method="animate", args=[None, play]),
                                                  dict(label="❚❚ Pause", method="animate", args=[[None], pause])])
    step = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=move_ms // 2), mode="immediate")
    slider = dict(active=0, x=0.24, len=0.76, y=y, yanchor=anchor, pad=dict(t=10, b=0), font=dict(size=FONT), ticklen=4, minorticklen=0,
                  currentvalue=dict(prefix=prefix or "", font=dict(size=BIG), xanchor="left", visible=prefix is not None),
                  transition=dict(duration=move_ms // 2), steps=[dict(label=lab, method="animate", args=[[n], step]) for n, lab in zip(names, labels)])
    return dict(updatemenus=[buttons], sliders=[slider])


def neighbour_agreement(xy: np.ndarray, labels: np.ndarray, k: int = NEIGHBOURS) -> float:
    """How well a 2-D layout keeps flowers together: the share (%) of each photo's ``k`` nearest other
    photos (Euclidean, in the layout) that show the same flower, averaged over photos. ``xy`` (N, 2),
    ``labels`` (N,) ints."""
    xy = np.asarray(xy, np.float64)
    d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)  # leave-one-out: a photo is not its own neighbour
    k = min(k, len(xy) - 1)
    near = np.argpartition(d, k - 1, axis=1)[:, :k]
    return float(100 * (labels[near] == labels[:, None]).mean())


def chance_agreement(labels: np.ndarray) -> float:
    """``neighbour_agreement`` (%) expected when the layout ignores the flowers (neighbours drawn at
    random among the other photos): Σ n_c (n_c − 1) / (N (N − 1)) over classes."""
    n = np.bincount(np.asarray(labels)).astype(np.float64)
    return float(100 * (n * (n - 1)).sum() / max(n.sum() * (n.sum() - 1), 1))


def read_learning(learning_npz: Path) -> dict:
    """A "watch it learn" file (``python -m ssl_train learning-map``): epochs (F,) int, xy (F, N, 2)
    float in [-1, 1], labels (N,) int, classes (C,) str, files (N,) str, meta dict. Raises ``Missing``
    when the file is absent, not an npz, lacks a key or has inconsistent shapes."""
    path = Path(learning_npz)
    if not path.is_file():
        raise Missing(f"{path} is missing", LEARNING_COMMAND)
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in ("epochs", "xy", "labels", "classes", "files", "meta")}
        d["meta"], d["classes"] = json.loads(str(d["meta"])), [str(c) for c in d["classes"]]
    except KeyError as e:
        raise Missing(f"{path} is not a learning map (no {e.args[0].split()[0]!s} in it)", LEARNING_COMMAND) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # json errors are ValueErrors
        raise Missing(f"{path} cannot be read ({type(e).__name__})", LEARNING_COMMAND) from None
    f, n = len(d["epochs"]), len(d["labels"])
    if f < 1 or d["xy"].shape != (f, n, 2) or len(d["files"]) != n or (n and not 0 <= d["labels"].min() <= d["labels"].max() < len(d["classes"])):
        raise Missing(f"{path} is not a learning map (xy {d['xy'].shape} for {f} epochs, {n} photos, {len(d['classes'])} classes)", LEARNING_COMMAND)
    d["xy"], d["labels"], d["epochs"] = d["xy"].astype(np.float32), d["labels"].astype(np.int64), d["epochs"].astype(int)
    return d


def learning(learning_npz: Path, title: str | None = None, height: int | None = None) -> go.Figure:
    """Slide "watch it learn": the test photos' 2-D map after each number of pretraining epochs, animated
    (one trace per flower class, one frame per epoch, Play/Pause and an "epoch N" slider), with each
    frame's ``neighbour_agreement`` against chance written on it. ``title``: an optional line above the
    map (e.g. which encoder)."""
    d = read_learning(learning_npz)
    xy, labels, classes, epochs = d["xy"], d["labels"], d["classes"], d["epochs"]
    if title and d["meta"].get("same_training_as_model") is False:
        title = f"{title} (a rerun of its settings)"  # the map's run is not the shipped model's own training
    colours, chance = palette.class_colours(classes), chance_agreement(labels)

    def traces(frame: int) -> list[go.Scatter]:
        return [go.Scatter(x=xy[frame, labels == c, 0], y=xy[frame, labels == c, 1], mode="markers", name=cls,
                           marker=dict(size=9, color=colours[c], opacity=0.85, line=dict(width=0.5, color="white")),
                           hovertemplate=cls + "<extra></extra>") for c, cls in enumerate(classes)]

    def score(frame: int) -> go.Scatter:  # the number the room reads, left of the map; a text trace, not an annotation:
        # frames change annotations only with redraw=True, which would drop the smooth moves
        return go.Scatter(x=[-1.1], y=[1.1], mode="text", textposition="bottom left", cliponaxis=False, showlegend=False, hoverinfo="skip",
                          text=[f"neighbours of the<br>same flower: <b>{neighbour_agreement(xy[frame], labels):.0f} %</b><br>by chance: {chance:.0f} %"],
                          textfont=dict(size=BIG))

    names = [str(e) for e in epochs]
    fig = go.Figure(data=[*traces(0), score(0)], frames=[go.Frame(name=n, data=[*traces(i), score(i)]) for i, n in enumerate(names)])
    fig.update_layout(**_player(names, names, "epoch ", frame_ms=400, move_ms=400))
    axis = dict(range=[-1.1, 1.1], visible=False, showgrid=False, zeroline=False, fixedrange=True)
    # equal aspect (distances on the map mean the same both ways) by shrinking the x domain, not widening its range:
    # the score's text then sits left of the map, outside it
    fig.update_xaxes(**axis, constrain="domain")
    fig.update_yaxes(**axis, scaleanchor="x", scaleratio=1)
    if title:
        fig.update_layout(title=dict(text=title, font=dict(size=BIG), x=0.5, y=0.98))
    return _style(fig, height, dict(b=110, t=50 if title else 10), hovermode="closest", uirevision="learning",
                  legend=dict(x=1, y=1, xanchor="right", yanchor="top", font_size=BIG, itemsizing="constant", bgcolor="white"))


def read_replay(replay_json: Path) -> dict:
    """A recorded fine-tune replay (``REPLAY_FORMAT``), each arm's points as float arrays: epoch,
    accuracy (test, %), loss (training; NaN where not recorded), and its final test accuracy (%). Raises ``Missing`` when the file is absent,
    not JSON, of another format, or has no arm with points."""
    path = Path(replay_json)
    if not path.is_file():
        raise Missing(f"{path} is missing", REPLAY_COMMAND)
    try:
        r = json.loads(path.read_text(encoding="utf-8"))
        if not str(r.get("format", "")).startswith(REPLAY_FORMAT.split("/")[0] + "/"):
            raise ValueError(f"format {r.get('format')!r}")
        for arm in r["arms"]:
            pts = arm["points"]
            arm["epoch"] = np.array([float(p["epoch"]) for p in pts])
            arm["accuracy"], arm["loss"] = (np.array([np.nan if p.get(k) is None else float(p[k]) for p in pts]) for k in ("test_accuracy", "train_loss"))
            arm["accuracy"] *= 100
            known = arm["accuracy"][np.isfinite(arm["accuracy"])]
            arm["final"] = 100 * float(arm["final_test_accuracy"]) if arm.get("final_test_accuracy") is not None else (known[-1] if len(known) else np.nan)
        if not r["arms"] or any(len(a["epoch"]) == 0 for a in r["arms"]):
            raise ValueError("an arm without points")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:  # JSONDecodeError is a ValueError
        raise Missing(f"{path} is not a fine-tune replay ({type(e).__name__}: {e})", REPLAY_COMMAND) from None
    return r


def replay(replay_json: Path, height: int | None = None) -> go.Figure:
    """Slide "a fine-tune replayed": test accuracy (%) vs epoch of the two arms (scratch grey, the
    pretrained encoder in its palette colour), with the training loss in a small panel below, animated:
    the curves grow frame by frame (Play/Pause, an "epoch" slider) and each arm's final accuracy
    appears at its end in the last frame. Accuracy is the message, so it gets three quarters of the
    height; the loss panel shows both arms fit their labelled photos while only one generalises."""
    r = read_replay(replay_json)
    arms, top_epoch = r["arms"], max(float(a["epoch"].max()) for a in r["arms"])
    grid = np.unique(np.concatenate([a["epoch"] for a in arms]))
    grid = grid[np.unique(np.linspace(0, len(grid) - 1, min(len(grid), MAX_REPLAY_FRAMES)).round().astype(int))]  # ≤ 60 frames, last kept

    def traces(upto: float, last: bool) -> list[go.Scatter]:
        out = []
        for arm in arms:
            shown, colour = arm["epoch"] <= upto, palette.encoder_colour(arm["name"])
            out += [go.Scatter(x=arm["epoch"][shown], y=arm["accuracy"][shown], name=arm.get("label", arm["name"]), mode="lines", connectgaps=True,
                               line=dict(color=colour, width=THICK), legendgroup=arm["name"], hovertemplate="epoch %{x:.1f}: %{y:.0f} % correct<extra></extra>"),
                    go.Scatter(x=arm["epoch"][shown], y=arm["loss"][shown], mode="lines", connectgaps=True, showlegend=False, legendgroup=arm["name"],
                               line=dict(color=colour, width=LINE), xaxis="x2", yaxis="y2", hovertemplate="epoch %{x:.1f}: loss %{y:.2f}<extra></extra>"),
                    go.Scatter(x=[top_epoch], y=[arm["final"]], mode="text", text=[f"<b>{arm['final']:.0f} %</b>" if last else ""], textposition="middle right",
                               cliponaxis=False, showlegend=False, hoverinfo="skip", textfont=dict(size=HUGE, color=colour))]
        return out

    names = [f"{e:g}" for e in grid]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.74, 0.26], vertical_spacing=0.05)
    fig.add_traces(traces(grid[-1], True))  # still, the slide shows the whole run; ▶ replays it from the start
    fig.frames = [go.Frame(name=n, data=traces(e, i == len(grid) - 1)) for i, (e, n) in enumerate(zip(grid, names))]
    frame_ms = int(np.clip(8000 // len(grid), 80, 400))  # the whole replay in ~8 s
    # the player goes on top (below the plot the x axis title needs the room), a bare scrubber: the x axis and the
    # growing curves already say which epoch it is
    fig.update_layout(**_player(names, [""] * len(names), None, frame_ms, 0, top=True))
    fig.layout.sliders[0].active = len(grid) - 1
    top_acc = np.nanmax(np.concatenate([a["accuracy"] for a in arms]))
    fig.update_yaxes(row=1, col=1, title_text="correct on unseen<br>test photos (%)", range=[0, min(100, 10 * math.ceil((top_acc + 8) / 10))])
    losses = np.concatenate([a["loss"] for a in arms])
    fig.update_yaxes(row=2, col=1, title_text="training<br>loss", range=[0, 1.05 * np.nanmax(losses) if np.isfinite(losses).any() else 1], nticks=3)
    fig.update_xaxes(range=[0, top_epoch * 1.02], showgrid=True)
    fig.update_xaxes(row=2, col=1, title_text="passes over the labelled photos (epochs)")
    # the caption bottom right of the accuracy panel, the legend top right of the loss panel: accuracy rises and loss
    # falls, so those corners stay empty
    fig.add_annotation(xref="x domain", yref="y domain", x=0.99, y=0.03, xanchor="right", yanchor="bottom", showarrow=False,
                       text=f"{100 * r.get('fraction', float('nan')):g} % labels: {r.get('n_labelled', '?')} photos · {r.get('n_test', '?')} test photos",
                       font=dict(size=BIG, color=palette.SCRATCH))
    return _style(fig, height, dict(t=75, r=110), hovermode="x unified",
                  legend=dict(orientation="h", x=0.99, y=0.25, xanchor="right", yanchor="top", bgcolor="white", font_size=FONT))

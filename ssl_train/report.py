"""Turn ``reports/protocol.json`` into a figure, a Markdown table and the results blocks of the docs.

Everything shown is read from the JSON, so the docs can never disagree with the report:
``python -m ssl_train report`` rewrites the block between the results markers of ``docs/results.md``
(every table) and the block between the headline markers of the README (one table: 10% labels).
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from .palette import SCRATCH as PALETTE_SCRATCH
from .palette import encoder_colour
from .protocol import SCRATCH, summarize

START, END = "<!-- results:start -->", "<!-- results:end -->"  # every table: docs/results.md
HEADLINE_START, HEADLINE_END = "<!-- headline:start -->", "<!-- headline:end -->"  # one table: the README
RESULTS_PAGE = Path("docs") / "results.md"  # the full results page, relative to the README's folder
MODE_TITLES = {"finetune": "fine-tune", "linear": "linear probe", "knn": "kNN (k=20)"}


def _signed(points: float) -> str:
    """``+1.4``, ``-0.8``; a mean that rounds to zero is ``+0.0`` whichever side of it rounding noise fell."""
    text = f"{points:+.1f}"
    return "+0.0" if text == "-0.0" else text


def _cell(s: dict | None) -> str:
    if s is None:
        return "–"
    return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}"


def table_markdown(report: dict[str, Any]) -> str:
    """One row per (task, mode), one column per fraction: test accuracy % mean ± std over seeds."""
    summ = summarize(report["runs"])
    fractions = sorted({s["fraction"] for s in summ})
    by = {(s["task"], s["mode"], s["fraction"]): s for s in summ}
    rows = sorted({(s["task"], s["mode"]) for s in summ}, key=lambda tm: (tm[1] != "finetune", tm[1], tm[0] != SCRATCH, tm[0]))
    seeds = sorted({r["seed"] for r in report["runs"]})
    head = "| encoder | method | " + " | ".join(f"{f:.0%}" for f in fractions) + " |"
    sep = "|---|---|" + "---:|" * len(fractions)
    lines = [head, sep]
    for task, mode in rows:
        name = "scratch (random init)" if task == SCRATCH else task
        lines.append(f"| {name} | {MODE_TITLES.get(mode, mode)} | " + " | ".join(_cell(by.get((task, mode, f))) for f in fractions) + " |")
    lines.append("")
    lines.append(f"Test accuracy (%) on the fixed test split ({report['n_test']} photos), mean ± std over seeds {seeds}; columns are the labelled fraction of the {report['n_train']} training photos.")
    return "\n".join(lines)


def pretext_metric(pt: dict[str, float] | None) -> str:
    """The headline pretext score on the test split: accuracy if the task has one, else its other
    metric (e.g. PSNR), else the loss."""
    pt = pt or {}
    if "acc" in pt:
        return f"{100 * pt['acc']:.1f}% acc"
    others = [k for k in pt if k != "loss" and not k.endswith("_loss")]
    preferred = [k for k in ("psnr", "hole_mse", "ab_rmse") if k in pt] + sorted(k for k in others if k.endswith("_acc"))
    if others:
        k = (preferred or sorted(others))[0]
        return f"{pt[k]:.3g} {k}"
    return f"{pt['loss']:.3f} loss" if "loss" in pt else "–"


def pretraining_markdown(report: dict[str, Any]) -> str:
    lines = ["| task | epochs | photos per step | photo size | pretext test loss | pretext test score | training time | per epoch | device | peak RSS |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for task, p in sorted(report.get("pretraining", {}).items()):
        size = ((p.get("config") or {}).get("data") or {}).get("image_size")
        px = f"{size} px" if size else "–"
        pt = p.get("pretext_test") or {}
        secs, ep = p.get("train_seconds_total") or 0.0, p.get("epochs") or 1
        lines.append(
            f"| {task} | {p.get('epochs')} | {((p.get('config') or {}).get('train') or {}).get('batch_size', '–')} | {px} | {pt.get('loss', float('nan')):.3f} | {pretext_metric(pt)} | {secs / 60:.1f} min | {secs / ep:.0f} s | {p.get('device')} | {(p.get('peak_rss_mb') or 0) / 1024:.2f} GB |"
        )
    return "\n".join(lines)


def at_fraction_markdown(report: dict[str, Any], fraction: float = 0.1) -> str:
    """One row per encoder at one labelled fraction: pretext score, kNN, linear probe, fine-tune and
    the fine-tune gain over scratch (points), best fine-tune first."""
    summ = [s for s in summarize(report["runs"]) if abs(s["fraction"] - fraction) < 1e-9]
    if not summ:
        return ""
    by = {(s["task"], s["mode"]): s for s in summ}
    # ties broken by name: set order changes between processes (string hashing is salted)
    tasks = sorted({s["task"] for s in summ}, key=lambda t: (-round((by.get((t, "finetune")) or {"mean": -1.0})["mean"], 9), t))
    lines = ["| encoder | pretext test | kNN | linear probe | fine-tune | fine-tune − scratch (paired by seed) |", "|---|---:|---:|---:|---:|---:|"]
    for t in tasks:
        pt = (report.get("pretraining", {}).get(t) or {}).get("pretext_test")
        ft = by.get((t, "finetune"))
        paired = [g for g in paired_gain(report["runs"], t) if abs(g[0] - fraction) < 1e-9] if t != SCRATCH else []
        gain = f"{_signed(100 * paired[0][1])} ± {100 * paired[0][2]:.1f}" if paired else "–"
        lines.append(f"| {'scratch (random init)' if t == SCRATCH else t} | {pretext_metric(pt) if t != SCRATCH else '–'} | "
                     f"{_cell(by.get((t, 'knn')))} | {_cell(by.get((t, 'linear')))} | {_cell(ft)} | {gain} |")
    return "\n".join(lines)


def stage_markdown(report: dict[str, Any], fraction: float = 0.1) -> str:
    """Linear-probe test accuracy per encoder stage at one fraction (mean over seeds)."""
    import numpy as np

    rows: dict[str, list[list[float]]] = {}
    for r in report["runs"]:
        if r["mode"] == "linear" and abs(r["fraction"] - fraction) < 1e-9 and "stage_test_accuracy" in r:
            rows.setdefault(r["task"], []).append(r["stage_test_accuracy"])
    if not rows:
        return ""
    n = max(len(v[0]) for v in rows.values())
    lines = ["| encoder | " + " | ".join(f"stage {i + 1}" for i in range(n)) + " |", "|---|" + "---:|" * n]
    for task, accs in sorted(rows.items(), key=lambda kv: kv[0] != SCRATCH):
        a = np.asarray(accs)
        lines.append(f"| {task} | " + " | ".join(f"{100 * m:.1f} ± {100 * s:.1f}" for m, s in zip(a.mean(0), a.std(0, ddof=1) if len(a) > 1 else np.zeros(n))) + " |")
    return "\n".join(lines)


def paired_gain(runs: list[dict], task: str, mode: str = "finetune") -> list[tuple[float, float, float, int]]:
    """``task`` minus scratch, per labelled fraction, paired by seed (a seed fixes the labelled subset):
    ``[(fraction, mean, std, n_seeds)]`` in accuracy units, std over seeds (ddof 1; 0 for one seed)."""
    import numpy as np

    acc = {(r["task"], r["fraction"], r["seed"]): r["test_accuracy"] for r in runs if r["mode"] == mode}
    out = []
    for f in sorted({fr for (t, fr, _) in acc if t == task}):
        d = [acc[(task, f, s)] - acc[(SCRATCH, f, s)] for (t, fr, s) in acc if t == task and fr == f and (SCRATCH, f, s) in acc]
        if d:
            out.append((f, float(np.mean(d)), float(np.std(d, ddof=1)) if len(d) > 1 else 0.0, len(d)))
    return out


def gains_markdown(report: dict[str, Any]) -> str:
    """Each encoder minus scratch at every fraction, paired by seed, for every method (points,
    mean ± std over seeds): what pretraining buys, fine-tuned and frozen."""
    fractions = sorted({r["fraction"] for r in report["runs"]})
    tasks = sorted({r["task"] for r in report["runs"]} - {SCRATCH})
    modes = [m for m in ("finetune", "linear", "knn") if any(r["mode"] == m for r in report["runs"])]
    if not tasks or not modes:
        return ""
    lines = ["| encoder | method | " + " | ".join(f"{100 * f:g}%" for f in fractions) + " |", "|---|---|" + "---:|" * len(fractions)]
    for m in modes:
        for t in tasks:
            by = {g[0]: g for g in paired_gain(report["runs"], t, m)}
            cells = [f"{_signed(100 * by[f][1])} ± {100 * by[f][2]:.1f}" if f in by else "–" for f in fractions]
            lines.append(f"| {t} | {MODE_TITLES.get(m, m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fraction_axis(ax, title: str, ylabel: str) -> None:
    """Log-scaled labelled-fraction x axis with the protocol's fractions as ticks."""
    ax.set_xscale("log")
    ax.set_xticks([0.01, 0.05, 0.1, 0.25, 0.5, 1.0], ["1%", "5%", "10%", "25%", "50%", "100%"])
    ax.set_title(title)
    ax.set_xlabel("labelled fraction of the training split")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def draw_figure(report: dict[str, Any]):
    """Test accuracy vs labelled fraction, one line per encoder, ± std band; a panel per mode, and
    a last panel with each encoder's fine-tune gain over scratch (paired by seed). Each encoder is
    drawn in its ``ssl_train.palette`` colour (scratch grey and dashed), the same as in the app.
    Returns the matplotlib Figure (Agg backend), not yet saved: ``save_figure`` writes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summ = summarize(report["runs"])
    modes = [m for m in ("finetune", "linear", "knn") if any(s["mode"] == m for s in summ)]
    gain_panel = "finetune" in modes and any(s["task"] == SCRATCH for s in summ) and len({s["task"] for s in summ}) > 1
    n_panels = len(modes) + gain_panel
    ncols = 2 if n_panels == 4 else n_panels  # 2 × 2 stays legible at README width
    nrows = -(-n_panels // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.8 * ncols, 3.8 * nrows), squeeze=False)
    axes = list(grid.ravel())
    for ax in axes[1:len(modes)]:
        ax.sharey(axes[0])
    tasks = sorted({s["task"] for s in summ}, key=lambda t: (t != SCRATCH, t))
    # the palette's colours, not tab10: a task is the same colour here, in the app and in the talk
    colors = {t: encoder_colour(t) for t in tasks}
    for ax, mode in zip(axes, modes):
        for t in tasks:
            pts = sorted((s["fraction"], s["mean"], s["std"]) for s in summ if s["task"] == t and s["mode"] == mode)
            if not pts:
                continue
            f, m, sd = (list(x) for x in zip(*pts))
            lo = [a - b for a, b in zip(m, sd)]
            hi = [a + b for a, b in zip(m, sd)]
            ax.plot(f, [100 * v for v in m], marker="o", ms=3, color=colors[t], ls="--" if t == SCRATCH else "-", label="scratch" if t == SCRATCH else t)
            ax.fill_between(f, [100 * v for v in lo], [100 * v for v in hi], color=colors[t], alpha=0.18, lw=0)
        _fraction_axis(ax, MODE_TITLES.get(mode, mode), "test accuracy (%)")
    axes[len(modes) - 1].legend(loc="lower right", fontsize=8)
    if gain_panel:
        ax = axes[-1]
        for t in tasks:
            if t == SCRATCH:
                continue
            pts = paired_gain(report["runs"], t)
            if not pts:
                continue
            f, m, sd, _ = (list(x) for x in zip(*pts))
            ax.plot(f, [100 * v for v in m], marker="o", ms=3, color=colors[t], label=t)
            ax.fill_between(f, [100 * (a - b) for a, b in zip(m, sd)], [100 * (a + b) for a, b in zip(m, sd)], color=colors[t], alpha=0.12, lw=0)
        ax.axhline(0, color=PALETTE_SCRATCH, ls="--", lw=1)  # scratch itself: zero gain, in scratch's grey
        _fraction_axis(ax, "fine-tune: gain over scratch", "points (same seed, same labels)")
    seeds = sorted({r["seed"] for r in report["runs"]})
    fig.suptitle(f"Flowers, {report['n_test']} fixed test photos, mean ± std over {len(seeds)} seeds", fontsize=10)
    fig.tight_layout()
    return fig


def _quantized(im, keep: list[str], n: int = 64):
    """An RGB PIL image → an ``n``-colour palette image whose palette holds each ``keep`` colour
    (hex) exactly, plus a median cut of the rest. A median cut alone merges near hues of the
    palette's lines (Tol's red and orange, its cyan and teal came out one colour each)."""
    from PIL import Image, ImageColor

    exact = list(dict.fromkeys(ImageColor.getrgb(c)[:3] for c in keep))[: n // 2]
    flat = im.quantize(colors=n - len(exact), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).getpalette()
    cut = [tuple(flat[i : i + 3]) for i in range(0, 3 * (n - len(exact)), 3)]
    # Pillow maps a pixel to a palette entry through a coarse colour cube: a near copy of an exact
    # colour (the cut's 252-grey beside white) could take its pixels, so near copies are left out
    cut = [c for c in cut if min(sum((a - b) ** 2 for a, b in zip(c, e)) for e in exact) > 12 ** 2]
    palette = Image.new("P", (1, 1))
    palette.putpalette([v for c in (*exact, *cut) for v in c])
    return im.quantize(palette=palette, dither=Image.Dither.NONE)


def save_figure(fig, path: Path) -> None:
    """Write ``fig`` as a 64-colour palette PNG at 130 dpi and close it: a quarter of the size of
    matplotlib's RGBA one, the same to the eye (the tracked repository has a size budget and the
    figures are remade with every report). The lines keep their exact colours."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex
    from PIL import Image

    # white page, black text and every line's colour exactly; a median cut's bucket mean would tint them
    keep = ["#ffffff", "#000000", *sorted({to_hex(ln.get_color()) for ax in fig.axes for ln in ax.get_lines()})]
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=130, format="png")
    plt.close(fig)
    with Image.open(buf) as im:
        _quantized(im.convert("RGB"), keep).save(path, optimize=True)


def figure(report: dict[str, Any], path: Path) -> None:
    """``draw_figure`` of ``report`` saved to ``path`` (PNG)."""
    save_figure(draw_figure(report), path)


def lr_line(report: dict[str, Any]) -> str:
    """One sentence: the fine-tuning learning rate(s) the report's fine-tunes used."""
    cfg = report.get("config", {})
    per = cfg.get("finetune_lr") or {}
    if per:
        rates = ", ".join(f"{a} {lr:g}" for a, lr in sorted(per.items(), key=lambda kv: (kv[0] != SCRATCH, kv[0])))
        return ("Fine-tuning learning rate of each encoder, chosen on a validation split of the training photos at 10% labels "
                f"(`python -m ssl_train finetune-lr` → `reports/finetune-lr.md`; the test split never chooses): {rates}.")
    lr = cfg.get("finetune", {}).get("lr")
    return f"Every encoder, scratch included, fine-tuned with the same learning rate ({lr:g})." if isinstance(lr, (int, float)) else ""


def results_block(report: dict[str, Any], figure_rel: str) -> str:
    parts = [START, "", f"![test accuracy vs labelled fraction]({figure_rel})", ""]
    tenth = at_fraction_markdown(report, 0.1)
    if tenth:
        parts += ["At 10% labels (test accuracy %, mean ± std over seeds; best fine-tune first):", "", tenth, ""]
    rates = lr_line(report)
    if rates:
        parts += [rates, ""]
    parts += ["Every fraction:", "", table_markdown(report), ""]
    gains = gains_markdown(report)
    if gains:
        parts += ["Each encoder minus scratch (random init) at every fraction, paired by seed (points, mean ± std over seeds):", "", gains, ""]
    parts += ["Pretraining:", "", pretraining_markdown(report)]
    st = stage_markdown(report)
    if st:
        parts += ["", "Linear probe at 10% labels on the pooled output of each encoder stage (the shipped feature vector is stage 4, the last):", "", st]
    cmd = report.get("command") or "python -m ssl_train protocol"
    run_min = sum(r.get("wall_seconds", 0.0) for r in report["runs"]) / 60
    parts += ["", f"Made by `{cmd}` on {report['device']}; the protocol's {len(report['runs'])} runs took {run_min:.0f} min after pretraining. Rerun it to regenerate this block.", "", END]
    return "\n".join(parts)


def headline_markdown(report: dict[str, Any], fraction: float = 0.1) -> str:
    """The README's one table at one labelled fraction: each encoder's fine-tune, its gain over
    scratch (paired by seed) and its kNN accuracy, best fine-tune first; scratch's row has no gain."""
    summ = [s for s in summarize(report["runs"]) if abs(s["fraction"] - fraction) < 1e-9]
    if not summ:
        return ""
    by = {(s["task"], s["mode"]): s for s in summ}
    tasks = sorted({s["task"] for s in summ}, key=lambda t: (-round((by.get((t, "finetune")) or {"mean": -1.0})["mean"], 9), t))
    lines = ["| encoder | fine-tune | gain over scratch | kNN |", "|---|---:|---:|---:|"]
    for t in tasks:
        paired = [g for g in paired_gain(report["runs"], t) if abs(g[0] - fraction) < 1e-9] if t != SCRATCH else []
        gain = f"{_signed(100 * paired[0][1])} ± {100 * paired[0][2]:.1f}" if paired else "–"
        lines.append(f"| {'scratch (random init)' if t == SCRATCH else t} | {_cell(by.get((t, 'finetune')))} | {gain} | {_cell(by.get((t, 'knn')))} |")
    return "\n".join(lines)


def headline_block(report: dict[str, Any], figure_rel: str, results_rel: str = str(RESULTS_PAGE)) -> str:
    """The README's results: the figure and ``headline_markdown`` at 10% labels, between the headline
    markers; every other table is in the results page (``results_block``) at ``results_rel``."""
    seeds = sorted({r["seed"] for r in report["runs"]})
    parts = [HEADLINE_START, "", f"![test accuracy vs labelled fraction]({figure_rel})", ""]
    table = headline_markdown(report, 0.1)
    if table:
        parts += [f"With 10% of the {report['n_train']} training photos labelled: test accuracy % on the {report['n_test']} fixed test "
                  f"photos, mean ± std over {len(seeds)} seeds; the gain over scratch is in points, paired by seed; best fine-tune first.",
                  "", table, ""]
    parts += [f"Made by the protocol's {len(report['runs'])} runs (`python -m ssl_train protocol …`, the whole command at the foot of "
              f"[{results_rel}]({results_rel}), with every fraction, method and the pretraining) on {report['device']}; "
              "`python -m ssl_train report` rewrites this block from `reports/protocol.json`.", "", HEADLINE_END]
    return "\n".join(parts)


def _replace_block(path: Path, start: str, end: str, block: str) -> bool:
    """Replace the text between ``start`` and ``end`` (markers included) in ``path`` by ``block``;
    False (and nothing written) when the file or either marker is missing."""
    if not path.exists():
        return False
    text = path.read_text()
    if start not in text or end not in text:
        return False
    pre, rest = text.split(start, 1)
    _, post = rest.split(end, 1)
    path.write_text(pre + block + post)
    return True


def _relative(target: Path, folder: Path) -> str:
    """``target`` as a link from a Markdown file in ``folder`` (``../reports/protocol.png``)."""
    try:
        return Path(os.path.relpath(target.resolve(), folder.resolve())).as_posix()
    except ValueError:  # another drive
        return str(target)


def write_reports(json_path: Path, readme: Path | None = None, results_page: Path | None = None) -> dict[str, Path]:
    """From ``json_path`` write ``<stem>.png`` and ``<stem>.md`` beside it and replace the blocks
    between markers: in ``results_page`` (default ``docs/results.md`` beside ``readme``) the results
    block, every table; in ``readme`` the headline block, one table at 10% labels. A file is changed
    only between the markers it holds (results or headline markers, either file); ``readme`` None
    touches neither file."""
    json_path = Path(json_path)
    if json_path.suffix == ".gz":  # a finished study's report, kept compressed (the clone budget)
        import gzip

        report = json.loads(gzip.decompress(json_path.read_bytes()))
        json_path = json_path.with_suffix("")  # protocol-15ep.json.gz → protocol-15ep.png / .md beside it
    else:
        report = json.loads(json_path.read_text())
    fig_path = json_path.with_suffix(".png")
    md_path = json_path.with_suffix(".md")
    figure(report, fig_path)
    written = {"figure": fig_path, "table": md_path}
    block = results_block(report, fig_path.name)
    md_path.write_text(block.replace(START, "").replace(END, "").strip() + "\n")
    if readme is None:
        return written
    readme = Path(readme)
    results_page = Path(results_page) if results_page is not None else readme.parent / RESULTS_PAGE
    for key, path in (("results", results_page), ("readme", readme)):
        folder = path.parent
        changed = [
            _replace_block(path, START, END, results_block(report, _relative(fig_path, folder))),
            _replace_block(path, HEADLINE_START, HEADLINE_END,
                           headline_block(report, _relative(fig_path, folder), _relative(results_page, folder))),
        ]
        if any(changed):
            written[key] = path
    return written

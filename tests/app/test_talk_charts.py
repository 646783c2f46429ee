"""Talk mode's charts (app.talk.charts): content from the real protocol report, synthetic learning and
replay files in the documented formats, projector style, and palette colours only."""
from __future__ import annotations

import json
import re

import numpy as np
import plotly.graph_objects as go
import pytest

from app import palette, reference
from app.talk import charts

from ..conftest import REPO

PROTOCOL = REPO / "reports" / "protocol.json"
CLASSES = ("daisy", "dandelion", "rose", "sunflower", "tulip")
EPOCHS = (0, 1, 2, 5, 10, 20)


def palette_colours() -> set[str]:
    spare = palette.class_colours([f"class {i}" for i in range(9)])  # what unknown classes get
    hexes = {*palette.ENCODERS.values(), *palette.CLASSES.values(), *spare, palette.SCRATCH, palette.UPLOAD, palette.HIGHLIGHT}
    return {h.upper() for h in hexes}


def colours_in(fig: go.Figure) -> list[str]:
    """Every colour value set in the figure (data, layout, frames), the template's defaults excluded."""
    spec = fig.to_plotly_json()
    spec["layout"].pop("template", None)
    found = []

    def walk(node, key=""):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v, key)
        elif isinstance(node, np.ndarray) and key.endswith("color"):
            found.extend(str(v) for v in node.ravel())
        elif isinstance(node, str) and key.endswith("color"):
            found.append(node)

    walk(spec["data"]), walk(spec["layout"]), walk([f for f in spec.get("frames", [])])
    return found


def assert_palette_only(fig: go.Figure) -> None:
    allowed = palette_colours()
    colours = colours_in(fig)
    assert colours
    for c in colours:
        m = re.fullmatch(r"rgba\((\d+),(\d+),(\d+),[0-9.]+\)", c)
        hexed = "#{:02X}{:02X}{:02X}".format(*map(int, m.groups())) if m else c.upper()
        assert hexed in allowed or c == "white", c


def assert_projector_style(fig: go.Figure) -> None:
    lay = fig.layout
    assert lay.autosize and lay.height is None and lay.title.text is None
    assert lay.font.size >= 22 and lay.template.layout.paper_bgcolor == "white" and lay.paper_bgcolor == "white"
    for a in lay.annotations:
        assert a.font.size >= 26, a.text
    for t in fig.data:
        if t.type == "scatter" and t.mode and "lines" in t.mode:
            assert t.line.width >= 4
        if t.type == "scatter" and t.mode == "text":
            assert t.textfont.size >= 26


def fine_tune_means() -> dict[tuple[str, float], float]:
    summary, _ = reference.load(PROTOCOL)
    ft = summary[summary["mode"] == "finetune"]
    return {(r.task, round(100 * r.fraction, 6)): 100 * r.mean for r in ft.itertuples()}


def test_headline_scratch_protagonist_and_the_best_other_encoder():
    means = fine_tune_means()
    others = {t: m for (t, f), m in means.items() if f == 10 and t not in (reference.SCRATCH, charts.PROTAGONIST)}
    best = max(others, key=others.get)
    fig = charts.headline(PROTOCOL)
    assert [t.name for t in fig.data] == ["no pretraining (scratch)", charts.name(charts.PROTAGONIST), charts.name(best)]
    assert all(t.mode == "lines+markers" and t.error_y.array is not None for t in fig.data)
    assert [t.line.color for t in fig.data] == [palette.SCRATCH, palette.encoder_colour(charts.PROTAGONIST), palette.encoder_colour(best)]
    assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis.tickvals) == [1, 5, 10, 25, 50, 100]
    texts = " ".join(a.text for a in fig.layout.annotations)
    for task in (best, charts.PROTAGONIST):
        gain = round(means[(task, 10)] - means[(reference.SCRATCH, 10)])
        assert f"{gain:+d} points</b> at 10 % labels" in texts
    assert "696 test photos" in texts and "3 runs" in texts
    assert_projector_style(fig)
    assert_palette_only(fig)
    assert charts.headline(PROTOCOL, height=500).layout.height == 500


def synthetic_protocol(path, accuracies: dict[str, float]):
    runs = [{"task": t, "mode": "finetune", "fraction": f, "seed": s, "test_accuracy": min(1.0, a * (0.8 + f / 5) + 0.01 * s)}
            for t, a in accuracies.items() for f in (0.01, 0.1, 1.0) for s in (0, 1, 2)]
    path.write_text(json.dumps({"n_test": 100, "runs": runs}))
    return path


def test_headline_shows_the_second_best_when_the_protagonist_is_best(tmp_path):
    p = synthetic_protocol(tmp_path / "protocol.json", {"scratch": 0.5, charts.PROTAGONIST: 0.8, "jigsaw": 0.6, "simclr": 0.7})
    fig = charts.headline(p)
    assert [t.name for t in fig.data] == ["no pretraining (scratch)", charts.PROTAGONIST, "SimCLR"]


def test_caveats_one_bar_series_per_pretext_task_in_its_palette_colour():
    means = fine_tune_means()
    tasks = {t for t, _ in means} - {reference.SCRATCH}
    fig = charts.caveats(PROTOCOL)
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {charts.name(t) for t in tasks} and len(fig.data) == len(tasks)
    for task in tasks:
        trace = by_name[charts.name(task)]
        assert trace.marker.color == palette.encoder_colour(task)
        assert list(trace.y) == pytest.approx([means[(task, f)] - means[(reference.SCRATCH, f)] for f in (1, 10, 100)])
    # ranked by the gain at 10 %, the best written out
    at10 = [means[(t, 10)] for t in (next(k for k in tasks if charts.name(k) == tr.name) for tr in fig.data)]
    assert at10 == sorted(at10, reverse=True)
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "no better than scratch" in texts and fig.data[0].name in texts
    assert_projector_style(fig)
    assert_palette_only(fig)


@pytest.mark.parametrize("chart", [charts.headline, charts.caveats])
def test_protocol_charts_missing_or_unreadable(chart, tmp_path):
    with pytest.raises(charts.Missing) as e:
        chart(tmp_path / "protocol.json")
    assert e.value.command == charts.PROTOCOL_COMMAND and "is missing" in e.value.what
    assert str(e.value) == f"{e.value.what} — {e.value.command}"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(charts.Missing, match="cannot be used"):
        chart(tmp_path / "bad.json")


def write_learning(path, epochs=EPOCHS, n=60, drop: str | None = None, meta: dict | None = None):
    """A file in the learning-map format: classes drift from random positions to separate clusters."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % len(CLASSES)
    angle = 2 * np.pi * labels / len(CLASSES)
    end = 0.6 * np.stack([np.cos(angle), np.sin(angle)], 1) + rng.normal(0, 0.05, (n, 2))
    t = (np.asarray(epochs, float) / max(epochs))[:, None, None]
    xy = (1 - t) * rng.uniform(-1, 1, (n, 2)) + t * end
    arrays = dict(epochs=np.asarray(epochs, np.int16), xy=xy.astype(np.float16), labels=labels.astype(np.int16), classes=np.asarray(CLASSES),
                  files=np.asarray([f"{CLASSES[c]}/{i}.jpg" for i, c in enumerate(labels)]), meta=np.asarray(json.dumps({"format": "pretext-lab-learning/1", **(meta or {})})))
    arrays.pop(drop, None)
    np.savez_compressed(path, **arrays)
    return path


def test_learning__a_map_from_a_rerun_says_so_in_its_title(tmp_path):
    rerun = charts.learning(write_learning(tmp_path / "a.npz", meta={"same_training_as_model": False}), title="simclr")
    assert rerun.layout.title.text == "simclr (a rerun of its settings)"
    own = charts.learning(write_learning(tmp_path / "b.npz", meta={"same_training_as_model": True}), title="rotation")
    assert own.layout.title.text == "rotation"


def test_learning_animates_one_frame_per_epoch(tmp_path):
    fig = charts.learning(write_learning(tmp_path / "learning.npz"))
    assert [f.name for f in fig.frames] == [str(e) for e in EPOCHS]
    classes = [t for t in fig.data if t.mode == "markers"]
    assert [t.name for t in classes] == list(CLASSES)
    assert [t.marker.color for t in classes] == palette.class_colours(list(CLASSES))
    assert len(fig.data) == len(CLASSES) + 1  # + the score's text
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == [str(e) for e in EPOCHS] and fig.layout.sliders[0].currentvalue.prefix == "epoch "
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["▶ Play", "❚❚ Pause"]
    assert fig.layout.updatemenus[0].buttons[0].args[1]["frame"]["redraw"] is False
    assert list(fig.layout.xaxis.range) == [-1.1, 1.1] and fig.layout.yaxis.scaleanchor == "x" and not fig.layout.xaxis.visible
    scores = [re.search(r"<b>(\d+) %</b>", f.data[-1].text[0]).group(1) for f in fig.frames]
    assert int(scores[-1]) == 100 and int(scores[0]) < 60  # the random start mixes the flowers, the end separates them
    assert "by chance: 19 %" in fig.frames[0].data[-1].text[0]  # 5 classes of 12: 5 · 12 · 11 / (60 · 59)
    assert_projector_style(fig)
    assert_palette_only(fig)


def test_neighbour_agreement_and_chance():
    labels = np.repeat([0, 1], 20)
    apart = np.concatenate([np.zeros((20, 2)), np.ones((20, 2))]) + np.random.default_rng(0).normal(0, 0.01, (40, 2))
    assert charts.neighbour_agreement(apart, labels) == 100
    assert charts.chance_agreement(labels) == pytest.approx(100 * 2 * 20 * 19 / (40 * 39))
    mixed = np.random.default_rng(1).uniform(-1, 1, (2000, 2))
    labels = np.random.default_rng(2).integers(0, 4, 2000)
    assert charts.neighbour_agreement(mixed, labels) == pytest.approx(charts.chance_agreement(labels), abs=3)


def test_learning_missing_and_malformed(tmp_path):
    with pytest.raises(charts.Missing) as e:
        charts.learning(tmp_path / "learning.npz")
    assert "is missing" in e.value.what and "learning-map" in e.value.command
    with pytest.raises(charts.Missing, match="no xy"):
        charts.learning(write_learning(tmp_path / "no-xy.npz", drop="xy"))
    with pytest.raises(charts.Missing, match="not a learning map"):
        bad = write_learning(tmp_path / "short.npz")
        z = dict(np.load(bad))
        np.savez(bad, **(z | {"labels": z["labels"][:-1]}))
        charts.learning(bad)
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(charts.Missing, match="cannot be read"):
        charts.learning(tmp_path / "junk.npz")


def write_replay(path, epochs=12, per_epoch=2):
    arms = []
    for name, label, final in (("scratch", "from scratch", 0.55), ("simclr", "pretrained with SimCLR (no labels)", 0.7)):
        pts = [{"step": s, "epoch": s / per_epoch, "train_loss": None if s == 0 else 1.5 / (1 + s), "test_accuracy": 0.2 + (final - 0.2) * s / (epochs * per_epoch)}
               for s in range(epochs * per_epoch + 1)]
        arms.append({"name": name, "label": label, "lr": 0.1, "final_test_accuracy": final, "points": pts})
    path.write_text(json.dumps({"format": "pretext-lab-replay/1", "made_by": "test", "fraction": 0.1, "seed": 0, "n_labelled": 278, "n_test": 696,
                                "image_size": 96, "encoder": "simclr", "seconds": 1.0, "device": "cpu", "arms": arms}))
    return path


def test_replay_reveals_both_arms(tmp_path):
    fig = charts.replay(write_replay(tmp_path / "replay.json"))
    assert len(fig.frames) == 25
    named = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in named] == ["from scratch", "pretrained with SimCLR (no labels)"]
    assert [t.line.color for t in named] == [palette.SCRATCH, palette.encoder_colour("simclr")]
    first, last = fig.frames[0], fig.frames[-1]
    assert len(first.data[0].x) == 1 and len(last.data[0].x) == 25  # the curves grow point by point
    assert [t.text[0] for t in last.data if t.mode == "text"] == ["<b>55 %</b>", "<b>70 %</b>"]
    assert all(t.text[0] == "" for t in first.data if t.mode == "text")
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["▶ Play", "❚❚ Pause"] and len(fig.layout.sliders[0].steps) == 25
    assert fig.layout.yaxis.range[0] == 0 and fig.layout.xaxis.range[1] >= 12  # fixed axes: nothing rescales while it plays
    assert_projector_style(fig)
    assert_palette_only(fig)


def test_replay_missing_and_malformed(tmp_path):
    with pytest.raises(charts.Missing, match="is missing"):
        charts.replay(tmp_path / "replay.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something-else/1", "arms": []}))
    with pytest.raises(charts.Missing, match="not a fine-tune replay"):
        charts.replay(tmp_path / "other.json")
    (tmp_path / "no-points.json").write_text(json.dumps({"format": charts.REPLAY_FORMAT, "arms": [{"name": "scratch"}]}))
    with pytest.raises(charts.Missing, match="KeyError"):
        charts.replay(tmp_path / "no-points.json")

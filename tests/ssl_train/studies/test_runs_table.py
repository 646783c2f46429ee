"""`python -m ssl_train runs`: runs' summaries side by side."""
from __future__ import annotations

import json

from ssl_train.__main__ import main
from ssl_train.studies.runs_table import collect, to_markdown


def _summary(path, grid: int, holdout: str, acc: float, batch_size: int = 128, image_size: int = 96, **train) -> None:
    path.mkdir(parents=True)
    s = {"task": "rotation", "completed_epochs": 15, "holdout": holdout, f"pretext_{holdout}": {"acc": acc, "loss": 1.0},
         "train_seconds_total": 120.0, "device": "cpu (2 cores, x86_64)",
         "config": {"task": {"crop_scale_min": 0.35, "color_jitter": 0.4, "hidden": 0, "grid": grid}, "train": {"batch_size": batch_size, "lr": 0.1, "weight_decay": 5e-4, **train},
                    "data": {"root": "data/flowers", "image_size": image_size}}}
    (path / "summary.json").write_text(json.dumps(s))


def test_runs__shows_only_options_off_the_defaults_and_the_photos_each_was_scored_on(tmp_path):
    _summary(tmp_path / "a", 1, "validation", 0.559)
    _summary(tmp_path / "b", 2, "test", 0.7, batch_size=32)
    rows = collect([tmp_path / "a", tmp_path / "b"])
    assert [r["options"] for r in rows] == [{}, {"grid": 2}]
    md = to_markdown(rows, "python -m ssl_train runs a b")
    assert "| a | rotation | defaults | 15 | 128 | validation | 55.9% | 1.000 | 2.0 min |" in md
    assert "| b | rotation | grid=2 | 15 | 32 | test | 70.0% |" in md


def test_runs__an_unfinished_run_is_one_line_and_nothing_is_written(tmp_path, capsys):
    (tmp_path / "half").mkdir()
    assert main(["runs", str(tmp_path / "half"), "--out", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a finished pretraining run" in err and not (tmp_path / "r.md").exists()


def test_runs__a_learning_rate_or_weight_decay_off_the_defaults_is_named_as_its_flag(tmp_path):
    _summary(tmp_path / "base", 1, "validation", 0.78, batch_size=16)
    _summary(tmp_path / "wd", 1, "validation", 0.77, batch_size=16, weight_decay=2e-3)
    _summary(tmp_path / "lr", 2, "validation", 0.79, batch_size=16, lr=0.05)
    rows = collect([tmp_path / "base", tmp_path / "wd", tmp_path / "lr"])
    assert [r["train_options"] for r in rows] == [{}, {"weight_decay": 2e-3}, {"lr": 0.05}]
    md = to_markdown(rows, "python -m ssl_train runs base wd lr")
    assert "| base | rotation | defaults | 15 | 16 |" in md
    assert "| wd | rotation | --weight-decay 0.002 | 15 | 16 |" in md
    assert "| lr | rotation | grid=2, --lr 0.05 | 15 | 16 |" in md


def test_runs__a_larger_input_size_is_named_as_its_flag_not_shown_as_defaults(tmp_path):
    _summary(tmp_path / "base", 1, "validation", 0.78, batch_size=16)
    _summary(tmp_path / "px", 1, "validation", 0.789, batch_size=16, image_size=128, seed=1)
    rows = collect([tmp_path / "base", tmp_path / "px"])
    assert [r["data_options"] for r in rows] == [{}, {"image_size": 128}]
    md = to_markdown(rows, "python -m ssl_train runs base px")
    assert "| base | rotation | defaults | 15 | 16 |" in md
    assert "| px | rotation | --seed 1, --image-size 128 | 15 | 16 |" in md

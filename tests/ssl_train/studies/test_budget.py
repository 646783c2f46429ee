"""budget: the pretraining epochs chosen on a validation split of the training photos."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ssl_train.__main__ import main
from ssl_train.studies.budget import run
from ssl_train.evaluate import FinetuneConfig
from ssl_train.train import TrainConfig

QUICK_FT = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, device="cpu")


def test_budget_run__never_reads_test_photos_and_pairs_gains_by_seed(tiny_data, small_encoder, tmp_path):
    args = (["rotation"], [1], tiny_data, small_encoder, TrainConfig(epochs=1, batch_size=8, device="cpu"), QUICK_FT, tmp_path / "runs", 0.5, [0, 1])
    r = run(*args)[0]
    row = r["budgets"][0]
    assert r["chosen_epochs"] == 1 and r["n_fit"] + r["n_val"] == len(tiny_data.train_idx)
    assert np.allclose(row["gain"], np.asarray(row["val_accuracy"]) - np.asarray(r["scratch_val_accuracy"]))
    # scramble every test photo: nothing the command reports may change
    g = torch.Generator().manual_seed(0)
    test = torch.as_tensor(tiny_data.test_idx)
    tiny_data.ds.images[test] = torch.randint(0, 256, tiny_data.ds.images[test].shape, generator=g, dtype=torch.uint8)
    again = run(*args)[0]
    assert again["budgets"][0]["val_accuracy"] == row["val_accuracy"] and again["scratch_val_accuracy"] == r["scratch_val_accuracy"]


def test_budget_cli__writes_report_and_refuses_a_zero_budget_in_one_line(tiny_folder, tmp_path, capsys):
    base = ["budget", "--data", str(tiny_folder), "--split", str(tmp_path / "split.csv"), "--image-size", "32", "--widths", "8,16,16,32",
            "--blocks", "1,1,1,1", "--batch-size", "8", "--ft-epochs", "1", "--ft-min-steps", "2", "--ft-max-steps", "2", "--seeds", "0",
            "--fraction", "0.5", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "reports")]
    assert main(base + ["--budgets", "0,1"]) == 2  # refused before any training
    err = capsys.readouterr().err.strip()
    assert "--budgets" in err and "\n" not in err
    assert main(base + ["--budgets", "1,2", "--tasks", "rotation,inpainting"]) == 0
    r = json.loads((tmp_path / "reports" / "budget-rotation.json").read_text())
    assert [b["epochs"] for b in r["budgets"]] == [1, 2] and r["chosen_epochs"] in (1, 2)
    other = json.loads((tmp_path / "reports" / "budget-inpainting.json").read_text())
    assert other["task"] == "inpainting" and other["scratch_val_accuracy"] == r["scratch_val_accuracy"]  # scratch fine-tuned once
    md = (tmp_path / "reports" / "budget-rotation.md").read_text()
    assert "| 2 epochs |" in md and "Made by `python -m ssl_train budget" in md
    assert r["scratch_seconds"] == other["scratch_seconds"] >= 0 and "scratch fine-tunes shared by every task" in md


def test_budget_cli__recipes_pretrain_each_budget_with_the_tasks_other_settings_and_say_so(tiny_folder, tmp_path, capsys):
    """budget --recipes: every budget of rotation in its recipe's batches of 16 photos; --task-image-sizes overrides its 128 px."""
    base = ["budget", "--data", str(tiny_folder), "--split", str(tmp_path / "split.csv"), "--image-size", "32", "--widths", "8,16,16,32",
            "--blocks", "1,1,1,1", "--batch-size", "8", "--ft-epochs", "1", "--ft-min-steps", "2", "--ft-max-steps", "2", "--seeds", "0",
            "--fraction", "0.5", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "reports"), "--budgets", "1", "--tasks", "rotation"]
    assert main(base + ["--recipes", "--task-image-sizes", "rotation=48"]) == 0
    r = json.loads((tmp_path / "reports" / "budget-rotation.json").read_text())
    assert r["recipe"] == {"batch_size": 16, "image_size": 48}
    summary = json.loads((tmp_path / "runs" / r["budgets"][0]["run"] / "summary.json").read_text())
    assert summary["config"]["train"]["batch_size"] == 16 and summary["config"]["data"]["image_size"] == 48
    assert "Pretrained in batches of 16 photos. Pretrained on 48-px photos." in (tmp_path / "reports" / "budget-rotation.md").read_text()
    capsys.readouterr()
    assert main(base + ["--task-batch-sizes", "simclr=4"]) == 2  # a task the study does not pretrain
    assert "--task-batch-sizes simclr: not among --tasks" in capsys.readouterr().err

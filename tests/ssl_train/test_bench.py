"""The throughput benchmark runs both paths for a task and writes its report."""
from __future__ import annotations

import json

from ssl_train.bench import run_bench
from ssl_train.train import TrainConfig


def test_bench__both_paths_timed_and_report_written(tiny_data, small_encoder, tmp_path):
    path = run_bench(tiny_data, ["rotation"], small_encoder, TrainConfig(batch_size=8, device="cpu"), steps=1, warmup=1, repeats=2, workers=0, out_dir=tmp_path)
    assert path.name == "bench-cpu.json"
    rep = json.loads(path.read_text())
    (r,) = rep["tasks"]
    assert r["task"] == "rotation" and len(r["project"]["repeats"]) == 2
    assert r["project"]["images_per_s"] > 0 and r["conventional"]["images_per_s"] > 0
    assert abs(r["ratio"] - r["project"]["images_per_s"] / r["conventional"]["images_per_s"]) < 1e-9
    assert rep["versions"]["torch"] and rep["device_type"] == "cpu"


def test_bench__stateful_tasks_get_their_epoch_start(tiny_data, small_encoder, tmp_path):
    path = run_bench(tiny_data, ["pirl"], small_encoder, TrainConfig(batch_size=8, device="cpu"), steps=1, warmup=0, repeats=1, workers=0, out_dir=tmp_path)
    rep = json.loads(path.read_text())
    assert [r["task"] for r in rep["tasks"]] == ["pirl"]  # its memory bank is sized at epoch start
    assert all(r["epoch_start_seconds"] >= 0 and r["ratio"] > 0 for r in rep["tasks"])

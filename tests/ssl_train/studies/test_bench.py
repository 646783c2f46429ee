"""The throughput benchmark runs both paths for a task and writes its report."""
from __future__ import annotations

import json

from ssl_train.studies.bench import run_bench
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


def test_bench__bf16_peak_lookup_by_device_name():
    from ssl_train.studies.bench import _peak_for

    assert _peak_for("NVIDIA H200") == 989.0
    assert _peak_for("NVIDIA A100-SXM4-80GB") == 312.0  # not the A10's peak, whose name it contains
    assert _peak_for("NVIDIA A10") == 125.0
    assert _peak_for("cpu (2 cores, x86_64)") is None


def test_bench__flops_of_a_training_step_are_about_three_forwards(tiny_data, small_encoder):
    """The FLOP count behind CUDA's TFLOP/s figure, checked where it can run: forward + backward of
    the rotation step ≈ 3× the forward alone (the first layer needs no input gradient: a bit less)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ssl_train.studies.bench import _flops_per_step, _Stepper
    from ssl_train.tasks import get_task
    from ssl_train.runtime import as_float

    task = get_task("rotation")
    u8 = tiny_data.ds.images[:8]
    step = _Stepper(task, small_encoder, 32, torch.device("cpu"), TrainConfig(batch_size=8, device="cpu"), u8)
    x, idx = as_float(u8, True), torch.arange(8)
    total = _flops_per_step(step, x, idx)
    inputs, _ = task.make_batch(x, torch.Generator().manual_seed(0), idx)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        step.model(inputs)
    fwd = fc.get_total_flops()
    assert fwd > 0 and 2.0 < total / fwd < 3.2

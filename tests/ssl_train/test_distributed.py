"""torchrun with two CPU processes (gloo): same losses as one process, and a killed run resumes."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest

from ssl_train.checkpoint import load_checkpoint

from ..conftest import REPO


def _args(folder, tmp_path, out, *extra):
    return [
        "-m", "ssl_train", "pretrain", "--data", str(folder), "--split", str(tmp_path / "split.csv"), "--image-size", "32",
        "--widths", "8,16,16,32", "--blocks", "1,1,1,1", "--batch-size", "8", "--epochs", "2", "--device", "cpu",
        "--quiet", "--task-opt", "color_jitter=0", "--out", str(out), *extra,
    ]


# A C++ std::terminate in one rank with no Python error (no frame of this package in stderr), seen
# once in a clean-clone run of the whole suite and never in 16 runs of this file alone: a native crash
# in torch's distributed machinery, not an error of this package. A fresh run is retried once; a
# Python error, a second crash or wrong results still fail.
NATIVE_CRASH = "terminate called without an active exception"


def _run(cmd, fresh_out=None):
    """Run ``cmd``; when it writes a new run into ``fresh_out``, retry once after the native crash above."""
    def once():
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})

    r = once()
    if r.returncode != 0 and fresh_out is not None and NATIVE_CRASH in r.stderr and "/ssl_train/" not in r.stderr:
        shutil.rmtree(fresh_out, ignore_errors=True)
        r = once()
    # the child's own traceback comes first; torchrun's summary last
    assert r.returncode == 0, r.stderr[:3000] + "\n...\n" + r.stderr[-1000:]
    return r


def _losses(out):
    return [json.loads(x)["train_loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


# slow: two torchrun launches (~9 s); CI runs it
@pytest.mark.slow
def test_torchrun__two_processes_match_one_with_same_global_batch(tiny_folder, tmp_path):
    _run([sys.executable, *_args(tiny_folder, tmp_path, tmp_path / "one")])
    _run([*TORCHRUN, *_args(tiny_folder, tmp_path, tmp_path / "two")], fresh_out=tmp_path / "two")
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(one) == len(two) == 2
    # same initial weights and global batches; only per-rank augmentation draws and batch-norm
    # statistics (half batches) differ
    assert one == pytest.approx(two, abs=0.05)
    s = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert s["world_size"] == 2 and s["finished"]


# slow: a two-process torchrun launch (~10 s); CI runs it
@pytest.mark.slow
def test_torchrun__simclr_two_processes_contrast_the_whole_global_batch(tiny_folder, tmp_path):
    # global batch 8 photos = 16 views: each view has 15 candidates in one process; with each rank's
    # own negatives alone it would have 7 and the loss would start far lower (1.50 and 1.91 over the
    # two epochs, against 2.51 and 2.64 in one process, measured once before the gather existed)
    _run([sys.executable, *_args(tiny_folder, tmp_path, tmp_path / "one"), "--task", "simclr"])
    _run([*TORCHRUN, *_args(tiny_folder, tmp_path, tmp_path / "two"), "--task", "simclr"], fresh_out=tmp_path / "two")
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    # per-rank augmentation draws and batch-norm statistics over half batches (8 views) still differ
    assert one == pytest.approx(two, abs=0.3)
    assert min(two) > math.log(7)


# slow: two torchrun launches with a kill between (~11 s); CI runs it
@pytest.mark.slow
def test_torchrun__killed_two_process_run_resumes(tiny_folder, tmp_path):
    out = tmp_path / "run"
    _run([*TORCHRUN, *_args(tiny_folder, tmp_path, out, "--stop-after-epoch", "0")], fresh_out=out)
    assert load_checkpoint(out / "checkpoint.safetensors").meta["epoch"] == 0
    assert not (out / "summary.json").exists()
    _run([*TORCHRUN, *_args(tiny_folder, tmp_path, out, "--resume")])
    assert load_checkpoint(out / "checkpoint.safetensors").meta["epoch"] == 1
    assert len(_losses(out)) == 2 and json.loads((out / "summary.json").read_text())["finished"]

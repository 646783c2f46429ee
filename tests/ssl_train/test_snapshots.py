"""Watch it learn: feature snapshots during pretraining change nothing, survive a resume, and become
aligned layouts stored with a model."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ssl_train.__main__ import main
from ssl_train.errors import UserError
from ssl_train.snapshots import SNAPSHOT_FILE, auto_schedule, load_snapshots, parse_schedule, snapshot_test_idx, write_learning
from ssl_train.tasks import get_task
from ssl_train.train import CHECKPOINT_NAME, TrainConfig, pretrain

FAST = dict(batch_size=8, lr=0.05, warmup_epochs=0.5, device="cpu")


def _rotation():
    return get_task("rotation", {"color_jitter": "0", "crop_scale_min": "0.8"})


def test_snapshots__training_is_bit_for_bit_the_same(tiny_data, small_encoder, tmp_path):
    cfg = TrainConfig(epochs=3, **FAST)
    pretrain(_rotation(), tiny_data, tmp_path / "plain", small_encoder, cfg, progress=False)
    pretrain(_rotation(), tiny_data, tmp_path / "snap", small_encoder, cfg, progress=False, snapshots=(0, 1, 3))
    a, b = load_file(str(tmp_path / "plain" / CHECKPOINT_NAME)), load_file(str(tmp_path / "snap" / CHECKPOINT_NAME))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    snaps = load_snapshots(tmp_path / "snap" / SNAPSHOT_FILE)
    assert sorted(snaps) == [0, 1, 3]
    n_test, = tiny_data.test_idx.shape
    assert all(v.shape[0] == n_test and v.dtype == torch.float16 for v in snaps.values())
    assert not torch.equal(snaps[0], snaps[3])  # the features moved while it learned
    assert (snapshot_test_idx(tmp_path / "snap" / SNAPSHOT_FILE) == tiny_data.test_idx).all()


def test_snapshots__resumed_run_has_every_snapshot_of_an_uninterrupted_one(tiny_data, small_encoder, tmp_path):
    cfg = TrainConfig(epochs=3, **FAST)
    pretrain(_rotation(), tiny_data, tmp_path / "full", small_encoder, cfg, progress=False, snapshots=(0, 1, 2, 3))
    pretrain(_rotation(), tiny_data, tmp_path / "cut", small_encoder, cfg, progress=False, snapshots=(0, 1, 2, 3), stop_after_epoch=0)
    pretrain(_rotation(), tiny_data, tmp_path / "cut", small_encoder, cfg, progress=False, snapshots=(0, 1, 2, 3), resume=True)
    full, cut = load_snapshots(tmp_path / "full" / SNAPSHOT_FILE), load_snapshots(tmp_path / "cut" / SNAPSHOT_FILE)
    assert sorted(full) == sorted(cut) == [0, 1, 2, 3]
    assert all(torch.equal(full[k], cut[k]) for k in full)


def test_schedule__auto_is_dense_early_and_ends_at_the_last_epoch():
    assert auto_schedule(60) == (0, 1, 2, 3, 5, 10, 15, 20, 30, 40, 50, 60)
    s = auto_schedule(200)
    assert s[0] == 0 and s[-1] == 200 and len(s) <= 16
    assert auto_schedule(3) == (0, 1, 2, 3)


@pytest.mark.parametrize("text, match", [("0,5,99", "outside 0..60"), ("-1", "outside"), ("a,b", "'auto' or epoch counts")])
def test_schedule__impossible_counts_fail_before_training(text, match):
    with pytest.raises(UserError, match=match):
        parse_schedule(text, 60)


def test_cli__bad_snapshots_exit_2_before_any_work(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["pretrain", "--data", str(tiny_folder), "--split", str(tmp_path / "split.csv"), "--epochs", "2", "--snapshots", "0,7", "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--snapshots 7 is outside 0..2" in err[0]
    assert not out.exists() and not (tmp_path / "split.csv").exists()


def test_learning__layouts_are_stored_as_small_aligned_frames(tiny_data, small_encoder, tmp_path):
    pretrain(_rotation(), tiny_data, tmp_path / "run", small_encoder, TrainConfig(epochs=2, **FAST), progress=False, snapshots=(0, 1, 2))
    model = tmp_path / "model"
    model.mkdir()
    idx = tiny_data.test_idx
    files = [tiny_data.ds.files[i] for i in idx]
    out = write_learning(model, tmp_path / "run", tiny_data.ds.labels[idx], tiny_data.ds.classes, files)
    z = np.load(out, allow_pickle=False)
    assert z["epochs"].tolist() == [0, 1, 2]
    assert z["xy"].shape == (3, len(idx), 2) and z["xy"].dtype == np.float16
    assert np.abs(z["xy"].astype(np.float32)).max() <= 1.0 + 1e-3
    assert z["labels"].tolist() == tiny_data.ds.labels[idx].tolist() and z["files"].tolist() == files
    assert json.loads(str(z["meta"]))["layout"].startswith("umap-learn AlignedUMAP")


def test_learning_map__refuses_a_run_without_snapshots(tiny_data, small_encoder, tmp_path, capsys):
    pretrain(_rotation(), tiny_data, tmp_path / "run", small_encoder, TrainConfig(epochs=1, **FAST), progress=False)
    rc = main(["learning-map", "--run", str(tmp_path / "run"), "--model", str(tmp_path)])
    assert rc == 2 and "pretrain with --snapshots auto" in capsys.readouterr().err


def test_same_training__equal_loss_history_only(tmp_path):
    from ssl_train.snapshots import same_training

    run, model = tmp_path / "run", tmp_path / "model"
    run.mkdir()
    model.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 0, "train_loss": 1.5}\n{"epoch": 1, "train_loss": 1.25}\n')
    (model / "model.json").write_text(json.dumps({"history": [{"epoch": 0, "train_loss": 1.5}, {"epoch": 1, "train_loss": 1.25}]}))
    assert same_training(model, run)
    (model / "model.json").write_text(json.dumps({"history": [{"epoch": 0, "train_loss": 1.5}, {"epoch": 1, "train_loss": 1.2500001}]}))
    assert not same_training(model, run)  # a rerun that did not reproduce the model's training
    (model / "model.json").write_text(json.dumps({}))
    assert not same_training(model, run)

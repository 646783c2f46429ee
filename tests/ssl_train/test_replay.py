"""``python -m ssl_train replay``: the recording of scratch vs a pretrained model fine-tuning (#28 slide 6)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ssl_train.__main__ import main

from ..conftest import REPO

SIMCLR = REPO / "models" / "simclr"
TINY_SCHEDULE = ["--image-size", "32", "--ft-epochs", "1", "--ft-min-steps", "4", "--ft-max-steps", "4", "--ft-batch-size", "4"]


def _run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_replay__tiny_run_writes_the_format(tiny_folder, tmp_path, capsys):
    out = tmp_path / "replay.json"
    code, stdout, err = _run(["replay", "--model", str(SIMCLR), "--data", str(tiny_folder), "--split", str(tmp_path / "split.csv"),
                              *TINY_SCHEDULE, "--points", "2", "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    assert f"wrote {out}" in stdout and "streamlit run app/streamlit_app.py" in stdout  # says what to run next
    doc = json.loads(out.read_text())
    assert list(doc) == ["format", "made_by", "fraction", "seed", "n_labelled", "n_test", "image_size", "encoder", "seconds", "device", "arms"]
    assert doc["format"] == "pretext-lab-replay/1" and doc["made_by"].startswith("python -m ssl_train replay --model ")
    assert (doc["fraction"], doc["seed"], doc["image_size"], doc["encoder"]) == (0.1, 0, 32, "simclr")
    assert doc["n_labelled"] == 3 and doc["n_test"] > 0 and doc["seconds"] > 0 and doc["device"].startswith("cpu")
    card = json.loads((SIMCLR / "model.json").read_text())["metrics"]["finetune_lr"]
    assert [(a["name"], a["label"], a["lr"]) for a in doc["arms"]] == [
        ("scratch", "from scratch", card["scratch_lr"]), ("simclr", "pretrained with SimCLR (no labels)", card["lr"])]
    for arm in doc["arms"]:
        assert list(arm) == ["name", "label", "lr", "final_test_accuracy", "points"]
        pts = arm["points"]
        assert [p["step"] for p in pts] == [0, 2, 4] and all(list(p) == ["step", "epoch", "train_loss", "test_accuracy"] for p in pts)
        assert pts[0]["train_loss"] is None and pts[0]["epoch"] == 0.0 and all(p["train_loss"] > 0 for p in pts[1:])
        assert [p["epoch"] for p in pts] == [0.0, 2.0, 4.0]  # 3 labelled photos: one step per epoch
        assert arm["final_test_accuracy"] == pts[-1]["test_accuracy"] and all(0.0 <= p["test_accuracy"] <= 1.0 for p in pts)


def test_replay__the_hook_does_not_change_the_fine_tune(tiny_data, small_encoder):
    """Scoring the test photos along the way (eval mode, forked random state) leaves every weight,
    and so the final accuracy, as a run without the hook makes them."""
    from ssl_train.evaluate import FinetuneConfig, finetune, predict
    from ssl_train.replay import Recorder

    imgs, y, tr, te = tiny_data.ds.images, np.asarray(tiny_data.ds.labels), tiny_data.train_idx, tiny_data.test_idx
    cfg = FinetuneConfig(epochs=1, min_steps=6, max_steps=6, batch_size=8, device="cpu")
    cpu = torch.device("cpu")
    plain, log_plain = finetune(None, small_encoder, imgs[torch.as_tensor(tr)], y[tr], 3, cfg, seed=3)
    rec = Recorder({0, 3, 6}, 3, imgs[torch.as_tensor(te)], y[te], cpu)
    watched, log_watched = finetune(None, small_encoder, imgs[torch.as_tensor(tr)], y[tr], 3, cfg, seed=3, watch=rec)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), watched.state_dict().values()))
    assert log_plain["final_loss"] == log_watched["final_loss"] and log_plain["steps"] == log_watched["steps"] == 6
    final = float((predict(plain, imgs[torch.as_tensor(te)], cpu).argmax(1) == y[te]).mean())
    assert [p["step"] for p in rec.points] == [0, 3, 6] and rec.points[-1]["test_accuracy"] == round(final, 6)


@pytest.mark.parametrize("existing", [True, False])
def test_replay__refuses_existing_out_or_missing_folder_before_training(tmp_path, capsys, existing):
    out = tmp_path / "replay.json" if existing else tmp_path / "no-such-folder" / "replay.json"
    if existing:
        out.write_text("keep me")
    code, _, err = _run(["replay", "--model", str(SIMCLR), "--data", "/nonexistent/photos", "--out", str(out)], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert ("already exists; pass --overwrite" if existing else "does not exist; create it") in lines[0]
    assert not existing or out.read_text() == "keep me"


def test_replay__refuses_a_bad_model_before_training(tmp_path, capsys):
    code, _, err = _run(["replay", "--model", str(tmp_path / "nope"), "--data", "/nonexistent/photos", "--out", str(tmp_path / "r.json")], capsys)
    assert code == 2 and err.startswith("error: ") and "does not exist; pass a training checkpoint" in err


def test_arm_lrs__card_then_finetune_lr_report_then_the_default(tmp_path):
    from ssl_train.errors import UserError
    from ssl_train.replay import arm_lrs

    card = {"metrics": {"finetune_lr": {"lr": 0.03, "scratch_lr": 0.3}}}
    assert arm_lrs(card, "simclr", "", 0.1) == (0.3, 0.03)
    report = tmp_path / "finetune-lr.json"
    report.write_text(json.dumps({"arms": {"scratch": {"chosen_lr": 0.3}, "rotation": {"chosen_lr": 0.1}}}))
    assert arm_lrs(None, "rotation", str(report), 0.05) == (0.3, 0.1)
    assert arm_lrs({}, "rotation", "", 0.05) == (0.05, 0.05)
    with pytest.raises(UserError, match="no learning rate for simclr"):
        arm_lrs(None, "simclr", str(report), 0.05)


def test_recorded_steps__evenly_spaced_from_zero_to_the_last():
    from ssl_train.replay import recorded_steps

    assert recorded_steps(150) == list(range(0, 151, 5))  # the 10 % subset: 150 steps, 31 points
    assert recorded_steps(4, 30) == [0, 1, 2, 3, 4]

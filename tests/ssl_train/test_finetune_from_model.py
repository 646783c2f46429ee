"""``finetune`` / ``evaluate`` from a shipped model folder or its weights.safetensors (#31), with the
real ``models/simclr``; bad paths end in one ``error:`` line, exit 2, before any photo is read."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from ssl_train.__main__ import main

from ..conftest import REPO

SIMCLR = REPO / "models" / "simclr"
NO_DATA = "/nonexistent/photos"  # an error about the model must come before the photos are looked at


def _run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_error(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def simclr_copy(tmp_path):
    """A copy of models/simclr to alter (the shipped folder stays untouched)."""
    return shutil.copytree(SIMCLR, tmp_path / "simclr", ignore=shutil.ignore_patterns("app_precomputed.npz"))


def test_load_pretrained__folder_and_its_weights_give_the_shipped_float32_encoder():
    from ssl_train.encoders import EncoderConfig
    from ssl_train.model_files import load_model_weights
    from ssl_train.pretrained import load_pretrained

    card = json.loads((SIMCLR / "model.json").read_text())
    want, _, _ = load_model_weights(SIMCLR)
    rng = torch.get_rng_state()
    for path in (SIMCLR, SIMCLR / "weights.safetensors"):
        pre = load_pretrained(path)
        assert pre.task == "simclr" and pre.name == "simclr" and pre.source == SIMCLR and pre.card["files"] == card["files"]
        assert pre.enc_cfg == EncoderConfig.from_dict(card["encoder"])
        assert pre.state.keys() == want.state_dict().keys()
        assert all(torch.equal(pre.state[k], v) and v.dtype == pre.state[k].dtype for k, v in want.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)  # loading draws no random numbers the caller would miss


def test_finetune__from_the_model_folder_runs(tiny_folder, tmp_path, capsys):
    code, out, err = _run(["finetune", "--checkpoint", str(SIMCLR / "weights.safetensors"), "--task", "simclr", "--data", str(tiny_folder),
                           "--split", str(tmp_path / "split.csv"), "--image-size", "32", "--ft-epochs", "1", "--ft-min-steps", "2",
                           "--ft-max-steps", "2", "--ft-batch-size", "4", "--out", str(tmp_path / "clf.safetensors")], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert res["encoder"] == "simclr" and res["steps"] == 2 and 0.0 <= res["test_accuracy"] <= 1.0
    from ssl_train.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "clf.safetensors").meta["source"] == "simclr"


def test_evaluate__from_the_model_folder_runs(tiny_folder, tmp_path, capsys):
    code, out, err = _run(["evaluate", "--checkpoint", str(SIMCLR), "--data", str(tiny_folder), "--split", str(tmp_path / "split.csv"),
                           "--image-size", "32"], capsys)
    assert code == 0, err
    row = json.loads(out.strip().splitlines()[0])
    assert row["encoder"] == "simclr" and len(row["linear_per_stage"]) == 4


@pytest.mark.parametrize("cmd", ["finetune", "evaluate"])
def test_refused__a_model_of_another_task(cmd, capsys):
    line = _one_error(*_run([cmd, "--checkpoint", str(SIMCLR), "--task", "rotation", "--data", NO_DATA], capsys)[::2])
    assert "holds a 'simclr' encoder, not 'rotation'" in line and "--task simclr" in line


def test_refused__altered_weights(simclr_copy, capsys):
    w = simclr_copy / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    for path in (simclr_copy, w):
        line = _one_error(*_run(["finetune", "--checkpoint", str(path), "--data", NO_DATA], capsys)[::2])
        assert "weights.safetensors does not match its sha256" in line and "regenerate" in line


def test_refused__another_file_of_a_model_folder(simclr_copy, capsys):
    line = _one_error(*_run(["finetune", "--checkpoint", str(simclr_copy / "model.onnx"), "--data", NO_DATA], capsys)[::2])
    assert "is not the weights of model folder" in line and str(simclr_copy / "weights.safetensors") in line


def test_refused__weights_without_their_card(simclr_copy, capsys):
    (simclr_copy / "model.json").unlink()
    line = _one_error(*_run(["finetune", "--checkpoint", str(simclr_copy / "weights.safetensors"), "--data", NO_DATA], capsys)[::2])
    assert "not a Pretext Lab checkpoint" in line


@pytest.mark.parametrize("make,msg", [
    (lambda d: (d / "checkpoint.safetensors").write_bytes(b"x"), "pass its checkpoint: "),  # a run folder
    (lambda d: None, "not a model folder"),
])
def test_refused__a_folder_that_is_no_model_folder(tmp_path, capsys, make, msg):
    run = tmp_path / "run"
    run.mkdir()
    make(run)
    line = _one_error(*_run(["finetune", "--checkpoint", str(run), "--data", NO_DATA], capsys)[::2])
    assert msg in line and str(run) in line


def test_refused__finetune_out_exists_before_training(tmp_path, capsys):
    out = tmp_path / "clf.safetensors"
    out.write_bytes(b"keep me")
    line = _one_error(*_run(["finetune", "--checkpoint", str(SIMCLR), "--out", str(out), "--data", NO_DATA], capsys)[::2])
    assert "already exists; pass --overwrite" in line and out.read_bytes() == b"keep me"

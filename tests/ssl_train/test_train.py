"""The task-agnostic loop: learning, checkpoints, resume, divergence, refusals."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import load_file

from ssl_train.checkpoint import load_checkpoint, save_checkpoint
from ssl_train.errors import UserError
from ssl_train.tasks import get_task
from ssl_train.tasks.rotation import Rotation, RotationConfig
from ssl_train.runtime import lr_at
from ssl_train.train import CHECKPOINT_NAME, TrainConfig, TrainingDiverged, pretrain

FAST = dict(batch_size=8, lr=0.05, warmup_epochs=0.5, device="cpu")


def _plain_rotation():
    return get_task("rotation", {"color_jitter": "0", "crop_scale_min": "0.8"})


def test_pretrain__loss_falls_on_tiny_set(tiny_data, small_encoder, tmp_path):
    cfg = TrainConfig(epochs=16, **{**FAST, "optimizer": "adamw", "lr": 1e-2})
    s = pretrain(_plain_rotation(), tiny_data, tmp_path / "run", small_encoder, cfg, progress=False)
    hist = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(hist) == 16 and s["finished"]
    first, last = sum(h["train_loss"] for h in hist[:2]) / 2, sum(h["train_loss"] for h in hist[-3:]) / 3
    assert last < first - 0.08, (first, last)  # chance level is ln 4 = 1.386
    assert 0.0 <= s["pretext_test"]["acc"] <= 1.0 and s["pretext_test"]["loss"] > 0


def test_resume__equals_uninterrupted(tiny_data, small_encoder, tmp_path):
    cfg = TrainConfig(epochs=3, **FAST)
    pretrain(_plain_rotation(), tiny_data, tmp_path / "full", small_encoder, cfg, progress=False)
    # "killed" after epoch 2 of 3, then resumed in a new call
    pretrain(_plain_rotation(), tiny_data, tmp_path / "cut", small_encoder, cfg, progress=False, stop_after_epoch=1)
    assert load_checkpoint(tmp_path / "cut" / CHECKPOINT_NAME).meta["epoch"] == 1
    pretrain(_plain_rotation(), tiny_data, tmp_path / "cut", small_encoder, cfg, resume=True, progress=False)
    a = load_file(str(tmp_path / "full" / CHECKPOINT_NAME))
    b = load_file(str(tmp_path / "cut" / CHECKPOINT_NAME))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    la = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    lb = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["train_loss"] for x in la] == [json.loads(x)["train_loss"] for x in lb]


def test_pretrain__existing_run_is_not_overwritten(tiny_data, small_encoder, tmp_path):
    pretrain(_plain_rotation(), tiny_data, tmp_path / "r", small_encoder, TrainConfig(epochs=1, **FAST), progress=False)
    before = (tmp_path / "r" / CHECKPOINT_NAME).read_bytes()
    with pytest.raises(UserError, match="already exists"):
        pretrain(_plain_rotation(), tiny_data, tmp_path / "r", small_encoder, TrainConfig(epochs=1, **FAST), progress=False)
    with pytest.raises(UserError, match="other settings"):
        pretrain(_plain_rotation(), tiny_data, tmp_path / "r", small_encoder, TrainConfig(epochs=1, **{**FAST, "lr": 0.3}), resume=True, progress=False)
    assert (tmp_path / "r" / CHECKPOINT_NAME).read_bytes() == before


@dataclass(frozen=True)
class _Cfg(RotationConfig):
    nan_from_epoch: int = 1


class _ExplodingRotation(Rotation):
    """Rotation whose loss turns NaN from a given epoch on (not registered)."""

    name = "rotation"
    Config = _Cfg

    def on_epoch_start(self, ctx):
        self.epoch = ctx.epoch

    def loss(self, out, targets):
        loss = super().loss(out, targets)
        return loss * float("nan") if self.epoch >= self.config.nan_from_epoch else loss


def test_nan_loss__stops_with_message_and_keeps_last_good_checkpoint(tiny_data, small_encoder, tmp_path):
    task = _ExplodingRotation(_Cfg(color_jitter=0.0))
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2 step 1; .*after epoch 1\) kept at"):
        pretrain(task, tiny_data, tmp_path / "r", small_encoder, TrainConfig(epochs=3, **FAST), progress=False)
    ck = load_checkpoint(tmp_path / "r" / CHECKPOINT_NAME)
    assert ck.meta["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in ck.encoder_state.values())


def test_checkpoint__holds_config_and_refuses_other_task_or_encoder(tiny_data, small_encoder, tmp_path):
    pretrain(_plain_rotation(), tiny_data, tmp_path / "r", small_encoder, TrainConfig(epochs=1, **FAST), progress=False)
    ck = load_checkpoint(tmp_path / "r" / CHECKPOINT_NAME)
    assert ck.meta["task"] == "rotation" and ck.meta["encoder"]["widths"] == [8, 16, 16, 32]
    assert ck.meta["config"]["train"]["epochs"] == 1 and ck.meta["config"]["data"]["image_size"] == 32
    assert ck.meta["split_sha256"] and ck.optimizer_state() is not None
    with pytest.raises(UserError, match="trained for task 'rotation', not 'jigsaw'"):
        ck.expect(task="jigsaw")
    with pytest.raises(UserError, match="holds encoder"):
        ck.expect(encoder={"name": "resnet_compact", "widths": [32, 64, 128, 256], "blocks": [1, 1, 2, 1]})


def test_checkpoint__not_safetensors_or_missing_is_one_line(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x80\x04\x95 pickle bytes, not safetensors")
    for path, msg in ((bad, "not a readable safetensors"), (tmp_path / "none.safetensors", "does not exist")):
        with pytest.raises(UserError, match=msg) as e:
            load_checkpoint(path)
        assert "\n" not in str(e.value)


def test_checkpoint__write_is_atomic(tmp_path, small_encoder):
    from ssl_train.encoders import build_encoder

    enc = build_encoder(small_encoder)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, enc, None, {"task": "t", "encoder": small_encoder.to_dict(), "epoch": 0})
    good = path.read_bytes()

    class Boom(torch.nn.Module):
        def state_dict(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_checkpoint(path, Boom(), None, {"task": "t", "epoch": 1})
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


def test_lr_schedule__warmup_then_cosine_to_zero():
    lrs = [lr_at(s, 100, 10, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] < 0.01


@pytest.mark.parametrize("kw,msg", [({"epochs": 0}, "--epochs"), ({"batch_size": 1}, "--batch-size"), ({"optimizer": "rmsprop"}, "--optimizer"), ({"lr": -1.0}, "--lr")])
def test_train_config__bad_values_fail_early(kw, msg):
    with pytest.raises(UserError, match=msg):
        TrainConfig(**kw)


@pytest.mark.skipif(not (__import__("shutil").which("cc") or __import__("shutil").which("gcc")), reason="torch.compile's CPU backend needs a C compiler")
def test_pretrain__compile_matches_eager_and_saves_plain_keys(tiny_data, small_encoder, tmp_path):
    """``--compile`` (inductor; on CPU it builds C++ kernels: the slowest test here, ~30 s) trains
    the same model as eager, and its checkpoint loads into a plain encoder (no ``_orig_mod.`` keys)."""
    cfg = TrainConfig(epochs=1, **FAST)
    pretrain(_plain_rotation(), tiny_data, tmp_path / "eager", small_encoder, cfg, progress=False)
    pretrain(_plain_rotation(), tiny_data, tmp_path / "compiled", small_encoder, TrainConfig(epochs=1, compile=True, **FAST), progress=False)
    loss = {k: json.loads((tmp_path / k / "metrics.jsonl").read_text().splitlines()[0])["train_loss"] for k in ("eager", "compiled")}
    assert loss["compiled"] == pytest.approx(loss["eager"], rel=1e-3)  # fused kernels round differently, not more
    a, b = load_file(str(tmp_path / "eager" / CHECKPOINT_NAME)), load_file(str(tmp_path / "compiled" / CHECKPOINT_NAME))
    assert a.keys() == b.keys() and not any("_orig_mod" in k for k in b)
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-3), k


def test_pretrain__validation_holdout_trains_on_fit_photos_and_scores_validation(tiny_data, small_encoder, tmp_path):
    from ssl_train.data import validation_split

    fit, val = validation_split(tiny_data)
    assert len(val) and set(fit) | set(val) == set(tiny_data.train_idx) and not set(fit) & set(val)
    cfg = TrainConfig(epochs=2, **{**FAST, "batch_size": 4})
    pretrain(_plain_rotation(), tiny_data, tmp_path / "v", small_encoder, cfg, progress=False, holdout="validation", stop_after_epoch=0)
    with pytest.raises(UserError, match="other settings"):  # the same run cannot be resumed on the other photos
        pretrain(_plain_rotation(), tiny_data, tmp_path / "v", small_encoder, cfg, resume=True, progress=False, holdout="test")
    s = pretrain(_plain_rotation(), tiny_data, tmp_path / "v", small_encoder, cfg, resume=True, progress=False, holdout="validation")
    steps = [json.loads(x)["step"] for x in (tmp_path / "v" / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 2 * (len(fit) // 4) < 2 * (len(tiny_data.train_idx) // 4)  # an epoch is the fit photos only
    assert s["holdout"] == "validation" and "pretext_test" not in s and 0.0 <= s["pretext_validation"]["acc"] <= 1.0
    assert load_checkpoint(tmp_path / "v" / CHECKPOINT_NAME).meta["holdout"] == "validation"
    with pytest.raises(UserError, match="--holdout 'val' is not one of"):
        pretrain(_plain_rotation(), tiny_data, tmp_path / "w", small_encoder, cfg, progress=False, holdout="val")


def test_pretrain__source_size_crops_from_sharper_photos_but_scores_at_the_input_size(tiny_data, small_encoder, tmp_path):
    task = get_task("rotation", {"color_jitter": "0", "source_size": "48", "train_size": "32"})
    seen: dict[str, set] = {"make": set(), "eval": set()}
    make, ev = task.make_batch, task.eval_batch
    task.make_batch = lambda x, g, i: (seen["make"].add(tuple(x.shape[-2:])), make(x, g, i))[1]  # type: ignore[method-assign]
    task.eval_batch = lambda x, g, i: (seen["eval"].add(tuple(x.shape[-2:])), ev(x, g, i))[1]  # type: ignore[method-assign]
    s = pretrain(task, tiny_data, tmp_path / "r", small_encoder, TrainConfig(epochs=1, **FAST), progress=False)
    assert seen == {"make": {(48, 48)}, "eval": {(32, 32)}}  # crops cut from 48-px photos; judged on the 32-px ones
    assert s["config"]["data"]["image_size"] == 32 and s["config"]["task"]["source_size"] == 48
    assert 0.0 <= s["pretext_test"]["acc"] <= 1.0
    with pytest.raises(UserError, match="needs train_size"):
        get_task("rotation", {"source_size": "128"}).config.validate(96)
    with pytest.raises(UserError, match="source_size=64 must be 96..512"):
        get_task("rotation", {"source_size": "64", "train_size": "96"}).config.validate(96)

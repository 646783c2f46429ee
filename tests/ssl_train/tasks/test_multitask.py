"""Multitask: parsing, per-task batches and heads, weighted loss, prefixed metrics, epoch hooks."""
from __future__ import annotations

import pytest
import torch

from ssl_train.encoders import EncoderConfig, build_encoder
from ssl_train.errors import UserError
from ssl_train.tasks import get_task
from ssl_train.tasks.base import EncoderInfo, EpochContext
from ssl_train.tasks.multitask import parse_tasks
from ssl_train.train import embed_images


def test_multitask__parses_weights_and_rejects_bad_specs():
    assert parse_tasks("rotation:1, jigsaw:0.5,context") == [("rotation", 1.0), ("jigsaw", 0.5), ("context", 1.0)]
    for spec, msg in [("", "at least one"), ("rotation:-1", "≥ 0"), ("rotation:abc", "not a number"),
                      ("nope:1", "registered tasks: colorization"), ("multitask:1", "cannot contain"),
                      ("rotation,rotation:2", "twice"), ("rotation:0", "all zero")]:
        with pytest.raises(UserError, match=msg):
            parse_tasks(spec)
    with pytest.raises(UserError, match="not in tasks"):
        get_task("multitask", {"options": '{"context": {"gap": 4}}'})
    with pytest.raises(UserError, match="tile_size"):  # sub-task configs are validated too
        get_task("multitask", {"tasks": "jigsaw", "options": '{"jigsaw": {"tile_size": 99}}'}).config.validate(96)


def test_multitask__loss_is_weighted_sum_and_metrics_prefixed():
    torch.manual_seed(0)
    task = get_task("multitask", {"tasks": "rotation:1,jigsaw:0.5", "options": '{"jigsaw": {"n_permutations": 10}}'})
    assert task.subtasks["jigsaw"].config.n_permutations == 10
    enc = build_encoder(EncoderConfig(widths=(8, 16, 16, 32), blocks=(1, 1, 1, 1)))
    head = task.build_head(EncoderInfo(32, (8, 16, 16, 32), 96, 32))
    assert set(head.keys()) == {"rotation", "jigsaw"} and "jigsaw.permutations" in head.state_dict()
    x = torch.rand(3, 3, 96, 96)
    inputs, targets = task.make_batch(x, torch.Generator().manual_seed(0), torch.arange(3))
    assert inputs["rotation"].shape == (12, 3, 96, 96) and inputs["jigsaw"].shape == (27, 3, 27, 27)
    out = task.forward(enc, head, inputs)
    loss = task.loss(out, targets)
    sub = {n: t.loss(out[n], targets[n]) for n, t in task.subtasks.items()}
    assert torch.allclose(loss, sub["rotation"] + 0.5 * sub["jigsaw"])
    m = task.metrics(out, targets)
    assert set(m) == {"rotation_loss", "rotation_acc", "jigsaw_loss", "jigsaw_acc"}
    # the same generator seed gives the same batch for every sub-task
    again, _ = task.make_batch(x, torch.Generator().manual_seed(0), torch.arange(3))
    assert all(torch.equal(inputs[n], again[n]) for n in inputs)


def test_multitask__epoch_start_reaches_each_subtask_with_its_own_head():
    torch.manual_seed(0)
    task = get_task("multitask", {"tasks": "deepcluster:1,pirl:1", "options": '{"deepcluster": {"k": "3"}, "pirl": {"n_negatives": "4"}}'})
    enc = build_encoder(EncoderConfig(widths=(8, 16, 16, 32), blocks=(1, 1, 1, 1)))
    head = task.build_head(EncoderInfo(32, (8, 16, 16, 32), 64, 32))
    imgs = torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8)
    task.on_epoch_start(EpochContext(0, imgs, lambda u: embed_images(enc, u, channels_last=False), torch.Generator().manual_seed(0), head))
    assert head["pirl"].bank.shape == (8, 128) and head["deepcluster"].labels.shape == (8,)
    inputs, targets = task.make_batch(imgs[:4].float() / 255, torch.Generator().manual_seed(0), torch.arange(4))
    assert torch.isfinite(task.loss(task.forward(enc, head, inputs), targets))
    fresh = task.build_head(EncoderInfo(32, (8, 16, 16, 32), 64, 32))
    fresh.load_state_dict(head.state_dict())  # nested data-sized buffers reload too
    assert torch.equal(fresh["pirl"].bank, head["pirl"].bank)
    assert task.kind == "classification"
    assert get_task("multitask", {"tasks": "inpainting:1,superres:1"}).kind == "reconstruction"

"""Tasks with state in the head (PIRL's bank, DeepCluster's pseudo-labels, colorization's prior):
a killed and resumed run ends with exactly the weights and state of an uninterrupted one."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from ssl_train.tasks import get_task
from ssl_train.train import CHECKPOINT_NAME, TrainConfig, pretrain

OPTIONS = {"pirl": {"n_negatives": "16"}, "deepcluster": {"k": "3"}, "colorization": {}}


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_resume__stateful_task_equals_uninterrupted(name, tiny_data, small_encoder, tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=8, lr=0.02, warmup_epochs=0.5, device="cpu")
    pretrain(get_task(name, OPTIONS[name]), tiny_data, tmp_path / "full", small_encoder, cfg, progress=False)
    pretrain(get_task(name, OPTIONS[name]), tiny_data, tmp_path / "cut", small_encoder, cfg, progress=False, stop_after_epoch=0)
    pretrain(get_task(name, OPTIONS[name]), tiny_data, tmp_path / "cut", small_encoder, cfg, resume=True, progress=False)
    a = load_file(str(tmp_path / "full" / CHECKPOINT_NAME))
    b = load_file(str(tmp_path / "cut" / CHECKPOINT_NAME))
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    state = {"pirl": "head.bank", "deepcluster": "head.labels", "colorization": "head.class_weights"}[name]
    assert a[state].numel() > 0

"""PIRL: memory bank (allocation, EMA on the batch's rows only, checkpoint round trip), NCE, views."""
from __future__ import annotations

import pytest
import torch

from ssl_train.encoders import EncoderConfig, build_encoder
from ssl_train.errors import UserError
from ssl_train.tasks import get_task
from ssl_train.tasks.base import EncoderInfo, EpochContext
from ssl_train.tasks.jigsaw import cut_tiles, reassemble
from ssl_train.tasks.pirl import make_views, nce_loss
from ssl_train.train import embed_images

INFO = EncoderInfo(32, (8, 16, 16, 32), 64, 32)


def _setup(n=12, size=64):
    torch.manual_seed(0)
    enc = build_encoder(EncoderConfig(widths=(8, 16, 16, 32), blocks=(1, 1, 1, 1)))
    task = get_task("pirl", {"n_negatives": "8"})
    head = task.build_head(INFO)
    imgs = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)
    task.on_epoch_start(EpochContext(0, imgs, lambda u: embed_images(enc, u, channels_last=False), torch.Generator().manual_seed(0), head))
    return task, enc, head, imgs


def test_pirl__bank_allocated_at_epoch_start_from_training_set():
    task, enc, head, imgs = _setup()
    assert head.bank.shape == (12, 128)
    assert torch.allclose(head.bank.norm(dim=1), torch.ones(12), atol=1e-5)
    with pytest.raises(UserError, match="memory bank has 12 rows"):
        task.on_epoch_start(EpochContext(1, imgs[:5], lambda u: embed_images(enc, u), torch.Generator(), head))


def test_pirl__bank_changes_only_batch_rows():
    task, enc, head, imgs = _setup()
    idx = torch.tensor([2, 5, 9])
    inputs, targets = task.make_batch(imgs[idx].float() / 255, torch.Generator().manual_seed(1), idx)
    before = head.bank.clone()
    out = task.forward(enc, head, inputs)
    task.loss(out, targets).backward()  # the in-place bank update does not break autograd
    changed = (head.bank != before).any(1)
    assert changed.nonzero().flatten().tolist() == [2, 5, 9]
    assert torch.allclose(head.bank[idx].norm(dim=1), torch.ones(3), atol=1e-5)
    # EMA with momentum 0.5 towards the new f: the new row lies between old memory and f
    assert (head.bank[idx] * before[idx]).sum(1).min() > 0


def test_pirl__bank_not_written_in_eval_mode():
    task, enc, head, imgs = _setup()
    head.eval()
    enc.eval()
    before = head.bank.clone()
    inputs, targets = task.eval_batch(imgs[:4].float() / 255, torch.Generator().manual_seed(0), torch.arange(4))
    assert "index" not in inputs
    out = task.forward(enc, head, inputs)
    assert torch.equal(head.bank, before) and "pos_f" not in out
    assert torch.isfinite(task.loss(out, targets))


def test_pirl__bank_survives_state_dict_round_trip():
    task, enc, head, imgs = _setup()
    fresh = task.build_head(INFO)
    assert fresh.bank.shape == (0, 128)
    fresh.load_state_dict(head.state_dict())  # strict: the lazily sized bank is resized on load
    assert torch.equal(fresh.bank, head.bank)
    task.on_epoch_start(EpochContext(1, imgs, None, torch.Generator(), fresh))  # right size: kept, embed not called
    assert torch.equal(fresh.bank, head.bank)


def test_pirl__nce_prefers_aligned_positive_and_ignores_masked_negatives():
    s_neg = torch.tensor([[0.0, 0.1, 0.9]])
    valid = torch.tensor([[True, True, True]])
    good = nce_loss(torch.tensor([0.95]), s_neg, valid, 0.07)
    bad = nce_loss(torch.tensor([0.0]), s_neg, valid, 0.07)
    assert good < bad
    masked = nce_loss(torch.tensor([0.95]), s_neg, torch.tensor([[True, True, False]]), 0.07)
    assert masked < good  # the hard negative no longer counts
    assert torch.isfinite(nce_loss(torch.tensor([1.0]), torch.full((1, 4), -1.0), torch.ones(1, 4, dtype=torch.bool), 0.01))


def test_pirl__jigsaw_view_is_a_shuffle_of_the_photo_tiles():
    task = get_task("pirl")
    x = torch.rand(3, 3, 96, 96)
    v = make_views(x, task.config, torch.Generator().manual_seed(0), train=False)
    assert torch.equal(v.image, x)
    assert torch.equal(reassemble(v.tiles, v.perm), cut_tiles(x))
    assert sorted(v.perm[0].tolist()) == list(range(9))

"""SimCLR: the two views, the partner pairing, NT-Xent and the retrieval accuracy."""
from __future__ import annotations

import math

import pytest
import torch

from ssl_train.errors import UserError
from ssl_train.tasks import get_task
from ssl_train.tasks.simclr import SimCLRConfig, nt_xent, partner_index, two_views


def test_simclr__partner_of_a_first_view_is_the_same_photos_second_view():
    p = partner_index(6)
    assert p.tolist() == [3, 4, 5, 0, 1, 2]
    assert (p[p] == torch.arange(6)).all()  # pairing is symmetric


def test_simclr__views_are_seeded_independent_and_in_photo_order():
    imgs = torch.rand(4, 3, 32, 32)
    cfg = SimCLRConfig()
    a = two_views(imgs, cfg, torch.Generator().manual_seed(3))
    b = two_views(imgs, cfg, torch.Generator().manual_seed(3))
    assert a.shape == (8, 3, 32, 32) and torch.equal(a, b)
    assert not torch.allclose(a[:4], a[4:])  # the two views of a photo are drawn independently
    # view i and view B + i come from photo i: with colour kept, their mean colours stay close
    plain = SimCLRConfig(crop_scale_min=0.9, color_jitter=0.0, grayscale_p=0.0)
    solid = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9], [0.9, 0.9, 0.1]]).view(4, 3, 1, 1)
    imgs = (solid + 0.05 * torch.rand(4, 3, 32, 32)).clamp(0, 1)
    c = two_views(imgs, plain, torch.Generator().manual_seed(0)).mean(dim=(2, 3))
    own = (c[:4] - c[4:]).abs().sum(1)
    other = (c[:4] - c[4:].roll(1, 0)).abs().sum(1)
    assert (own < other).all()


def test_nt_xent__near_zero_when_partners_coincide_and_log_n_when_all_alike():
    b = 8
    z = torch.eye(b).repeat(2, 1) * 10  # each photo its own direction, both views identical
    assert nt_xent(z, 0.1).item() < 1e-3
    flat = torch.ones(2 * b, 4)  # every view the same: the partner is one of 2B-1 equal candidates
    assert nt_xent(flat, 0.5).item() == pytest.approx(math.log(2 * b - 1), rel=1e-5)


def test_nt_xent__shards_against_the_gathered_views_give_the_whole_batchs_loss_and_gradients():
    # what torchrun's ranks compute: each its own 2b views as rows, every rank's views as candidates
    torch.manual_seed(0)
    b, d = 3, 5
    shards = [torch.randn(2 * b, d, requires_grad=True) for _ in range(2)]
    gathered = torch.cat(shards)
    per_rank = torch.stack([nt_xent(z, 0.2, gathered, offset=r * 2 * b) for r, z in enumerate(shards)]).mean()
    # one process with the same 2·b photos: [first views of all photos, second views of all photos]
    whole = torch.cat([shards[0][:b], shards[1][:b], shards[0][b:], shards[1][b:]])
    single = nt_xent(whole, 0.2)
    assert per_rank.item() == pytest.approx(single.item(), rel=1e-6)
    g_ranks = torch.autograd.grad(per_rank, shards)
    g_single = torch.autograd.grad(single, shards)
    for a, c in zip(g_ranks, g_single):
        assert torch.allclose(a, c, atol=1e-6)
    # local negatives alone (the old behaviour) is another loss: fewer candidates per view
    local = torch.stack([nt_xent(z, 0.2) for z in shards]).mean()
    assert abs(local.item() - single.item()) > 1e-3


def test_simclr__acc_counts_views_whose_nearest_other_view_is_their_partner():
    task = get_task("simclr")
    z = torch.eye(4).repeat(2, 1)
    assert task.metrics({"projection": z}, None)["acc"] == 1.0
    swapped = torch.cat([torch.eye(4), torch.eye(4)[[1, 0, 3, 2]]])  # each second view looks like another photo
    assert task.metrics({"projection": swapped}, None)["acc"] == 0.0


def test_simclr__bad_options_are_refused_before_training():
    with pytest.raises(UserError, match="temperature"):
        get_task("simclr", {"temperature": "0"}).config.validate(96)
    with pytest.raises(UserError, match="crop_scale_min"):
        get_task("simclr", {"crop_scale_min": "1.5"}).config.validate(96)

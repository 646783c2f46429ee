"""Colorization: Lab round trip, quantisation, rebalancing, encoder input, pictures."""
from __future__ import annotations

import torch

from ssl_train.tasks import get_task
from ssl_train.tasks.base import EncoderInfo, EpochContext, normalize
from ssl_train.tasks.colorization import (
    ab_bins,
    colorize,
    decode_ab,
    encode_ab,
    l_ab_to_rgb,
    l_to_input,
    rebalancing_weights,
    rgb_to_l_ab,
)


def test_colorization__lab_round_trip_within_1_255():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g)
    x[0] = 0.0  # black, white and pure primaries: the gamut's corners
    x[1] = 1.0
    x[2, :, :8] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    L, ab = rgb_to_l_ab(x)
    assert L.shape == (4, 1, 16, 16) and ab.shape == (4, 2, 16, 16)
    assert 0 <= L.min() and L.max() <= 100
    assert (l_ab_to_rgb(L, ab) - x).abs().max() <= 1 / 255


def test_colorization__encoder_sees_only_lightness():
    x = torch.rand(2, 3, 16, 16)
    L, _ = rgb_to_l_ab(x)
    inp = l_to_input(L)
    assert torch.allclose(inp, normalize((L / 100).expand(-1, 3, -1, -1)))
    # two photos with the same L and different colours give the same encoder input
    task = get_task("colorization", {"crop_scale_min": "1"})
    a, _ = task.make_batch(x, torch.Generator().manual_seed(0), torch.arange(2))
    grey = l_ab_to_rgb(L, torch.zeros_like(L).expand(-1, 2, -1, -1))
    b, _ = task.make_batch(grey, torch.Generator().manual_seed(0), torch.arange(2))
    assert torch.allclose(a, b, atol=2e-3)


def test_colorization__soft_encoding_and_annealed_mean_recover_colour():
    bins = ab_bins()
    assert 200 < len(bins) < 330 and bins.abs().max() <= 110
    ab = torch.tensor([[35.0, -20.0], [0.0, 0.0], [-60.0, 70.0]]).T.reshape(1, 2, 3, 1)
    idx, w = encode_ab(ab)
    assert idx.shape == (1, 5, 3, 1) and torch.allclose(w.sum(1), torch.ones(1, 3, 1))
    assert torch.allclose(bins[idx[0, 0, :, 0]], torch.tensor([[40.0, -20.0], [0.0, 0.0], [-60.0, 70.0]]))
    # logits = log of the soft target → the mean (T=1) is the target ab up to quantisation
    logits = torch.full((1, len(bins), 3, 1), -30.0)
    logits.scatter_(1, idx, w.clamp_min(1e-12).log())
    assert (decode_ab(logits, bins, 1.0) - ab).abs().max() < 5.0


def test_colorization__rebalancing_favours_rare_bins():
    counts = torch.zeros(len(ab_bins()))
    counts[0], counts[100] = 1000, 1
    prior, w = rebalancing_weights(counts)
    assert torch.allclose((prior * w).sum(), torch.tensor(1.0))
    assert w[100] > w[0]
    task = get_task("colorization")
    head = task.build_head(EncoderInfo(32, (8, 16, 16, 32), 32, 32))
    assert not bool(head.prior_ready) and torch.equal(head.class_weights, torch.ones(len(ab_bins())))
    imgs = torch.zeros(3, 3, 32, 32, dtype=torch.uint8)
    imgs[:, 1] = 200  # all green: green bins common, everything else rare
    task.on_epoch_start(EpochContext(0, imgs, None, torch.Generator(), head))
    assert bool(head.prior_ready) and head.class_weights.max() > 1 > head.class_weights.min()
    before = head.class_weights.clone()
    task.on_epoch_start(EpochContext(1, 255 - imgs, None, torch.Generator(), head))  # computed once per run
    assert torch.equal(head.class_weights, before)


def test_colorization__colorize_gives_a_picture():
    g = torch.Generator().manual_seed(0)  # smooth colours with sharp lightness detail
    x = torch.nn.functional.interpolate(torch.rand(2, 3, 4, 4, generator=g), size=32, mode="bilinear")
    x = (x * (0.7 + 0.3 * torch.rand(2, 1, 32, 32, generator=g))).clamp(0, 1)
    L, ab = rgb_to_l_ab(x)
    pic = colorize(L, torch.nn.functional.adaptive_avg_pool2d(ab, 8))
    assert pic.shape == (2, 3, 32, 32) and 0 <= pic.min() and pic.max() <= 1
    assert (pic - x).abs().mean() < 0.03  # low-resolution colour on full-resolution L looks like the photo

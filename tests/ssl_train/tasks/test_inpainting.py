"""Inpainting: hole geometry, mean fill, composition, loss restricted to the hole."""
from __future__ import annotations

import pytest
import torch

from ssl_train.errors import UserError
from ssl_train.tasks import get_task
from ssl_train.tasks.inpainting import box_mask, fill_hole, hole_positions, mask_image


def test_inpainting__hole_filled_with_mean_is_zero_after_normalize():
    task = get_task("inpainting", {"mask_mode": "center", "crop_scale_min": "1"})
    x = torch.rand(2, 3, 32, 32)
    inputs, t = task.make_batch(x, torch.Generator().manual_seed(0), torch.arange(2))
    m = t["mask"]
    assert m.shape == (2, 1, 32, 32) and m.sum().item() == 2 * 16 * 16
    assert torch.equal(m[0, 0, 8:24, 8:24], torch.ones(16, 16))  # centred 16-px hole
    assert inputs[m.expand_as(inputs) > 0].abs().max() < 1e-6
    assert torch.equal(t["image"], x)


def test_inpainting__random_holes_inside_image_and_seeded():
    g = torch.Generator().manual_seed(0)
    pos = hole_positions(200, 32, 10, "random", g, "cpu")
    assert pos.min() >= 0 and pos.max() <= 22 and len({tuple(p) for p in pos.tolist()}) > 50
    assert torch.equal(pos, hole_positions(200, 32, 10, "random", torch.Generator().manual_seed(0), "cpu"))
    m = box_mask(pos, 10, 32)
    assert torch.equal(m.sum((1, 2, 3)), torch.full((200,), 100.0))


def test_inpainting__fill_hole_composes_prediction_inside_only():
    x, pred = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    m = box_mask(torch.tensor([[2, 3]]), 4, 8)
    out = fill_hole(x, pred, m)
    assert out.sum().item() == 3 * 16 and torch.equal(out[0, :, 2:6, 3:7], torch.ones(3, 4, 4))
    assert torch.equal(mask_image(x, m, (0.5, 0.5, 0.5))[0, :, 2:6, 3:7], torch.full((3, 4, 4), 0.5))


def test_inpainting__loss_weights_hole_over_context():
    task = get_task("inpainting", {"context_weight": "0"})
    img = torch.zeros(1, 3, 8, 8)
    m = box_mask(torch.tensor([[0, 0]]), 4, 8)
    wrong_outside = torch.ones(1, 3, 8, 8) * (1 - m)
    assert task.loss(wrong_outside, {"image": img, "mask": m}).item() == 0.0
    assert task.loss(torch.ones(1, 3, 8, 8) * m, {"image": img, "mask": m}).item() == pytest.approx(1.0)


def test_inpainting__impossible_hole_fails_early():
    with pytest.raises(UserError, match="hole_fraction"):
        get_task("inpainting", {"hole_fraction": "1.0"}).config.validate(96)
    with pytest.raises(UserError, match="mask_mode"):
        get_task("inpainting", {"mask_mode": "ring"}).config.validate(96)

"""The rotation task: exact targets, all four rotations in one batch."""
from __future__ import annotations

import torch

from ssl_train.tasks import get_task
from ssl_train.tasks.rotation import all_rotations, rotate, upright


def test_rotation__targets_exact_and_all_four_in_batch():
    x = torch.rand(5, 3, 16, 16)
    inputs, targets = all_rotations(x)
    assert inputs.shape == (20, 3, 16, 16)
    assert torch.equal(targets, torch.arange(4).repeat_interleave(5))
    for k in range(4):
        for i in range(5):
            assert torch.equal(inputs[k * 5 + i], torch.rot90(x[i], k, dims=(-2, -1)))  # exact: no interpolation
    # 90° counter-clockwise: the top row becomes the left column, read bottom-up
    assert torch.equal(inputs[5][:, :, 0].flip(-1), x[0][:, 0, :])


def test_rotation__upright_undoes_any_rotation():
    x = torch.rand(8, 3, 12, 12)
    k = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    turned = rotate(x, k)
    assert torch.equal(upright(turned, k), x)
    assert torch.equal(rotate(x, 1), torch.rot90(x, 1, dims=(-2, -1)))


def test_rotation_task__make_batch_keeps_each_photo_in_four_rotations():
    task = get_task("rotation", {"color_jitter": "0", "crop_scale_min": "1.0"})
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32)
    inputs, targets = task.make_batch(x, g, torch.arange(4))
    assert inputs.shape == (16, 3, 32, 32) and targets.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    # the 90° copy of photo i is the exact rotation of its 0° copy (same crop, same flip)
    for i in range(4):
        assert torch.allclose(inputs[4 + i], torch.rot90(inputs[i], 1, dims=(-2, -1)))

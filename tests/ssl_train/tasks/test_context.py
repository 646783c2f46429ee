"""Context prediction: the 8 positions, exact pairs, all-positions evaluation, validation."""
from __future__ import annotations

import pytest
import torch

from ssl_train.errors import UserError
from ssl_train.tasks import get_task
from ssl_train.tasks.context import NEIGHBOUR_CELLS, cut_pair, make_views, neighbour_offsets, patch_boxes


def test_context__neighbour_positions():
    off = neighbour_offsets()
    assert off.tolist() == [[-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 1], [1, -1], [1, 0], [1, 1]]
    assert 4 not in NEIGHBOUR_CELLS and len(set(map(tuple, off.tolist()))) == 8
    boxes = patch_boxes(96)  # centred patches: 27 px at offset 2 in 32-px cells
    assert boxes.shape == (9, 4) and boxes[4].tolist() == [34, 34, 61, 61]
    for label, (dy, dx) in enumerate(off.tolist()):
        b = boxes[NEIGHBOUR_CELLS[label]]
        assert (b[0] - boxes[4, 0]).item() == 32 * dy and (b[1] - boxes[4, 1]).item() == 32 * dx


def test_context__pair_is_centre_and_labelled_neighbour():
    x = torch.rand(8, 3, 96, 96)
    label = torch.arange(8)
    pairs = cut_pair(x, label)
    boxes = patch_boxes(96)
    assert pairs.shape == (8, 2, 3, 27, 27)
    for i in range(8):
        t, l, b, r = boxes[4].tolist()
        assert torch.equal(pairs[i, 0], x[i, :, t:b, l:r])
        t, l, b, r = boxes[NEIGHBOUR_CELLS[i]].tolist()
        assert torch.equal(pairs[i, 1], x[i, :, t:b, l:r])


def test_context__eval_batch_covers_all_eight_positions():
    task = get_task("context")
    x = torch.rand(3, 3, 96, 96)
    inputs, targets = task.eval_batch(x, torch.Generator().manual_seed(0), torch.arange(3))
    assert inputs.shape == (48, 3, 27, 27) and targets.tolist() == list(range(8)) * 3
    v = make_views(x, task.config, torch.Generator().manual_seed(0), train=True)
    assert v.pairs.shape == (3, 2, 3, 27, 27) and v.label.min() >= 0 and v.label.max() <= 7
    assert v.offsets.min() >= 1 and v.offsets.max() <= 4  # jitter stays inside the gap-keeping range


def test_context__impossible_grid_fails_early():
    with pytest.raises(UserError, match="too small"):
        get_task("context").config.validate(20)
    with pytest.raises(UserError, match="tile_size"):
        get_task("context", {"tile_size": "31"}).config.validate(96)

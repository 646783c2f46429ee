"""Jigsaw: permutation set, exact tiles, inverse shuffle, gap and validation."""
from __future__ import annotations

import pytest
import torch

from ssl_train.errors import UserError
from ssl_train.tasks import get_task
from ssl_train.tasks.base import EncoderInfo
from ssl_train.tasks.jigsaw import (
    apply_permutation,
    cut_tiles,
    hamming_permutations,
    make_views,
    min_hamming_distance,
    random_offsets,
    reassemble,
    standardize_tiles,
    tile_geometry,
    tiles_to_grid,
)


def test_jigsaw__permutation_set_has_min_hamming_distance():
    p = hamming_permutations(100, 0)
    assert p.shape == (100, 9) and p.dtype == torch.int64
    assert all(sorted(row.tolist()) == list(range(9)) for row in p)  # each row is a permutation
    assert len({tuple(r.tolist()) for r in p}) == 100
    # greedy max-min selection: far better than 100 random permutations (whose minimum is ~2-3)
    assert min_hamming_distance(p) >= 6
    g = torch.Generator().manual_seed(0)
    rand = torch.stack([torch.randperm(9, generator=g) for _ in range(100)])
    assert min_hamming_distance(rand) < min_hamming_distance(p)


def test_jigsaw__permutation_set_deterministic_and_seeded():
    assert torch.equal(hamming_permutations(30, 7), hamming_permutations(30, 7))
    assert not torch.equal(hamming_permutations(30, 7), hamming_permutations(30, 8))
    assert hamming_permutations(2, 0).shape == (2, 9)


def test_jigsaw__permutation_set_saved_in_head():
    task = get_task("jigsaw", {"n_permutations": "20", "permutation_seed": "3"})
    head = task.build_head(EncoderInfo(32, (8, 16, 16, 32), 96, 32))
    assert "permutations" in head.state_dict()
    assert torch.equal(head.state_dict()["permutations"], hamming_permutations(20, 3))
    assert head(torch.randn(2 * 9, 32, 1, 1)).shape == (2, 20)


def test_jigsaw__reassemble_inverts_shuffle():
    tiles = torch.rand(5, 9, 3, 4, 4)
    g = torch.Generator().manual_seed(0)
    perm = torch.stack([torch.randperm(9, generator=g) for _ in range(5)])
    shuffled = apply_permutation(tiles, perm)
    for b in range(5):
        for j in range(9):  # position j shows tile perm[j]
            assert torch.equal(shuffled[b, j], tiles[b, perm[b, j]])
    assert torch.equal(reassemble(shuffled, perm), tiles)
    one = torch.tensor([8, 7, 6, 5, 4, 3, 2, 1, 0])  # one permutation for the whole batch
    assert torch.equal(reassemble(apply_permutation(tiles, one), one), tiles)


def test_jigsaw__tiles_are_exact_crops_with_gap():
    x = torch.rand(3, 3, 96, 96)
    geom = tile_geometry(96)
    assert (geom.cell, geom.tile) == (32, 27) and 2 * geom.lo >= 2
    g = torch.Generator().manual_seed(1)
    off = random_offsets(3, geom, g, "cpu")
    tiles = cut_tiles(x, 0, 2, off)
    assert tiles.shape == (3, 9, 3, 27, 27)
    for b in range(3):
        for k in range(9):
            r, c = divmod(k, 3)
            y0, x0 = r * 32 + int(off[b, k, 0]), c * 32 + int(off[b, k, 1])
            assert torch.equal(tiles[b, k], x[b, :, y0 : y0 + 27, x0 : x0 + 27])
            assert geom.lo <= off[b, k].min() and off[b, k].max() <= geom.hi
    # horizontal neighbours never touch: right edge of tile k + gap ≤ left edge of tile k+1
    left = off[..., 1] + torch.tensor([0, 32, 64] * 3)
    assert ((left[:, [1, 2, 4, 5, 7, 8]] - (left[:, [0, 1, 3, 4, 6, 7]] + 27)) >= 2).all()


def test_jigsaw__inputs_standardised_per_tile_and_targets_match_views():
    task = get_task("jigsaw", {"n_permutations": "10"})
    x = torch.rand(4, 3, 96, 96)
    inputs, targets = task.make_batch(x, torch.Generator().manual_seed(0), torch.arange(4))
    assert inputs.shape == (36, 3, 27, 27) and targets.shape == (4,)
    m = inputs.mean(dim=(-2, -1))
    assert m.abs().max() < 1e-4  # each tile and channel has zero mean
    v = make_views(x, task.config, torch.Generator().manual_seed(0), task.permutations())
    assert torch.equal(v.target, targets)
    assert torch.allclose(standardize_tiles(v.tiles).reshape(36, 3, 27, 27), inputs)
    assert torch.equal(v.perm, task.permutations()[targets])
    grid = tiles_to_grid(reassemble(v.tiles, v.perm))
    assert grid.shape == (4, 3, 85, 85)


def test_task_config__impossible_grid_fails_early():
    with pytest.raises(UserError, match="too small"):
        get_task("jigsaw").config.validate(24)
    with pytest.raises(UserError, match="tile_size"):
        get_task("jigsaw", {"tile_size": "40"}).config.validate(96)
    with pytest.raises(UserError, match="n_permutations"):
        get_task("jigsaw", {"n_permutations": "1"}).config.validate(96)
    with pytest.raises(UserError, match="n_permutations"):
        get_task("jigsaw", {"n_permutations": "362881"}).config.validate(96)
    get_task("jigsaw").config.validate(96)
    get_task("jigsaw").config.validate(32)  # 10-px cells still hold 8-px tiles

"""The rotation task: exact targets, all four rotations in one batch."""
from __future__ import annotations

import torch

from ssl_train.tasks import get_task
from ssl_train.tasks.rotation import MIRROR_TURN, all_rotations, four_view_turn_scores, mirror, rotate, turns_with_mirror_scores, upright, with_mirror_scores


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


def test_four_view_scores__three_right_views_outvote_one_confident_wrong_one():
    # the photo is upright (u = 0): views 1-3 lean towards their true turn, view 0 is sure it is 180°
    p = torch.full((1, 4, 4), 0.1)
    for k in (1, 2, 3):
        p[0, k, k] = 0.7
    p[0, 0] = torch.tensor([0.01, 0.01, 0.97, 0.01])
    assert p[0, 0].argmax().item() == 2  # one view alone is wrong
    assert four_view_turn_scores(p.log()).argmax(1).item() == 0


def _random_rotation_model(seed: int):
    """(task, encoder, head): a small randomly initialised rotation model at 32 px, eval mode."""
    from ssl_train.encoders import EncoderConfig, build_encoder
    from ssl_train.tasks.base import EncoderInfo

    torch.manual_seed(seed)
    task = get_task("rotation")
    enc = build_encoder(EncoderConfig(widths=(8, 16, 16, 32), blocks=(1, 1, 1, 1))).eval()
    head = task.build_head(EncoderInfo(feature_dim=32, stage_dims=(8, 16, 16, 32), image_size=32, stride=32)).eval()
    return task, enc, head


def test_four_view_scores__turning_the_input_shifts_the_estimate_by_the_same_turn():
    # a real (random) encoder + head: the four views of a turned photo are the same four images,
    # so the judgement must move with the turn exactly
    task, enc, head = _random_rotation_model(seed=0)
    photos = torch.rand(6, 3, 32, 32)

    def estimate(x: torch.Tensor) -> torch.Tensor:
        views, _ = all_rotations(x)
        with torch.no_grad():
            lp = task.forward(enc, head, views).log_softmax(1)
        return four_view_turn_scores(lp.view(4, len(x), 4).transpose(0, 1)).argmax(1)

    base = estimate(photos)
    for u in (1, 2, 3):
        assert torch.equal(estimate(rotate(photos, u)), (base + u) % 4)


def test_mirror__of_a_photo_turned_k_is_the_mirror_image_turned_minus_k():
    x = torch.rand(3, 3, 10, 10)
    for k in range(4):
        assert torch.equal(mirror(rotate(x, k)), rotate(mirror(x), MIRROR_TURN[k]))
        assert MIRROR_TURN[k] == (-k) % 4


def test_with_mirror_scores__a_sure_mirror_look_corrects_an_unsure_wrong_view():
    # the view is turned 90°: alone the model leans to 270°, its mirror image (turned 270°) is sure of 270°
    view = torch.tensor([0.1, 0.4, 0.1, 0.4001]).log()
    mirrored = torch.tensor([0.05, 0.05, 0.05, 0.85]).log()
    assert view.argmax().item() == 3
    assert with_mirror_scores(view, mirrored).argmax().item() == 1


def test_with_mirror_scores__a_mirror_symmetric_model_answer_is_unchanged_and_shapes_broadcast():
    # a real (random) encoder + head on real mirror pairs: the joint estimate of a view and of its
    # mirror image agree up to the mirror of the turn (the pair is the same two images)
    task, enc, head = _random_rotation_model(seed=1)
    views = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        lp, lpm = (task.forward(enc, head, v).log_softmax(1) for v in (views, mirror(views)))
    a, b = with_mirror_scores(lp, lpm), with_mirror_scores(lpm, lp)
    assert a.shape == (5, 4)
    assert torch.allclose(b, a[:, list(MIRROR_TURN)])


def test_turns_with_mirror_scores__row_k_pairs_the_turned_photo_with_its_own_mirror_image():
    task, enc, head = _random_rotation_model(seed=2)
    photos = torch.rand(3, 3, 32, 32)

    def lp(x: torch.Tensor) -> torch.Tensor:  # (B, 4 turns, 4) in the order of all_rotations
        with torch.no_grad():
            return task.forward(enc, head, all_rotations(x)[0]).log_softmax(1).view(4, len(x), 4).transpose(0, 1)

    joint = turns_with_mirror_scores(lp(photos), lp(mirror(photos)))
    for k in range(4):
        view = rotate(photos, k)
        with torch.no_grad():
            one, its_mirror = (task.forward(enc, head, v).log_softmax(1) for v in (view, mirror(view)))
        assert torch.allclose(joint[:, k], with_mirror_scores(one, its_mirror), atol=1e-5)


def test_grid_head__cells_equal_adaptive_pooling_and_one_cell_is_global_pooling():
    import torch.nn.functional as F

    from ssl_train.encoders import pooled
    from ssl_train.tasks.rotation import grid_pooled

    for h, g in ((3, 2), (3, 3), (4, 2), (5, 3)):  # uneven maps overlap their cells as adaptive pooling does
        x = torch.randn(2, 5, h, h)
        want = F.adaptive_avg_pool2d(x, g).permute(0, 2, 3, 1).reshape(2, -1)  # cell-major, channels inside
        assert torch.allclose(grid_pooled(x, g), want, atol=1e-6)
    x = torch.randn(2, 5, 3, 3)
    assert torch.equal(grid_pooled(x, 1), pooled(x))


def test_grid_head__tells_top_from_bottom_where_global_pooling_cannot():
    # the same features in the top or the bottom half: a pooled head sees one vector, a 2×2 grid two
    from ssl_train.tasks.base import EncoderInfo

    top, bottom = torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 4, 4)
    top[..., :2, :], bottom[..., 2:, :] = 1.0, 1.0
    info = EncoderInfo(feature_dim=4, stage_dims=(4, 4, 4, 4), image_size=32, stride=8)
    torch.manual_seed(0)
    flat = get_task("rotation").build_head(info).eval()
    grid = get_task("rotation", {"grid": "2"}).build_head(info).eval()
    assert torch.equal(flat(top), flat(bottom))
    assert not torch.allclose(grid(top), grid(bottom))
    assert grid(top).shape == (1, 4)


def test_rotation_config__impossible_grid_or_hidden_fails_early():
    import pytest

    from ssl_train.errors import UserError

    for opts, msg in (({"grid": "0"}, "grid=0 must be 1..4"), ({"grid": "5"}, "grid=5"), ({"hidden": "-1"}, "hidden=-1")):
        with pytest.raises(UserError, match=msg):
            get_task("rotation", opts).config.validate(96)


def test_rotation_task__train_size_shrinks_training_crops_but_not_test_views():
    import pytest

    from ssl_train.errors import UserError

    task = get_task("rotation", {"train_size": "24", "color_jitter": "0"})
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 32, 32)
    inputs, targets = task.make_batch(x, g, torch.arange(3))
    assert inputs.shape == (12, 3, 24, 24) and targets.shape == (12,)
    for i in range(3):  # still exact turns of one crop
        assert torch.allclose(inputs[3 + i], torch.rot90(inputs[i], 1, dims=(-2, -1)))
    test_inputs, _ = task.eval_batch(x, g, torch.arange(3))
    assert test_inputs.shape == (12, 3, 32, 32)  # judged on the whole photo at its own size
    assert get_task("rotation").make_batch(x, g, torch.arange(3))[0].shape == (12, 3, 32, 32)  # 0: the image size
    with pytest.raises(UserError, match="train_size=8 must be 16..192"):
        get_task("rotation", {"train_size": "8"}).config.validate(96)

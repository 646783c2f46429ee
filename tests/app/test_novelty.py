"""app.novelty: a photo unlike the training photos is flagged; ~1 % of held-out photos are, by design."""
from __future__ import annotations

import numpy as np
import pytest

from app import novelty

from ..conftest import REPO


def _clusters(n: int, seed: int) -> np.ndarray:
    """Features of ``n`` photos around the same 5 class directions in 32-D (post-ReLU-like: positive);
    ``seed`` draws which photos."""
    centres = np.abs(np.random.default_rng(1234).normal(size=(5, 32))) * 3
    rng = np.random.default_rng(seed)
    return np.abs(centres[rng.integers(0, 5, n)] + rng.normal(scale=0.5, size=(n, 32))).astype(np.float32)


def test_novelty__about_one_percent_of_new_photos_from_the_same_set_are_flagged():
    train, test, more = _clusters(2000, 0), _clusters(1000, 1), _clusters(4000, 2)
    check = novelty.NoveltyCheck.fit(train, test)
    assert check.unlike(test).mean() == pytest.approx(0.01, abs=0.003)  # the threshold's own photos
    assert check.unlike(more).mean() == pytest.approx(0.01, abs=0.006)  # photos it never saw, same kind


def test_novelty__a_photo_in_another_direction_is_flagged_and_a_training_photo_is_not():
    train, test = _clusters(1000, 0), _clusters(1000, 1)
    check = novelty.NoveltyCheck.fit(train, test)
    odd = np.zeros((1, 32), np.float32)
    odd[0, :4] = 50.0  # a direction no class takes
    assert check.unlike(odd)[0] and not check.unlike(train[:5]).any()
    d, j = check.nearest(train[:3])
    assert np.allclose(d, 0, atol=1e-5) and list(j) == [0, 1, 2]


def test_novelty__zero_features_and_empty_inputs_give_numbers_not_nan():
    check = novelty.NoveltyCheck.fit(_clusters(100, 0), _clusters(100, 1))
    zero = np.tile(check.centre, (2, 1))  # centred: all zero, no direction
    assert np.allclose(check.distances(zero), 1.0)
    assert check.distances(np.zeros((0, 32), np.float32)).shape == (0,)
    with pytest.raises(ValueError):
        novelty.NoveltyCheck.fit(_clusters(10, 0), np.zeros((0, 32), np.float32))


def test_pixel_spread__flat_colours_are_zero_real_photos_are_not():
    flat = np.stack([np.zeros((3, 8, 8), np.uint8), np.broadcast_to(np.array([90, 120, 40], np.uint8)[:, None, None], (3, 8, 8))])
    assert list(novelty.pixel_spread(flat)) == [0.0, 0.0]
    from app.uploads import open_upload
    from ssl_train.images import square_resize, to_uint8_chw

    from .conftest import photo_bytes

    real = to_uint8_chw(square_resize(open_upload(*photo_bytes("daisy")).image, 32))[None]
    assert novelty.pixel_spread(real)[0] > 10 * novelty.FLAT_SPREAD


SHIPPED = REPO / "models" / "simclr"


@pytest.mark.skipif(not (SHIPPED / "app_precomputed.npz").is_file(), reason="the shipped SimCLR model and its layout are not in this checkout")
def test_novelty__shipped_simclr_flags_about_one_percent_of_test_flowers_and_a_black_photo(monkeypatch):
    """Real inputs, real model. Records what the check can and cannot do: china.jpg is NOT flagged by
    SimCLR's features (it is nearer a training photo than ~40 % of test flowers); see app.novelty."""
    monkeypatch.setenv("PRETEXT_LAB_MODELS", str(REPO / "models"))
    monkeypatch.setenv("PRETEXT_LAB_DATA", str(REPO / "data" / "flowers"))
    r = novelty.measure("simclr")
    assert r["test_photos"] > 500 and r["test_flagged"] / r["test_photos"] == pytest.approx(0.01, abs=0.005)
    flagged_half, n_half = (int(x) for x in r["held_out_half_flagged"].split(" (")[0].split(" of "))
    assert flagged_half / n_half <= 0.03  # out of sample: no more than a few percent of real flowers
    s = r["samples"]
    assert s["black 200×200"]["flagged"] and s["black 200×200"]["flat"]
    assert s["100000×1 stripe"]["flagged"]
    china = s["china.jpg (scikit-learn: a pagoda)"]
    assert not china["unlike"] and china["test_flowers_further"] > 0.2  # the measured limit, kept honest by this test


def test_novelty__a_new_photo_is_put_on_the_stored_features_grid_before_comparing():
    from app import embedding

    train, test = _clusters(500, 0), _clusters(300, 1)
    stored, lo, scale = embedding.quantised(np.concatenate([train, test]))  # what a layout file holds
    check = novelty.NoveltyCheck.fit(stored[:500], stored[500:], grid=(lo, scale))
    new = _clusters(4, 2)
    snapped = embedding.dequantise(*embedding.quantise(new, lo, scale))
    assert not np.allclose(new, snapped)  # the grid is coarse: comparing raw features would differ
    assert np.allclose(check.distances(new), novelty.NoveltyCheck.fit(stored[:500], stored[500:]).distances(snapped))
    d, j = check.nearest(stored[:3])  # a stored photo is its own nearest
    assert np.allclose(d, 0, atol=1e-5) and list(j) == [0, 1, 2]
    from types import SimpleNamespace

    lay = SimpleNamespace(features=stored, train_idx=np.arange(500), test_idx=np.arange(500, 800), features_min=lo, features_scale=scale)
    from_layout = novelty.NoveltyCheck.from_layout(lay)  # what the app builds from a layout file
    assert from_layout.threshold == check.threshold and np.allclose(from_layout.distances(new), check.distances(new))


def test_novelty_study__mahalanobis_scores_a_point_between_the_classes_above_their_members():
    from app.novelty_study import mahalanobis, share_at_least

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 8)), rng.normal(size=(200, 8)) + 10.0
    score = mahalanobis(np.concatenate([a, b]), np.repeat([0, 1], 200))
    members, middle = score(np.concatenate([a[:20], b[:20]])), score(np.full((1, 8), 5.0))
    assert middle[0] > members.max()
    assert share_at_least(members, middle) == [0.0] and share_at_least(members, [members.min()]) == [1.0]


def test_novelty_study__report_counts_flagged_non_flowers_per_score_and_the_flower_apart():
    from app.novelty_study import FLOWER, markdown

    r = {"photos": ["a", FLOWER, "b"], "flower": FLOWER, "test_photos": 696, "flag_below": 0.01, "command": "python -m app.novelty_study",
         "seconds": 1.0, "rows": [{"model": "simclr", "score": "nearest training photo", "shares": [0.005, 0.5, 0.3]},
                                  {"model": "pirl", "score": "Mahalanobis", "shares": [0.2, 0.002, 0.001]}]}
    md = markdown(r)
    assert "| simclr | nearest training photo | 1 | 0.15 | 0.50 |" in md  # a flagged, b not; the flower apart
    assert "| pirl | Mahalanobis | 1 | 0.10 | **0.002 (flagged)** |" in md
    assert "| b | 0.30 | 0.001 | pirl, Mahalanobis |" in md


def test_novelty_study__a_missing_extra_photo_is_one_line_and_exit_2_before_any_work(tmp_path, capsys):
    from app.novelty_study import main

    with pytest.raises(SystemExit) as e:
        main(["--extra", str(tmp_path / "nope.png"), "--out", str(tmp_path)])
    assert e.value.code == 2 and "no such file" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())

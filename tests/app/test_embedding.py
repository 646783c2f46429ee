"""app.embedding / app.precompute: layouts are computed once, stored small, and never used stale."""
from __future__ import annotations

import json

import numpy as np
import pytest

from app import embedding, photos
from app.inference import OnnxModel, list_models
from app.precompute import main as precompute

from .conftest import photo_bytes


@pytest.fixture
def built(models, app_env):
    m = OnnxModel(models / "rotation")
    return m, embedding.build(m, app_env["data"])


def test_build__features_of_every_photo_map_of_test_split_and_knn(built, app_env):
    m, lay = built
    idx = photos.index(app_env["data"])
    assert len(lay.files) == len(idx.files) and lay.features.shape == (len(idx.files), m.card["feature_dim"])
    assert np.array_equal(lay.map_idx, np.nonzero(lay.is_test)[0]) and lay.xy.shape == (len(lay.map_idx), 2)
    assert 0.0 <= lay.knn_accuracy <= 1.0 and lay.classes == list(idx.classes)


def test_save_load__round_trip_and_stale_files_are_ignored(built, tmp_path):
    _, lay = built
    p = embedding.save(lay, tmp_path / "x.npz")
    got = embedding.load(p, lay.model_key, lay.data_key)
    assert got is not None and np.allclose(got.features, lay.features) and np.array_equal(got.xy, lay.xy)
    assert embedding.load(p, "0" * 64, lay.data_key) is None  # re-exported model (any file changed)
    assert embedding.load(p, lay.model_key, "1" * 64) is None  # another split
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    assert embedding.load(tmp_path / "bad.npz", lay.model_key, lay.data_key) is None


def test_place__an_upload_equal_to_a_map_photo_lands_on_it(built):
    _, lay = built
    f = lay.map_features[[2]]
    order, sims = embedding.neighbours(lay, f)
    assert order[0, 0] == 2 and sims[0, 0] == pytest.approx(1.0, abs=1e-5)
    xy = embedding.place(lay, f, k=1)
    assert np.allclose(xy[0], lay.xy[2], atol=1e-4)
    votes, share = embedding.knn_vote(lay, f)
    assert share.shape == (1, len(lay.classes)) and share.sum() == pytest.approx(1.0)


def test_umap__same_features_give_the_same_map_and_transform_places_new_points():
    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(c, 0.3, (15, 8)) for c in (0.0, 3.0)]).astype(np.float32)
    a, method = embedding.layout_xy(feats)
    b = embedding.fit_umap(feats)
    assert method == "umap" and np.allclose(a, b.embedding_)
    assert b.transform(feats[:2]).shape == (2, 2)
    xy, method = embedding.layout_xy(feats[:5])
    assert method.startswith("pca") and xy.shape == (5, 2)


def test_precompute__writes_beside_model_json_and_app_finds_it(models, app_env, capsys):
    assert precompute(["--models", str(models), "--data", str(app_env["data"])]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert {r["model"] for r in lines} == {"rotation", "random_init"}
    idx = photos.index(app_env["data"])
    for e in list_models(models):
        assert (e.path / "app_precomputed.npz").is_file()
        assert embedding.find(e.path, e.card, idx.key) is not None


def test_precompute__unknown_name_or_no_models_is_an_error(models, app_env, tmp_path, capsys):
    assert precompute(["--models", str(models), "--data", str(app_env["data"]), "nope"]) == 2
    assert precompute(["--models", str(tmp_path / "none"), "--data", str(app_env["data"])]) == 2
    err = capsys.readouterr().err
    assert "no model folder nope" in err and "export" in err


def test_layout_key__changes_when_only_the_weights_change(models, app_env):
    """model.onnx can be graph-only (weights in weights.safetensors): the key covers every file."""
    from ssl_train.model_files import read_card

    card = read_card(models / "rotation")
    other = json.loads(json.dumps(card))
    other["files"]["weights.safetensors"] = "0" * 64
    assert embedding.model_key(card) != embedding.model_key(other)

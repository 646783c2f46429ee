"""app.embedding / app.precompute: layouts are computed once, stored small, and never used stale."""
from __future__ import annotations

import dataclasses
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
    got = embedding.load(p, lay.model_key, lay.data_key, lay.files)
    assert got is not None and np.allclose(got.features, lay.features) and np.array_equal(got.xy, lay.xy)
    assert embedding.load(p, "0" * 64, lay.data_key, lay.files) is None  # re-exported model (any file changed)
    assert embedding.load(p, lay.model_key, "1" * 64) is None  # another split
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    assert embedding.load(tmp_path / "bad.npz", lay.model_key, lay.data_key, lay.files) is None


def _save_format_2(lay, path):
    """A file as the previous format (pretext-lab-app-layout/2) wrote it: features in float16."""
    meta = {"format": "pretext-lab-app-layout/2", "model": lay.model, "model_key": lay.model_key, "data_key": lay.data_key,
            "classes": lay.classes, "knn_accuracy": lay.knn_accuracy, "method": lay.method, **lay.meta}
    np.savez_compressed(path, meta=np.asarray(json.dumps(meta)), files=np.asarray(lay.files, dtype=str), labels=lay.labels.astype(np.int16),
                        is_test=lay.is_test, features=lay.features.astype(np.float16), map_idx=lay.map_idx.astype(np.int32), xy=lay.xy.astype(np.float32))
    return path


def test_save__uint8_features_round_trip_within_half_step(built, tmp_path):
    _, lay = built
    rng = np.random.default_rng(0)
    raw = (lay.features + rng.normal(0, 0.3, lay.features.shape)).astype(np.float32)  # not on any grid
    raw[:, 0] = 0.25  # a constant dimension: step 0, stored exactly
    fresh = dataclasses.replace(lay, features=raw, features_min=None, features_scale=None)
    p = embedding.save(fresh, tmp_path / "x.npz")
    with np.load(p) as z:
        assert json.loads(str(z["meta"]))["format"] == embedding.FORMAT
        assert z["features"].dtype == np.uint8 and z["features"].shape == raw.shape
        lo, scale = z["features_min"], z["features_scale"]
        assert lo.dtype == scale.dtype == np.float32 and lo.shape == scale.shape == (raw.shape[1],)
    got = embedding.load(p, lay.model_key, lay.data_key, lay.files)
    assert got is not None and got.features.dtype == np.float32 and got.features.flags["C_CONTIGUOUS"]
    assert np.array_equal(lo, raw.min(0)) and np.allclose(scale, (raw.max(0) - raw.min(0)) / 255, rtol=1e-6) and scale[0] == 0
    err = np.abs(got.features - raw)
    assert np.all(err <= scale / 2 + 1e-6 * np.abs(raw).max(0)), (err - scale / 2).max()
    assert np.all(got.features[:, 0] == 0.25)
    # everything else as it was
    assert np.array_equal(got.files, lay.files) and np.array_equal(got.labels, lay.labels) and np.array_equal(got.xy, lay.xy)
    assert np.array_equal(got.map_idx, lay.map_idx) and np.array_equal(got.is_test, lay.is_test) and got.knn_accuracy == lay.knn_accuracy


def test_build__features_are_what_a_reload_gives_exactly(built, tmp_path):
    """build() rounds features to the file's uint8 grid: save → load → save → load changes nothing."""
    _, lay = built
    assert lay.features_min is not None and lay.features_scale is not None
    once = embedding.load(embedding.save(lay, tmp_path / "a.npz"), lay.model_key, lay.data_key, lay.files)
    twice = embedding.load(embedding.save(once, tmp_path / "b.npz"), lay.model_key, lay.data_key, lay.files)
    assert np.array_equal(once.features, lay.features) and np.array_equal(twice.features, lay.features)
    assert np.array_equal(twice.features_min, lay.features_min) and np.array_equal(twice.features_scale, lay.features_scale)


def test_reload__knn_accuracy_of_the_layout_unchanged(built, tmp_path):
    from ssl_train.evaluate import knn_eval

    _, lay = built
    got = embedding.load(embedding.save(lay, tmp_path / "x.npz"), lay.model_key, lay.data_key, lay.files)
    tr, te = got.train_idx, got.test_idx
    knn = knn_eval(got.features[tr], got.labels[tr], got.features[te], got.labels[te], len(got.classes), k=embedding.KNN_K)
    assert got.knn_accuracy == lay.knn_accuracy == pytest.approx(float(knn["test_accuracy"]), abs=1e-12)
    f = got.features[got.test_idx[:2]]
    assert embedding.knn_vote(got, f)[0] == embedding.knn_vote(lay, f)[0]


def test_load__old_float16_file_still_loads_and_is_rewritten_as_uint8(built, tmp_path):
    m, lay = built
    old = _save_format_2(lay, tmp_path / "old.npz")
    got = embedding.load(old, lay.model_key, lay.data_key, lay.files)
    assert got is not None and got.features.dtype == np.float32
    assert np.array_equal(got.features, lay.features.astype(np.float16).astype(np.float32)) and got.knn_accuracy == lay.knn_accuracy
    assert got.features_min is None and np.array_equal(got.xy, lay.xy)
    assert embedding.load(old, "0" * 64, lay.data_key, lay.files) is None  # still keyed: a stale old file is not used
    again = embedding.load(embedding.save(got, tmp_path / "new.npz"), lay.model_key, lay.data_key, lay.files)
    assert np.all(np.abs(again.features - got.features) <= again.features_scale / 2 + 1e-6)
    # found and reported available beside model.json, like a current file
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    _save_format_2(lay, model_dir / "app_precomputed.npz")
    assert embedding.available(model_dir, m.card, lay.data_key) and embedding.find(model_dir, m.card, lay.data_key) is not None


def test_save__file_names_not_stored_but_checked_against_the_photo_index(built, tmp_path):
    _, lay = built
    p = embedding.save(lay, tmp_path / "x.npz")
    with np.load(p) as z:
        parts = {k: z[k] for k in z.files}
    assert "files" not in parts  # the rows are split.csv's, in its order: the names come from the photo index
    assert embedding.load(p, lay.model_key, lay.data_key) is None  # no names given: not used
    assert embedding.load(p, lay.model_key, lay.data_key, list(lay.files)[::-1]) is None  # other names or order: not used
    assert list(embedding.load(p, lay.model_key, lay.data_key, tuple(lay.files)).files) == list(lay.files)
    # a file of the previous format (/3) holds its names and loads without them
    meta = json.loads(str(parts["meta"]))
    parts["meta"] = np.asarray(json.dumps(dict(meta, format="pretext-lab-app-layout/3")))
    np.savez_compressed(tmp_path / "old.npz", **parts, files=np.asarray(lay.files, dtype=str))
    old = embedding.load(tmp_path / "old.npz", lay.model_key, lay.data_key)
    assert old is not None and np.array_equal(old.files, lay.files) and np.array_equal(old.features, lay.features)


def test_load__unknown_format_or_broken_uint8_file_is_none_not_a_crash(built, tmp_path):
    _, lay = built
    p = embedding.save(lay, tmp_path / "x.npz")
    with np.load(p) as z:
        parts = {k: z[k] for k in z.files}
    meta = json.loads(str(parts["meta"]))
    for name, change in {
        "future format": {"meta": np.asarray(json.dumps(dict(meta, format="pretext-lab-app-layout/99")))},
        "no features_min": {"features_min": None},
        "float features, current format": {"features": lay.features.astype(np.float16)},
        "scale of the wrong length": {"features_scale": parts["features_scale"][:-1]},
    }.items():
        broken = {k: v for k, v in {**parts, **change}.items() if v is not None}
        np.savez_compressed(tmp_path / "b.npz", **broken)
        assert embedding.load(tmp_path / "b.npz", lay.model_key, lay.data_key, lay.files) is None, name


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
        assert embedding.find(e.path, e.card, idx.key, idx.files) is not None
    # again: the layouts are current (same model files, same photos), so they are kept as they are
    before = {e.name: (e.path / "app_precomputed.npz").stat().st_mtime_ns for e in list_models(models)}
    assert precompute(["--models", str(models), "--data", str(app_env["data"])]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert all("kept" in r for r in lines) and len(lines) == 2
    assert {e.name: (e.path / "app_precomputed.npz").stat().st_mtime_ns for e in list_models(models)} == before
    assert precompute(["--models", str(models), "--data", str(app_env["data"]), "--force", "rotation"]) == 0
    assert (models / "rotation" / "app_precomputed.npz").stat().st_mtime_ns != before["rotation"]


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

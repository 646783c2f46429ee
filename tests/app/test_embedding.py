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


def _save_format_4(lay, path, names=False):
    """A file as format /4 wrote it (with ``names``: as /3, which also stored the file names):
    features as uint8 codes per dimension on min..max (255 steps)."""
    x = lay.features.astype(np.float64)
    lo = lay.features.min(0)
    scale = ((lay.features.max(0).astype(np.float64) - lo) / 255).astype(np.float32)
    q = np.clip(np.rint((x - lo) / np.where(scale > 0, scale, 1.0)), 0, 255).astype(np.uint8)
    meta = {"format": "pretext-lab-app-layout/3" if names else "pretext-lab-app-layout/4", "model": lay.model, "model_key": lay.model_key,
            "data_key": lay.data_key, "classes": lay.classes, "knn_accuracy": lay.knn_accuracy, "method": lay.method, **lay.meta,
            "files_sha256": embedding.files_sha256(lay.files)}
    extra = {"files": np.asarray(lay.files, dtype=str)} if names else {}
    np.savez_compressed(path, meta=np.asarray(json.dumps(meta)), labels=lay.labels.astype(np.int16), is_test=lay.is_test,
                        features=np.asfortranarray(q), features_min=lo, features_scale=scale, map_idx=lay.map_idx.astype(np.int32),
                        xy=lay.xy.astype(np.float32), **extra)
    return path, lo + q.astype(np.float32) * scale


def _save_format_2(lay, path):
    """A file as the previous format (pretext-lab-app-layout/2) wrote it: features in float16."""
    meta = {"format": "pretext-lab-app-layout/2", "model": lay.model, "model_key": lay.model_key, "data_key": lay.data_key,
            "classes": lay.classes, "knn_accuracy": lay.knn_accuracy, "method": lay.method, **lay.meta}
    np.savez_compressed(path, meta=np.asarray(json.dumps(meta)), files=np.asarray(lay.files, dtype=str), labels=lay.labels.astype(np.int16),
                        is_test=lay.is_test, features=lay.features.astype(np.float16), map_idx=lay.map_idx.astype(np.int32), xy=lay.xy.astype(np.float32))
    return path


def test_save__4bit_codes_within_half_a_step_under_the_clip_saturated_above(built, tmp_path):
    _, lay = built
    rng = np.random.default_rng(0)
    raw = (lay.features + rng.normal(0, 0.3, lay.features.shape)).astype(np.float32)  # not on any grid
    raw[:, 0] = 0.25  # a constant dimension: step 0, stored exactly
    fresh = dataclasses.replace(lay, features=raw, features_min=None, features_scale=None)
    p = embedding.save(fresh, tmp_path / "x.npz")
    with np.load(p) as z:
        assert json.loads(str(z["meta"]))["format"] == embedding.FORMAT == "pretext-lab-app-layout/5" and "features" not in z.files
        assert z["features4"].dtype == np.uint8 and z["features4"].shape == (len(raw), raw.shape[1] // 2)
        lo, scale = z["features_min"], z["features_scale"]
        assert lo.dtype == scale.dtype == np.float32 and lo.shape == scale.shape == (raw.shape[1],)
    got = embedding.load(p, lay.model_key, lay.data_key, lay.files)
    assert got is not None and got.features.dtype == np.float32 and got.features.flags["C_CONTIGUOUS"]
    clip = np.percentile(raw.astype(np.float64), 99.5, axis=0)
    assert np.array_equal(lo, raw.min(0)) and np.allclose(scale, (clip - raw.min(0)) / 15, rtol=1e-6) and scale[0] == 0
    top = lo + 15 * scale
    under = raw <= top
    err = np.abs(got.features - raw)
    assert np.all(err[under] <= (scale / 2 + 1e-6 * np.abs(raw).max(0))[np.nonzero(under)[1]]), (err - scale / 2).max()
    assert (~under).any() and np.array_equal(got.features[~under], np.broadcast_to(top, raw.shape)[~under])  # saturated at code 15
    assert np.all(got.features[:, 0] == 0.25)
    # everything else as it was
    assert np.array_equal(got.files, lay.files) and np.array_equal(got.labels, lay.labels) and np.array_equal(got.xy, lay.xy)
    assert np.array_equal(got.map_idx, lay.map_idx) and np.array_equal(got.is_test, lay.is_test) and got.knn_accuracy == lay.knn_accuracy


def test_quantise__a_dimension_almost_always_at_its_min_keeps_its_few_other_values():
    """≥ 99.5 % of the photos at the min: the 99.5th percentile is the min, so the grid spans min..max
    rather than erasing the rest (step 0)."""
    x = np.zeros((1000, 2), np.float32)
    x[:3, 0] = [1.0, 0.6, 0.2]
    x[:, 1] = np.linspace(0, 1, 1000)
    q, lo, scale = embedding.quantise(x)
    assert scale[0] == pytest.approx(1 / 15) and np.allclose(embedding.dequantise(q, lo, scale)[:3, 0], [1.0, 9 / 15, 3 / 15])
    assert scale[1] == pytest.approx(np.percentile(x[:, 1], 99.5) / 15) and q[-1, 1] == 15


def test_pack__two_codes_per_byte_low_nibble_even_dimension_odd_d_padded():
    q = np.array([[1, 2, 3, 4, 5], [15, 0, 7, 9, 14]], np.uint8)  # D = 5: the last byte's high nibble is padding
    packed = embedding.pack(q)
    assert packed.dtype == np.uint8 and packed.shape == (2, 3)
    assert packed[0].tolist() == [0x21, 0x43, 0x05] and packed[1].tolist() == [0x0F, 0x97, 0x0E]
    assert np.array_equal(embedding.unpack(packed, 5), q) and np.array_equal(embedding.unpack(np.asfortranarray(packed), 5), q)
    every = np.random.default_rng(0).integers(0, 16, (7, 256), dtype=np.uint8)
    assert np.array_equal(embedding.unpack(embedding.pack(every), 256), every)


def test_save__4bit_codes_round_trip_exactly_with_odd_d(built, tmp_path):
    """A 33-dimensional layout (odd D): save → load gives build's features bit for bit, and a second
    save writes the same codes and grid."""
    _, lay = built
    raw = np.concatenate([lay.features, lay.features[:, :1] * 2 + 0.1], axis=1).astype(np.float32)
    feats, lo, scale = embedding.quantised(raw)
    odd = dataclasses.replace(lay, features=feats, features_min=lo, features_scale=scale)
    a = embedding.save(odd, tmp_path / "a.npz")
    once = embedding.load(a, lay.model_key, lay.data_key, lay.files)
    assert once is not None and once.features.shape == (len(raw), 33) and np.array_equal(once.features, feats)
    b = embedding.save(once, tmp_path / "b.npz")
    with np.load(a) as za, np.load(b) as zb:
        assert za["features4"].shape == (len(raw), 17) and not (za["features4"][:, -1] >> 4).any()  # padding nibble 0
        for k in ("features4", "features_min", "features_scale"):
            assert np.array_equal(za[k], zb[k]), k


def test_build__features_are_what_a_reload_gives_exactly(built, tmp_path):
    """build() rounds features to the file's 4-bit grid: save → load → save → load changes nothing."""
    _, lay = built
    assert lay.features_min is not None and lay.features_scale is not None
    once = embedding.load(embedding.save(lay, tmp_path / "a.npz"), lay.model_key, lay.data_key, lay.files)
    twice = embedding.load(embedding.save(once, tmp_path / "b.npz"), lay.model_key, lay.data_key, lay.files)
    assert np.array_equal(once.features, lay.features) and np.array_equal(twice.features, lay.features)
    assert np.array_equal(twice.features_min, lay.features_min) and np.array_equal(twice.features_scale, lay.features_scale)
    q, _, _ = embedding.quantise(lay.features, lay.features_min, lay.features_scale)
    assert q.max() <= 15 and np.array_equal(embedding.dequantise(q, lay.features_min, lay.features_scale), lay.features)


def test_reload__knn_accuracy_of_the_layout_unchanged(built, tmp_path):
    from ssl_train.evaluate import knn_eval

    _, lay = built
    got = embedding.load(embedding.save(lay, tmp_path / "x.npz"), lay.model_key, lay.data_key, lay.files)
    tr, te = got.train_idx, got.test_idx
    knn = knn_eval(got.features[tr], got.labels[tr], got.features[te], got.labels[te], len(got.classes), k=embedding.KNN_K)
    assert got.knn_accuracy == lay.knn_accuracy == pytest.approx(float(knn["test_accuracy"]), abs=1e-12)
    f = got.features[got.test_idx[:2]]
    assert embedding.knn_vote(got, f)[0] == embedding.knn_vote(lay, f)[0]


def test_load__old_float16_file_still_loads_and_is_rewritten_as_4bit_codes(built, tmp_path):
    m, lay = built
    old = _save_format_2(lay, tmp_path / "old.npz")
    got = embedding.load(old, lay.model_key, lay.data_key, lay.files)
    assert got is not None and got.features.dtype == np.float32
    assert np.array_equal(got.features, lay.features.astype(np.float16).astype(np.float32)) and got.knn_accuracy == lay.knn_accuracy
    assert got.features_min is None and np.array_equal(got.xy, lay.xy)
    assert embedding.load(old, "0" * 64, lay.data_key, lay.files) is None  # still keyed: a stale old file is not used
    again = embedding.load(embedding.save(got, tmp_path / "new.npz"), lay.model_key, lay.data_key, lay.files)
    top = again.features_min + 15 * again.features_scale
    assert np.all(np.abs(again.features - np.minimum(got.features, top)) <= again.features_scale / 2 + 1e-6)
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
    # a file of format /3 holds its names and loads without them
    _, stored = _save_format_4(lay, tmp_path / "old.npz", names=True)
    old = embedding.load(tmp_path / "old.npz", lay.model_key, lay.data_key)
    assert old is not None and np.array_equal(old.files, lay.files) and np.array_equal(old.features, stored)


def test_load__old_uint8_file_of_format_4_still_loads_and_is_rewritten_as_4bit(built, tmp_path):
    m, lay = built
    old, stored = _save_format_4(lay, tmp_path / "old.npz")
    got = embedding.load(old, lay.model_key, lay.data_key, lay.files)
    assert got is not None and np.array_equal(got.features, stored) and got.knn_accuracy == lay.knn_accuracy
    assert np.all(np.abs(got.features - lay.features) <= got.features_scale / 2 + 1e-6) and np.array_equal(got.xy, lay.xy)
    assert embedding.load(old, lay.model_key, lay.data_key) is None  # /4 names its rows by split.csv's: needs the names
    assert embedding.load(old, "0" * 64, lay.data_key, lay.files) is None  # still keyed
    assert not embedding.is_current(old, lay.model_key, lay.data_key)  # precompute rewrites it in the current format
    again = embedding.load(embedding.save(got, tmp_path / "new.npz"), lay.model_key, lay.data_key, lay.files)
    with np.load(tmp_path / "new.npz") as z:
        assert json.loads(str(z["meta"]))["format"] == embedding.FORMAT and "features4" in z.files
    top = again.features_min + 15 * again.features_scale
    assert np.all(np.abs(again.features - np.minimum(got.features, top)) <= again.features_scale / 2 + 1e-6)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    _save_format_4(lay, model_dir / "app_precomputed.npz")
    assert embedding.available(model_dir, m.card, lay.data_key) and embedding.find(model_dir, m.card, lay.data_key, lay.files) is not None


def test_load__unknown_format_corrupt_or_foreign_file_is_none_not_a_crash(built, tmp_path):
    _, lay = built
    p = embedding.save(lay, tmp_path / "x.npz")
    with np.load(p) as z:
        parts = {k: z[k] for k in z.files}
    meta = json.loads(str(parts["meta"]))
    for name, change in {
        "future format": {"meta": np.asarray(json.dumps(dict(meta, format="pretext-lab-app-layout/99")))},
        "no features_min": {"features_min": None},
        "float features, current format": {"features4": lay.features.astype(np.float16)},
        "uint8 features of /4 labelled /5": {"features4": None, "features": np.zeros(lay.features.shape, np.uint8)},
        "codes of the wrong width": {"features4": parts["features4"][:, :-1]},
        "codes for fewer photos": {"features4": parts["features4"][:-1]},
        "scale of the wrong length": {"features_scale": parts["features_scale"][:-1]},
        "NaN in the scale": {"features_scale": np.full_like(parts["features_scale"], np.nan)},
    }.items():
        broken = {k: v for k, v in {**parts, **change}.items() if v is not None}
        np.savez_compressed(tmp_path / "b.npz", **broken)
        assert embedding.load(tmp_path / "b.npz", lay.model_key, lay.data_key, lay.files) is None, name
    # not a layout at all: garbage bytes, another program's npz, an empty file
    (tmp_path / "garbage.npz").write_bytes(b"garbage")
    np.savez(tmp_path / "foreign.npz", features=np.zeros((3, 4), np.uint8))
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "truncated.npz").write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    for name in ("garbage.npz", "foreign.npz", "empty.npz", "truncated.npz"):
        assert embedding.load(tmp_path / name, lay.model_key, lay.data_key, lay.files) is None, name
        assert not embedding.is_current(tmp_path / name, lay.model_key, lay.data_key), name


def test_place__an_upload_equal_to_a_map_photo_lands_on_it(built):
    _, lay = built
    f = lay.map_features[[2]]
    order, sims = embedding.neighbours(lay, f)
    assert order[0, 0] == 2 and sims[0, 0] == pytest.approx(1.0, abs=1e-5)
    xy = embedding.place(lay, f, k=1)
    assert np.allclose(xy[0], lay.xy[2], atol=1e-4)
    votes, share = embedding.knn_vote(lay, f)
    assert share.shape == (1, len(lay.classes)) and share.sum() == pytest.approx(1.0)


# slow: fits UMAP twice (~16 s, numba); CI runs it
@pytest.mark.slow
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

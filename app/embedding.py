"""Features of the bundled photos, their UMAP map and kNN accuracy — per model, precomputed.

``python -m app.precompute`` (or the app itself on a miss) computes, for one model:

- the pooled features of every bundled photo (onnxruntime, ``OnnxModel.features``);
- a 2-D UMAP layout of the map photos: the test split (a fixed sample of ≤ 1500 if larger);
- the kNN accuracy on the test split (``ssl_train.evaluate.knn_eval``: k = 20, cosine,
  distance-weighted, trained on every training photo's label);

and stores them in one small ``.npz`` (no pickle) keyed by the sha256 of every file of the model
(its card's "files" table) and of the photo set's ``split.csv``, so a stale file is never used.
Reading it needs numpy only: opening a map imports neither torch nor umap.

Features are stored as 4-bit codes per feature dimension, two per byte (``.../5``: ``features4``
uint8 (N, ceil(D/2)), the low nibble the even dimension, the high nibble the odd one), affine:
``value = features_min + code * features_scale``, both float32 arrays of length D, codes 0–15, step
= (99.5th percentile − min) / 15 per dimension, so the top half-percent of each dimension saturates at
code 15 (``grid``; a constant dimension has step 0). They are dequantised to float32 on load. A file
is 0.36–0.41 MB for 3,479 photos × 256 dimensions (the shipped eleven: 4.31 MB in all, 8.57 MB with
uint8 per dimension in ``.../4``, which was itself half of float16 in ``.../2``). ``build`` applies the
same round trip, so what it returns equals what a reload gives, and the stored kNN accuracy and the
UMAP layout are those of the stored features.

Why 4 bits clipped at the 99.5th percentile (measured on the shipped 8-bit features of the eleven
models, re-quantised): the top-20 cosine neighbours of 600 training photos among the training photos
keep 92.0 % of their members on average (worst model 86.9 %), against 90.1 % for 4 bits spanning
min..max, 90.6 % square-root companded, 91.1 % clipped at the 99.9th percentile and 95.3 % with 5 bits;
the test kNN accuracy (k = 20, 696 test photos: one photo = 0.14 points) moved by −0.20 points on
average, −1.15 at worst. Regenerating the shipped files from the models' own features (``python -m
app.precompute --force``) moved the stored kNN accuracy by +0.12 points on average (from −1.44,
context, to +1.58, simclr) against the uint8 files.

The photos' file names are not stored (since ``.../4``): they are the rows of ``split.csv``, whose
sha256 is the layout's ``data_key``, in that order; the file keeps the sha256 of the list and ``load``
takes the list from the caller's photo index (this saved 63 kB per model, which let a tenth encoder
fit the 30 MB budget of models/). Files of the previous formats (``.../4`` uint8, ``.../3`` with the
names, ``.../2`` float16 features) still load.
"""
from __future__ import annotations

import json
import os
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .config import PRECOMPUTED_NAME, cache_dir
from .novelty import unit_rows

FORMAT = "pretext-lab-app-layout/5"  # /5: features as 4-bit codes, two per byte (features4), clipped at the 99.5th percentile
FORMAT_4 = "pretext-lab-app-layout/4"  # /4: features uint8 per dimension (min..max); no file names (files_sha256 in meta)
# /3: as /4 with the file names stored; /2: features float16
FORMATS_READ = (FORMAT, FORMAT_4, "pretext-lab-app-layout/3", "pretext-lab-app-layout/2")
LEVELS = 15  # codes 0..15: 4 bits
CLIP_PERCENTILE = 99.5  # per dimension, the top of the grid: values above it saturate at code 15
MAP_MAX = 1500
KNN_K = 20  # = ssl_train.evaluate.KNN_K
UMAP_PARAMS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine", "random_state": 0}
NEIGHBOURS = 5


@dataclass
class Layout:
    model: str
    model_key: str
    data_key: str
    classes: list[str]
    files: np.ndarray  # (N,) str, every bundled photo
    labels: np.ndarray  # (N,) int64
    is_test: np.ndarray  # (N,) bool
    features: np.ndarray  # (N, D) float32 (stored as 4-bit codes per dimension: see quantise)
    map_idx: np.ndarray  # (M,) indices into files: the photos on the map
    xy: np.ndarray  # (M, 2) float32
    knn_accuracy: float
    method: str = "umap"
    meta: dict[str, Any] = field(default_factory=dict)
    # the grid ``features`` lie on (float32 (D,) each), when known: ``save`` then stores them exactly
    features_min: np.ndarray | None = None
    features_scale: np.ndarray | None = None

    @property
    def map_features(self) -> np.ndarray:
        return self.features[self.map_idx]

    @property
    def train_idx(self) -> np.ndarray:
        return np.nonzero(~self.is_test)[0]

    @property
    def test_idx(self) -> np.ndarray:
        return np.nonzero(self.is_test)[0]


def model_key(card: dict) -> str:
    """sha256 over the card's {file: sha256} table: changes when any file of the model changes
    (model.onnx may be graph-only, its weights living in weights.safetensors)."""
    import hashlib

    return hashlib.sha256(json.dumps(sorted(card["files"].items())).encode()).hexdigest()


def files_sha256(files) -> str:
    """sha256 of the photos' file names in order (how a /4 file names the rows it holds)."""
    import hashlib

    return hashlib.sha256("\n".join(str(f) for f in files).encode("utf-8")).hexdigest()


def precomputed_paths(model_dir: Path, card: dict, data_key: str) -> list[Path]:
    """Where a layout may be: beside model.json (shipped), then the app's cache folder."""
    return [Path(model_dir) / PRECOMPUTED_NAME, cache_dir() / f"{Path(model_dir).name}-{model_key(card)[:12]}-{data_key[:12]}.npz"]


# -- storage ---------------------------------------------------------------------------------------
def grid(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 4-bit grid of (N, D) features → (per-dimension min (D,), per-dimension step (D,)), both
    float32: step = (99.5th percentile − min) / 15, so the top half-percent saturates at code 15. A
    constant dimension has step 0; one whose 99.5th percentile is its min but not its max (≥ 99.5 %
    of the photos at the min) spans min..max instead, so its few other values are not all erased."""
    x = np.asarray(x, np.float32)
    if not len(x):
        z = np.zeros(x.shape[1:], np.float32)
        return z, z.copy()
    lo = x.min(0)
    hi = np.percentile(x.astype(np.float64), CLIP_PERCENTILE, axis=0)
    hi = np.where(hi > lo, hi, x.max(0).astype(np.float64))
    return lo, ((hi - lo) / LEVELS).astype(np.float32)


def quantise(x: np.ndarray, lo: np.ndarray | None = None, scale: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, D) features → (codes 0–15 (N, D) uint8, per-dimension min (D,), per-dimension step (D,)),
    on ``grid(x)`` or, with ``lo`` and ``scale`` given, on that grid. ``dequantise`` is within half a
    step of ``x`` for values up to ``lo + 15 * scale``; larger ones saturate at code 15."""
    x = np.asarray(x, np.float32)
    if lo is None or scale is None:
        lo, scale = grid(x)
    lo, scale = np.asarray(lo, np.float32), np.asarray(scale, np.float32)
    step = np.where(scale > 0, scale, 1.0).astype(np.float64)
    q = np.clip(np.rint((x.astype(np.float64) - lo) / step), 0, LEVELS).astype(np.uint8)
    return q, lo, scale


def dequantise(q: np.ndarray, lo: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Codes → float32 features (C-ordered): ``lo + q * scale`` per dimension (4-bit codes, and the
    uint8 codes of /3 and /4 files)."""
    out = np.asarray(lo, np.float32)[None, :] + np.asarray(q, np.float32) * np.asarray(scale, np.float32)[None, :]
    return np.ascontiguousarray(out, dtype=np.float32)


def pack(q: np.ndarray) -> np.ndarray:
    """Codes 0–15 (N, D) → uint8 (N, ceil(D/2)), two per byte: the low nibble holds the even
    dimension, the high nibble the odd one (0 after the last dimension when D is odd)."""
    q = np.asarray(q, np.uint8)
    if q.shape[1] % 2:
        q = np.concatenate([q, np.zeros((len(q), 1), np.uint8)], axis=1)
    return (q[:, 0::2] & 0x0F) | (q[:, 1::2] << 4)


def unpack(packed: np.ndarray, d: int) -> np.ndarray:
    """uint8 (N, ceil(d/2)) from ``pack`` → codes (N, d) uint8."""
    packed = np.asarray(packed, np.uint8)
    q = np.empty((len(packed), 2 * packed.shape[1]), np.uint8)
    q[:, 0::2], q[:, 1::2] = packed & 0x0F, packed >> 4
    return q[:, :d]


def quantised(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x`` as the file will hold it → (float32 features, min, step): quantise, then dequantise."""
    q, lo, scale = quantise(x)
    return dequantise(q, lo, scale), lo, scale


def _codes(layout: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4-bit codes for ``layout.features``: on the layout's own grid when it reproduces them
    exactly (a layout from ``build`` or a /5 ``load``: save → load gives identical features), else a
    fresh grid (``quantise``: within half a step under the clip; a layout loaded from an older
    format gets one, so its stored kNN accuracy is then that of the older file's features)."""
    if layout.features_min is not None and layout.features_scale is not None:
        q, lo, scale = quantise(layout.features, layout.features_min, layout.features_scale)
        if np.array_equal(dequantise(q, lo, scale), np.asarray(layout.features, np.float32)):
            return q, lo, scale
    return quantise(layout.features)


def save(layout: Layout, path: Path) -> Path:
    """Write atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT, "model": layout.model, "model_key": layout.model_key, "data_key": layout.data_key,
        "classes": layout.classes, "knn_accuracy": layout.knn_accuracy, "method": layout.method,
        **{k: v for k, v in layout.meta.items() if k != "loaded_from"}, "files_sha256": files_sha256(layout.files),
    }
    q, lo, scale = _codes(layout)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez_compressed(
            f, meta=np.asarray(json.dumps(meta)), labels=layout.labels.astype(np.int16),
            is_test=layout.is_test, features4=np.asfortranarray(pack(q)), features_min=lo, features_scale=scale,
            map_idx=layout.map_idx.astype(np.int32), xy=layout.xy.astype(np.float32),
        )
    os.replace(tmp, path)
    return path


def is_current(path: Path, key: str, data_key: str) -> bool:
    """True when ``path`` holds a layout in the current format for this model (``model_key``) and
    photo set (``data_key``): reads only its metadata."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
    except Exception:  # noqa: BLE001 — absent, corrupt or foreign: not current
        return False
    return meta.get("format") == FORMAT and meta.get("model_key") == key and meta.get("data_key") == data_key


def load(path: Path, key: str, data_key: str, files=None) -> Layout | None:
    """The layout in ``path`` if it exists and belongs to this model and photo set, else None.
    ``files``: the photo set's file names in ``split.csv`` order (``photos.index(root).files``),
    which /5 and /4 files do not store; without them (or with other ones) such a file is not used."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") not in FORMATS_READ or meta.get("model_key") != key or meta.get("data_key") != data_key:
                return None
            fmt = meta["format"]
            if fmt in (FORMAT, FORMAT_4):
                if files is None or meta.get("files_sha256") != files_sha256(files):
                    return None
                names = np.asarray(list(files), dtype=str)
            else:
                names = z["files"]
            lo = scale = None
            if fmt != "pretext-lab-app-layout/2":
                lo, scale = z["features_min"], z["features_scale"]
                if lo.dtype.kind != "f" or scale.dtype.kind != "f" or lo.ndim != 1 or scale.shape != lo.shape:
                    return None
                lo, scale = lo.astype(np.float32), scale.astype(np.float32)
                if not (np.isfinite(lo).all() and np.isfinite(scale).all() and (scale >= 0).all()):
                    return None
                q = z["features4"] if fmt == FORMAT else z["features"]
                width = (len(lo) + 1) // 2 if fmt == FORMAT else len(lo)
                if q.dtype != np.uint8 or q.ndim != 2 or q.shape[1] != width:
                    return None
                features = dequantise(unpack(q, len(lo)) if fmt == FORMAT else q, lo, scale)
            else:  # /2: float16
                features = z["features"].astype(np.float32)
            labels, is_test = z["labels"], z["is_test"]
            if not len(features) == len(labels) == len(is_test) == len(names):
                return None
            return Layout(
                model=meta["model"], model_key=key, data_key=data_key, classes=list(meta["classes"]),
                files=names, labels=labels.astype(np.int64), is_test=is_test.astype(bool),
                features=features, map_idx=z["map_idx"].astype(np.int64), xy=z["xy"].astype(np.float32),
                knn_accuracy=float(meta["knn_accuracy"]), method=meta.get("method", "umap"),
                meta={k: v for k, v in meta.items() if k not in ("format", "model", "model_key", "data_key", "classes", "knn_accuracy", "method", "files_sha256")},
                features_min=lo, features_scale=scale,
            )
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error):  # corrupt, truncated or foreign
        return None


def available(model_dir: Path, card: dict, data_key: str) -> bool:
    """Whether a matching layout file exists (reads only its small meta entry)."""
    for p in precomputed_paths(model_dir, card, data_key):
        try:
            with np.load(p, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
            if meta.get("format") in FORMATS_READ and meta.get("model_key") == model_key(card) and meta.get("data_key") == data_key:
                return True
        except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error):
            continue
    return False


def find(model_dir: Path, card: dict, data_key: str, files=None) -> Layout | None:
    """The first matching layout of ``precomputed_paths`` (``files`` as for ``load``), else None."""
    for p in precomputed_paths(model_dir, card, data_key):
        got = load(p, model_key(card), data_key, files)
        if got is not None:
            got.meta["loaded_from"] = str(p)
            return got
    return None


# -- computing -------------------------------------------------------------------------------------
def map_indices(is_test: np.ndarray, max_points: int = MAP_MAX, seed: int = 0) -> np.ndarray:
    """The photos drawn on the map: the test split, or a fixed sample of ``max_points`` of it."""
    idx = np.nonzero(is_test)[0]
    if len(idx) > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_points, replace=False))
    return idx


def fit_umap(features: np.ndarray):
    """A fitted ``umap.UMAP`` (fixed parameters and seed: refitting the same features reproduces
    the same layout)."""
    import warnings

    import umap

    params = dict(UMAP_PARAMS, n_neighbors=min(UMAP_PARAMS["n_neighbors"], len(features) - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", numba notes
        return umap.UMAP(n_components=2, **params).fit(np.asarray(features, np.float32))


def _pca2(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return (x @ vt[:2].T).astype(np.float32)


def layout_xy(features: np.ndarray) -> tuple[np.ndarray, str]:
    """2-D positions of ``features``: UMAP, or PCA when there are too few photos for UMAP (< 10)."""
    if len(features) < 10:
        return _pca2(features), "pca (fewer than 10 photos)"
    return fit_umap(features).embedding_.astype(np.float32), "umap"


def build(model, data_root: str | Path, progress: Callable[[str], None] | None = None) -> Layout:
    """Compute a model's layout from the bundled photos (decodes them if not cached: slow once)."""
    from ssl_train.evaluate import knn_eval

    from . import photos

    say = progress or (lambda s: None)
    idx = photos.index(data_root)
    t0 = time.time()
    say("decoding the bundled photos")
    sd = photos.decoded(data_root, model.image_size)
    if tuple(sd.ds.files) != tuple(idx.files):  # a /4 file names its rows by split.csv's order
        raise ValueError(f"the decoded photos of {data_root} are not in the order of its split.csv; delete the photo cache "
                         "($PRETEXT_LAB_CACHE or ~/.cache/pretext-lab) and retry")
    images = sd.ds.images.numpy()
    t1 = time.time()
    say(f"computing features of {len(images)} photos")
    feats, lo, scale = quantised(model.features(images))  # what the file will hold (4-bit codes per dimension)
    t2 = time.time()
    is_test = np.asarray(sd.is_test, bool)
    labels = np.asarray(sd.ds.labels, np.int64)
    map_idx = map_indices(is_test)
    say(f"fitting the map of {len(map_idx)} test photos")
    xy, method = layout_xy(feats[map_idx])
    t3 = time.time()
    tr, te = np.nonzero(~is_test)[0], np.nonzero(is_test)[0]
    knn = knn_eval(feats[tr], labels[tr], feats[te], labels[te], len(sd.ds.classes), k=KNN_K)
    t4 = time.time()
    card = model.card
    return Layout(
        model=model.name, model_key=model_key(card), data_key=idx.key, classes=list(sd.ds.classes),
        files=np.asarray(sd.ds.files, dtype=str), labels=labels, is_test=is_test, features=feats, map_idx=map_idx, xy=xy,
        knn_accuracy=float(knn["test_accuracy"]), method=method,
        meta={
            "knn_k": int(knn["k"]), "umap": UMAP_PARAMS if method == "umap" else None, "n_photos": int(len(images)),
            "seconds": {"decode": round(t1 - t0, 2), "features": round(t2 - t1, 2), "layout": round(t3 - t2, 2), "knn": round(t4 - t3, 2)},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        features_min=lo, features_scale=scale,
    )


# -- uploads on the map ----------------------------------------------------------------------------
def neighbours(layout: Layout, feats: np.ndarray, k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``feats``: the ``k`` most similar map photos (cosine) → (indices into
    ``layout.map_idx`` (n, k), similarities (n, k))."""
    sims = unit_rows(feats) @ unit_rows(layout.map_features).T
    k = min(k, sims.shape[1])
    order = np.argsort(-sims, axis=1)[:, :k]
    return order, np.take_along_axis(sims, order, 1)


def place(layout: Layout, feats: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """Map positions for new photos without refitting: the similarity-weighted mean of their
    ``k`` nearest map photos' positions (how UMAP's own ``transform`` initialises new points)."""
    order, sims = neighbours(layout, feats, k)
    w = np.maximum(sims, 0.0) + 1e-6
    return (layout.xy[order] * w[..., None]).sum(1) / w.sum(1, keepdims=True)


def knn_vote(layout: Layout, feats: np.ndarray, k: int = KNN_K) -> tuple[list[int], np.ndarray]:
    """Class votes for new photos from the training photos' labels, like the kNN score (cosine,
    weights 1/distance) → (predicted class per photo, vote shares (n, classes))."""
    tr = layout.train_idx
    sims = unit_rows(feats) @ unit_rows(layout.features[tr]).T
    k = min(k, len(tr))
    order = np.argsort(-sims, axis=1)[:, :k]
    dist = np.maximum(1.0 - np.take_along_axis(sims, order, 1), 1e-9)
    votes = np.zeros((len(feats), len(layout.classes)))
    np.add.at(votes, (np.repeat(np.arange(len(feats)), k), layout.labels[tr][order].ravel()), (1.0 / dist).ravel())
    share = votes / votes.sum(1, keepdims=True)
    return [int(i) for i in share.argmax(1)], share

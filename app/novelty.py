"""Is an uploaded photo like the photos the classifiers were trained on? (no Streamlit here)

A classifier trained on five flower classes answers one of the five for anything, a building
included, often with high confidence. Before its label is shown as an answer, the Few-shot lab asks
a separate question in the pretrained encoder's feature space: how far is this photo from its
nearest training photo? The yardstick is the held-out flowers' own distances: the threshold is the
``quantile`` (99 %) of the test photos' nearest-training-photo distances, so about 1 test flower in
100 is flagged by construction and a photo flagged is further from every training photo than 99 of
100 real test flowers are.

Distances are cosine distances (1 − cosine similarity, 0 … 2) between pooled encoder features
centred on the training photos' mean (the metric the app's kNN accuracy and maps use, ``app.embedding``,
after centring: pooled post-ReLU features are all positive, so uncentred every pair of photos looks
alike). A photo whose centred features are all zero has no direction: its distance is 1, never NaN.

What it can and cannot do (measured on the shipped models, 696 test photos, ``python -m app.novelty``):
about 1 % of held-out flowers are flagged, as designed; but these encoders were pretrained on 2,783
flower photos that include tractors, buildings and people, and in their feature space a photo of a
Chinese pagoda (scikit-learn's ``china.jpg``) is nearer a training photo than 34 % of test flowers
are, so it is NOT flagged. Neither a class-conditional Mahalanobis score nor a rotation head's
own loss does better on any shipped encoder: of 17 real non-flower photos the best of 26 such scores
flags 2 (``python -m app.novelty_study``, ``docs/novelty.md``). The page therefore also shows each photo's nearest training photo
and how unusual its distance is, and flags photos of one flat colour (``pixel_spread``) separately:
a black photo lies close to the dark training photos.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUANTILE = 0.99  # share of the test flowers that count as "like the training photos"
CHUNK = 1024  # query rows per matrix product: bounds memory at CHUNK × n_train floats


def unit_rows(x: np.ndarray) -> np.ndarray:
    """(N, D) → (N, D) float32 rows scaled to length 1; an all-zero row stays zero."""
    x = np.asarray(x, np.float32)
    if x.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {x.shape}")
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def nearest_distance(queries: np.ndarray, reference_unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distance from each query (Q, D) to its nearest row of ``reference_unit`` (R, D; rows of
    length 1 or 0) → (distances (Q,) float32 in [0, 2], index (Q,) int64 of that nearest row)."""
    q = unit_rows(queries)
    if len(reference_unit) == 0:
        raise ValueError("no reference photos to compare with")
    if len(q) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    dist, arg = [], []
    for i in range(0, len(q), CHUNK):
        sim = q[i : i + CHUNK] @ reference_unit.T  # (chunk, R) cosine similarity; 0 for a zero row
        j = sim.argmax(1)
        arg.append(j)
        dist.append(1.0 - sim[np.arange(len(j)), j])
    return np.clip(np.concatenate(dist), 0.0, 2.0).astype(np.float32), np.concatenate(arg).astype(np.int64)


@dataclass(eq=False)
class NoveltyCheck:
    """Training photos' features and the distance beyond which a photo is "unlike them"."""

    reference: np.ndarray  # (R, D) float32, unit rows: the training photos' centred features
    centre: np.ndarray  # (D,) float32: the training photos' mean feature, subtracted before the cosine
    threshold: float  # cosine distance; a photo further than this from every training photo is flagged
    quantile: float  # the share of calibration photos within ``threshold`` (0.99)
    calibration: np.ndarray  # (T,) float32: each test photo's distance to its nearest training photo
    # the grid the reference features were stored on (app.embedding's 4-bit codes: per-dimension min
    # and step, (D,) each), or None: a new photo's features are put on it before comparing, so an
    # upload is measured the way the test photos that set the threshold were
    grid: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def fit(cls, train_features: np.ndarray, test_features: np.ndarray, quantile: float = QUANTILE,
            grid: tuple[np.ndarray, np.ndarray] | None = None) -> "NoveltyCheck":
        """Training features (R, D) are the reference; the test features (T, D) set the threshold: their
        ``quantile`` of nearest-training distances (numpy's linear interpolation between order statistics).
        ``grid``: (min, step) the features were stored on (``app.embedding.quantise``), if any."""
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {quantile}")
        train = np.asarray(train_features, np.float32)
        if len(train) == 0:
            raise ValueError("no training photos to compare with")
        centre = train.mean(0)
        ref = unit_rows(train - centre)
        calib, _ = nearest_distance(np.asarray(test_features, np.float32) - centre, ref)
        if len(calib) == 0:
            raise ValueError("no test photos to set the threshold with")
        return cls(reference=ref, centre=centre, threshold=float(np.quantile(calib, quantile)), quantile=float(quantile), calibration=calib,
                   grid=grid)

    @classmethod
    def from_layout(cls, layout, quantile: float = QUANTILE) -> "NoveltyCheck":
        """An ``app.embedding.Layout``'s training photos as the reference, its test photos setting the
        threshold, and the 4-bit grid its features are stored on (when it knows it) for new photos."""
        grid = None
        if layout.features_min is not None and layout.features_scale is not None:
            grid = np.asarray(layout.features_min, np.float32), np.asarray(layout.features_scale, np.float32)
        return cls.fit(layout.features[layout.train_idx], layout.features[layout.test_idx], quantile, grid=grid)

    def on_grid(self, features: np.ndarray) -> np.ndarray:
        """(N, D) features as the reference photos' were stored: on ``grid`` when there is one."""
        x = np.asarray(features, np.float32)
        if self.grid is None:
            return x
        from .embedding import dequantise, quantise

        return dequantise(*quantise(x, *self.grid))

    def nearest(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, D) features → ((N,) cosine distance to the nearest training photo, (N,) its row)."""
        return nearest_distance(self.on_grid(features) - self.centre, self.reference)

    def distances(self, features: np.ndarray) -> np.ndarray:
        """(N, D) features → (N,) cosine distance to the nearest training photo."""
        return self.nearest(features)[0]

    def unlike(self, features: np.ndarray) -> np.ndarray:
        """(N, D) features → (N,) bool: further from every training photo than the threshold."""
        return self.distances(features) > self.threshold

    def typical_share(self, distance: float) -> float:
        """The share of test flowers (0 … 1) at least as far from the training photos as ``distance``:
        how unusual a photo this far away would be among real held-out flowers."""
        return float(np.mean(self.calibration >= distance))


FLAT_SPREAD = 3.0  # pixel levels (of 255): a photo whose values spread less than this is one flat colour


def pixel_spread(images_u8: np.ndarray) -> np.ndarray:
    """uint8 (N, 3, S, S) — what the encoder sees — → (N,) the largest per-channel standard deviation
    of its pixel values, in levels of 255 (per channel: a flat green has three different channel
    values but no detail). A black, white or single-colour photo (or a one-colour 1-pixel stripe
    stretched to a square) has 0; real photos have tens."""
    x = np.asarray(images_u8, np.float32)
    return x.reshape(len(x), x.shape[1], -1).std(2).max(1) if len(x) else np.zeros(0, np.float32)


@dataclass
class Verdict:
    """What the Few-shot lab says about one uploaded photo before showing any label."""

    distance: float  # cosine distance to the nearest training photo (encoder features)
    nearest: int  # row of that photo in the training features given to NoveltyCheck.fit
    further_share: float  # share of test flowers (0 … 1) at least this far from every training photo
    spread: float  # pixel spread, levels of 255 (pixel_spread)
    unlike: bool  # beyond the threshold: unlike every training photo
    flat: bool  # one flat colour: nothing to recognise

    @property
    def flagged(self) -> bool:
        """True: show a warning instead of a confident label."""
        return self.unlike or self.flat


def judge(check: NoveltyCheck, features: np.ndarray, images_u8: np.ndarray) -> list[Verdict]:
    """One Verdict per photo from its encoder features (N, D) and the uint8 (N, 3, S, S) the encoder saw."""
    dist, near = check.nearest(features)
    spread = pixel_spread(images_u8)
    return [Verdict(distance=float(d), nearest=int(j), further_share=check.typical_share(float(d)), spread=float(s),
                    unlike=bool(d > check.threshold), flat=bool(s < FLAT_SPREAD)) for d, j, s in zip(dist, near, spread)]


def encoded(img, fmt: str, **options) -> bytes:
    """A PIL image → its bytes as a ``fmt`` file (``options``: Pillow's save options, e.g. quality)."""
    import io

    bio = io.BytesIO()
    img.save(bio, fmt, **options)
    return bio.getvalue()


def real_non_flowers() -> dict[str, bytes]:
    """Two real non-flower photos anyone has after ``pip install`` (scikit-learn's china.jpg,
    matplotlib's grace_hopper.jpg) → {name: encoded bytes}."""
    from pathlib import Path

    import matplotlib
    from PIL import Image
    from sklearn.datasets import load_sample_image

    return {
        "china.jpg (scikit-learn: a pagoda)": encoded(Image.fromarray(load_sample_image("china.jpg")), "JPEG"),
        "grace_hopper.jpg (matplotlib: a portrait)": (Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").read_bytes(),
    }


def sample_photos() -> dict[str, bytes]:
    """``real_non_flowers``, a black photo and a 100000×1 stripe → {name: encoded bytes}."""
    from PIL import Image

    return real_non_flowers() | {
        "black 200×200": encoded(Image.new("RGB", (200, 200)), "PNG"),
        "100000×1 stripe": encoded(Image.new("RGB", (100000, 1), (90, 120, 40)), "PNG"),
    }


def measure(model_name: str | None = None) -> dict:
    """Flag rates of the shipped ``model_name`` (default: the map's featured model, ``featured_model``
    by kNN accuracy; SimCLR among the shipped models) from its precomputed layout: per class on the test photos,
    on one half of the test photos when the other half sets the threshold (an out-of-sample check of the
    1 %), and the verdicts on real non-flower photos (scikit-learn's china.jpg, matplotlib's
    grace_hopper.jpg), a black photo and a 100000×1 stripe, each through ``app.uploads.open_upload``."""
    from . import embedding, photos
    from .config import data_dir, models_dir
    from .inference import OnnxModel, featured_model, list_models
    from .uploads import open_upload

    idx = photos.index(data_dir())
    entries = list_models(models_dir())
    model_name = model_name or featured_model(entries, method="knn")
    entry = next(e for e in entries if e.name == model_name)
    lay = embedding.find(entry.path, entry.card, idx.key, idx.files)
    if lay is None:
        raise SystemExit(f"no precomputed layout for {model_name}: run `python -m app.precompute` first")
    tr, te = lay.train_idx, lay.test_idx
    check = NoveltyCheck.from_layout(lay)
    flagged = check.unlike(lay.features[te])
    perm = np.random.default_rng(0).permutation(len(te))
    half_a, half_b = te[perm[: len(te) // 2]], te[perm[len(te) // 2 :]]
    half = NoveltyCheck.fit(lay.features[tr], lay.features[half_a])

    samples = sample_photos()
    model = OnnxModel(entry.path)
    out_samples = {}
    for name, data in samples.items():
        photo = open_upload(name, data)
        u8 = model.prepare(photo.image)[None]
        v = judge(check, model.features(u8), u8)[0]
        out_samples[name] = {"flagged": v.flagged, "unlike": v.unlike, "flat": v.flat, "distance": round(v.distance, 4),
                             "test_flowers_further": round(v.further_share, 3), "nearest_training_photo": str(lay.files[tr[v.nearest]]),
                             "upload_notes": photo.notes}
    return {
        "model": model_name, "threshold": round(check.threshold, 4), "quantile": check.quantile,
        "test_flagged": int(flagged.sum()), "test_photos": int(len(te)),
        "per_class": {c: f"{int(flagged[lay.labels[te] == i].sum())} of {int((lay.labels[te] == i).sum())}" for i, c in enumerate(lay.classes)},
        "held_out_half_flagged": f"{int(half.unlike(lay.features[half_b]).sum())} of {len(half_b)} (threshold from the other half)",
        "samples": out_samples,
    }


if __name__ == "__main__":
    import json
    import sys

    for name in sys.argv[1:] or [None]:
        print(json.dumps(measure(name), indent=1, ensure_ascii=False))

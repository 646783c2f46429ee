"""Can any shipped encoder tell a non-flower photo from a flower? ``python -m app.novelty_study``.

The Few-shot lab flags a photo whose features are further from every training photo than 99 % of the
test flowers are (``app.novelty``). On the shipped models that check does not flag real non-flower
photos. This study asks whether another score, on any of the shipped encoders, would:

- **nearest training photo** (the app's check): cosine distance of centred pooled features;
- **Mahalanobis** (Lee et al., NeurIPS 2018): the squared distance to the nearest class mean of the
  training photos under their shared (tied) covariance, shrunk by 1e-3 · its mean variance so it is invertible;
- **rotation loss** (Hendrycks et al., NeurIPS 2019: a self-supervised task's loss as the novelty
  score): the rotation model's mean −log P(true turn) over a photo's four turns.

Each score of a photo is reported as the share of the 696 test flowers that score at least as high
(1.00 = as ordinary as any flower; a photo is flagged below 0.01). The photos: two real non-flower
photos anyone has after ``pip install`` (scikit-learn's china.jpg, matplotlib's grace_hopper.jpg)
and a real flower none of the models saw (scikit-learn's flower.jpg), which should NOT be flagged.
Features come from each model's precomputed layout (4-bit codes, ``app.embedding``); a photo's
features are put on the same grid. Writes ``reports/novelty-study.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np

from .config import REPO, data_dir, display, models_dir
from .novelty import NoveltyCheck, layout_grid

SHRINK = 1e-3  # covariance shrinkage, in units of the mean per-dimension variance


def study_photos() -> dict[str, bytes]:
    """{name: encoded bytes}: two non-flowers and one flower, from installed packages."""
    from pathlib import Path as P

    import matplotlib
    from PIL import Image
    from sklearn.datasets import load_sample_image

    def jpeg(a) -> bytes:
        bio = io.BytesIO()
        Image.fromarray(a).save(bio, "JPEG", quality=95)
        return bio.getvalue()

    return {"china.jpg (a pagoda)": jpeg(load_sample_image("china.jpg")),
            "grace_hopper.jpg (a portrait)": (P(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").read_bytes(),
            "flower.jpg (a flower; not flagging it is right)": jpeg(load_sample_image("flower.jpg"))}


def mahalanobis(train: np.ndarray, labels: np.ndarray):
    """Training features (R, D) and labels → a function (N, D) → (N,) squared Mahalanobis distance to
    the nearest class mean under the tied, shrunk covariance."""
    x = np.asarray(train, np.float64)
    classes = np.unique(labels)
    means = np.stack([x[labels == c].mean(0) for c in classes])
    r = x - means[np.searchsorted(classes, labels)]
    cov = r.T @ r / len(r)
    cov += SHRINK * np.trace(cov) / len(cov) * np.eye(len(cov))
    prec = np.linalg.inv(cov)

    def score(q: np.ndarray) -> np.ndarray:
        d = np.asarray(q, np.float64)[:, None, :] - means[None]
        return np.einsum("ncd,de,nce->nc", d, prec, d).min(1)

    return score


def share_at_least(calibration: np.ndarray, values: np.ndarray) -> list[float]:
    """For each value, the share of calibration scores ≥ it."""
    c = np.asarray(calibration)
    return [round(float((c >= v).mean()), 3) for v in np.asarray(values)]


def rotation_loss(model, images: list) -> np.ndarray:
    """PIL photos → (N,) the rotation model's mean −log P(true turn) over each photo's four turns."""
    from .inference import rotation_grid

    out = []
    for im in images:
        _, p = rotation_grid(model, model.prepare(im))
        out.append(float(-np.log(np.clip(np.diag(p), 1e-9, 1.0)).mean()))
    return np.asarray(out)


def run() -> dict:
    from . import embedding, photos
    from .inference import OnnxModel, list_models
    from .uploads import open_upload

    t0 = time.time()
    idx = photos.index(data_dir())
    shown = {k: open_upload(k, v).image for k, v in study_photos().items()}
    rows = []
    for entry in list_models(models_dir()):
        lay = embedding.find(entry.path, entry.card, idx.key, idx.files)
        if lay is None:
            continue
        tr, te = lay.train_idx, lay.test_idx
        model = OnnxModel(entry.path)
        check = NoveltyCheck.fit(lay.features[tr], lay.features[te], grid=layout_grid(lay))
        q = check.on_grid(np.concatenate([model.features(model.prepare(im)[None]) for im in shown.values()]))
        maha = mahalanobis(lay.features[tr], lay.labels[tr])
        rows.append({"model": entry.name, "score": "nearest training photo", "shares": share_at_least(check.calibration, check.distances(q))})
        rows.append({"model": entry.name, "score": "Mahalanobis", "shares": share_at_least(maha(lay.features[te]), maha(q))})
        if entry.name == "rotation":
            test_images = [photos.open_bundled(data_dir(), str(f)) for f in lay.files[te]]
            rows.append({"model": entry.name, "score": "rotation loss",
                         "shares": share_at_least(rotation_loss(model, test_images), rotation_loss(model, list(shown.values())))})
    return {"photos": list(shown), "test_photos": int(idx.is_test.sum()), "rows": rows, "flag_below": 0.01,
            "shrink": SHRINK, "seconds": round(time.time() - t0, 1), "command": "python -m app.novelty_study",
            "models_dir": display(models_dir()), "data_dir": display(data_dir())}


def markdown(r: dict) -> str:
    names = r["photos"]
    lines = ["# Does any encoder tell a non-flower from a flower?", "",
             f"Each cell: the share of the {r['test_photos']} test flowers that score at least as unusual as the photo "
             f"(flagged below {r['flag_below']}; 1.00 = as ordinary as any flower). Scores and photos: `app/novelty_study.py`.", "",
             "| model | score | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names)]
    for row in r["rows"]:
        cells = [f"**{s:.3f}**" if s < r["flag_below"] else f"{s:.2f}" for s in row["shares"]]
        lines.append(f"| {row['model']} | {row['score']} | " + " | ".join(cells) + " |")
    flagged = [(row["model"], row["score"], n) for row in r["rows"] for n, s in zip(names, row["shares"]) if s < r["flag_below"]]
    lines += ["", f"Flagged (share < {r['flag_below']}): " + ("; ".join(f"{n} by {m}'s {s}" for m, s, n in flagged) if flagged else "none") + ".",
              "", f"Made by `{r['command']}` in {r['seconds']} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.novelty_study", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "reports"), help="folder for novelty-study.json and .md")
    a = ap.parse_args(argv)
    r = run()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "novelty-study.json").write_text(json.dumps(r, indent=1, ensure_ascii=False) + "\n")
    (out / "novelty-study.md").write_text(markdown(r))
    print(markdown(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

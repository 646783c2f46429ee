"""Can any shipped encoder tell a non-flower photo from a flower? ``python -m app.novelty_study``.

The Few-shot lab flags a photo whose features are further from every training photo than 99 % of the
test flowers are (``app.novelty``). On the shipped models that check does not flag real non-flower
photos. This study asks whether another score, on any of the shipped encoders, would:

- **nearest training photo** (the app's check): cosine distance of centred pooled features;
- **Mahalanobis** (Lee et al., NeurIPS 2018): the squared distance to the nearest class mean of the
  training photos under their shared (tied) covariance, shrunk by 1e-3 · its mean variance so it is invertible;
- **rotation loss** (Hendrycks et al., NeurIPS 2019: a self-supervised task's loss as the novelty
  score): a model's mean −log P(true turn) over a photo's four turns, for every model with a rotation
  head (the rotation model and the multi-task model).

Each score of a photo is reported as the share of the 696 test flowers that score at least as high
(1.00 = as ordinary as any flower; a photo is flagged below 0.01). The photos: two real non-flower
photos anyone has after ``pip install`` (scikit-learn's china.jpg, matplotlib's grace_hopper.jpg)
and a real flower none of the models saw (scikit-learn's flower.jpg), which should NOT be flagged.
Features come from each model's precomputed layout (4-bit codes, ``app.embedding``); a photo's
features are put on the same grid. Writes ``reports/novelty-study.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .config import REPO, data_dir, display, models_dir
from .novelty import NoveltyCheck, encoded, real_non_flowers

SHRINK = 1e-3  # covariance shrinkage, in units of the mean per-dimension variance
FLOWER = "flower.jpg (scikit-learn: a flower; not flagging it is right)"


def study_photos() -> dict[str, bytes]:
    """{name: encoded bytes}: the two real non-flowers of ``app.novelty.real_non_flowers`` and one flower,
    from installed packages."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    return real_non_flowers() | {FLOWER: encoded(Image.fromarray(load_sample_image("flower.jpg")), "JPEG", quality=95)}


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
    """PIL photos → (N,) a model with a rotation head: its mean −log P(true turn) over each photo's four turns."""
    from .inference import rotation_grid

    out = []
    for im in images:
        _, p = rotation_grid(model, model.prepare(im))
        out.append(float(-np.log(np.clip(np.diag(p), 1e-9, 1.0)).mean()))
    return np.asarray(out)


def run(extra: list[Path] | None = None) -> dict:
    """Every score of every shipped model with a layout on ``study_photos`` and the ``extra`` photos
    (more non-flowers, e.g. scikit-image's sample photos) → the report's dict."""
    from . import embedding, photos
    from .inference import OnnxModel, list_models
    from .uploads import open_upload

    t0 = time.time()
    idx = photos.index(data_dir())
    given = study_photos() | {f"{Path(f).name} (extra)": Path(f).read_bytes() for f in extra or []}
    shown = {k: open_upload(k, v).image for k, v in given.items()}
    rows = []
    for entry in list_models(models_dir()):
        lay = embedding.find(entry.path, entry.card, idx.key, idx.files)
        if lay is None:
            continue
        tr, te = lay.train_idx, lay.test_idx
        model = OnnxModel(entry.path)
        check = NoveltyCheck.from_layout(lay)
        q = check.on_grid(np.concatenate([model.features(model.prepare(im)[None]) for im in shown.values()]))
        maha = mahalanobis(lay.features[tr], lay.labels[tr])
        rows.append({"model": entry.name, "score": "nearest training photo", "shares": share_at_least(check.calibration, check.distances(q))})
        rows.append({"model": entry.name, "score": "Mahalanobis", "shares": share_at_least(maha(lay.features[te]), maha(q))})
        if model.has_rotation_head:  # the rotation model, and a multi-task model with a rotation sub-head
            test_images = [photos.open_bundled(data_dir(), str(f)) for f in lay.files[te]]
            rows.append({"model": entry.name, "score": "rotation loss",
                         "shares": share_at_least(rotation_loss(model, test_images), rotation_loss(model, list(shown.values())))})
    cmd = "python -m app.novelty_study" + (" --extra " + " ".join(Path(f).name for f in extra) if extra else "")
    return {"photos": list(shown), "flower": FLOWER, "test_photos": int(idx.is_test.sum()), "rows": rows, "flag_below": 0.01,
            "shrink": SHRINK, "seconds": round(time.time() - t0, 1), "command": cmd,
            "models_dir": display(models_dir()), "data_dir": display(data_dir())}


def markdown(r: dict) -> str:
    """Per score: how many non-flowers it flags, how ordinary they look to it, and the flower's fate;
    then per photo: the app's own check and the best of all scores."""
    names, flag = r["photos"], r["flag_below"]
    odd = [i for i, n in enumerate(names) if n != r["flower"]]
    fl = names.index(r["flower"])
    lines = ["# Does any encoder tell a non-flower from a flower?", "",
             f"Each photo's score is turned into the share of the {r['test_photos']} test flowers that score at least as "
             f"unusual (1.00 = as ordinary as any flower); below {flag} the photo is flagged. {len(odd)} non-flower photos, "
             "and one real flower none of the models saw (scikit-learn's flower.jpg), which should not be flagged. "
             "Scores and photos: `app/novelty_study.py`.", "",
             f"| model | score | non-flowers flagged (of {len(odd)}) | their median share | the flower's share |",
             "|---|---|---:|---:|---:|"]
    for row in r["rows"]:
        sh = np.asarray(row["shares"])
        f = sh[fl]
        lines.append(f"| {row['model']} | {row['score']} | {int((sh[odd] < flag).sum())} | {float(np.median(sh[odd])):.2f} | "
                     + (f"**{f:.3f} (flagged)**" if f < flag else f"{f:.2f}") + " |")
    app_row = next((row for row in r["rows"] if row["model"] == "simclr" and row["score"] == "nearest training photo"), None)
    lines += ["", "Per photo: the app's check (SimCLR, nearest training photo) and the lowest share any of the scores gives it.", "",
              "| photo | the app's check | lowest of all scores | by |", "|---|---:|---:|---|"]
    for i, n in enumerate(names):
        best = min(r["rows"], key=lambda row: row["shares"][i])
        app_cell = f"{app_row['shares'][i]:.2f}" if app_row else "—"
        lines.append(f"| {n} | {app_cell} | {best['shares'][i]:.3f} | {best['model']}, {best['score']} |")
    lines += ["", f"Made by `{r['command']}` in {r['seconds']} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.novelty_study", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "reports"), help="folder for novelty-study.json and .md")
    ap.add_argument("--extra", nargs="*", default=[], help="more non-flower photos (files), e.g. scikit-image's sample photos")
    a = ap.parse_args(argv)
    missing = [f for f in a.extra if not Path(f).is_file()]
    if missing:
        ap.exit(2, f"--extra: no such file: {missing[0]} (give photo files, e.g. from scikit-image's skimage/data)\n")
    r = run([Path(f) for f in a.extra])
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "novelty-study.json").write_text(json.dumps(r, indent=1, ensure_ascii=False) + "\n")
    (out / "novelty-study.md").write_text(markdown(r))
    print(markdown(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

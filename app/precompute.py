"""Precompute what the Embedding map and the Few-shot lab read, so a map opens in about a second.

    python -m app.precompute                 # every model in models/ (or $PRETEXT_LAB_MODELS)
    python -m app.precompute rotation        # only these models
    python -m app.precompute --cache         # write to the app's cache folder instead of models/<name>/

For each model: features of every bundled photo, the UMAP layout of the test photos and the kNN
accuracy, in ``models/<name>/app_precomputed.npz`` (about 0.4 MB, features as 4-bit codes per dimension;
keyed by the sha256 of every model file and of the photos' split.csv, so a re-exported model or a
changed split is never shown stale).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import embedding, photos
from .config import cache_dir, data_dir, display, models_dir
from .inference import OnnxModel, list_models


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.precompute", description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("names", nargs="*", help="model folder names (default: every valid model)")
    ap.add_argument("--models", default=str(models_dir()), help="folder of model folders")
    ap.add_argument("--data", default=str(data_dir()), help="bundled photos (one folder per class, with split.csv)")
    ap.add_argument("--cache", action="store_true", help=f"write to the app cache ({cache_dir()}) instead of beside model.json")
    ap.add_argument("--force", action="store_true", help="recompute layouts that are already current (same model files, same photos)")
    a = ap.parse_args(argv)
    entries = list_models(a.models)
    if not entries:
        print(f"error: no model folders in {a.models}; export some first, e.g. `python -m ssl_train export --random-init --out {display(Path(a.models))}`", file=sys.stderr)
        return 2
    unknown = sorted(set(a.names) - {e.name for e in entries})
    if unknown:
        print(f"error: no model folder {', '.join(unknown)} in {a.models} (there are: {', '.join(e.name for e in entries)})", file=sys.stderr)
        return 2
    try:
        idx = photos.index(a.data)
    except photos.DataMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    status = 0
    for e in entries:
        if a.names and e.name not in a.names:
            continue
        if not e.ok:
            print(f"skip {e.name}: {e.error}", file=sys.stderr)
            status = 1
            continue
        paths = embedding.precomputed_paths(e.path, e.card, idx.key)
        target = paths[1] if a.cache else paths[0]
        if not a.force and embedding.is_current(target, embedding.model_key(e.card), idx.key):
            # same model files and photos give the same layout: keep the file (and git history) as it is
            print(json.dumps({"model": e.name, "file": str(target), "kept": "already current (--force recomputes)"}), flush=True)
            continue
        t0 = time.time()
        model = OnnxModel(e.path, e.card)
        layout = embedding.build(model, a.data, progress=lambda s, n=e.name: print(f"{n}: {s}", flush=True))
        out = embedding.save(layout, target)
        print(json.dumps({
            "model": e.name, "file": str(out), "bytes": out.stat().st_size, "photos": int(len(layout.files)),
            "map_photos": int(len(layout.map_idx)), "method": layout.method, "knn_accuracy": round(layout.knn_accuracy, 4),
            "seconds": round(time.time() - t0, 1), "parts": layout.meta.get("seconds"),
        }), flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())

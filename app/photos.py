"""The bundled photos (``data/flowers`` by default): their index, decoded arrays and thumbnails.

``index`` reads only ``split.csv`` (fast, torch-free). ``decoded`` goes through the training
package (``ssl_train.data.load_split_data``), so the app sees exactly the pixels, labels and split
that training and the protocol saw, from the same on-disk cache.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ssl_train.images import BadImage, open_rgb, square_resize

SPLIT_NAME = "split.csv"
DEFAULT_PICKS_PER_CLASS = 5  # bundled photos offered on the explorer, from the test split


class DataMissing(ValueError):
    """The bundled photo folder or its split file is missing/unreadable (message: one line + fix)."""


@dataclass(frozen=True)
class PhotoIndex:
    root: Path
    classes: tuple[str, ...]
    files: tuple[str, ...]  # relative to root, '/' separated, in split.csv order
    labels: np.ndarray  # (N,) int64 into classes
    is_test: np.ndarray  # (N,) bool
    key: str  # sha256 of split.csv: identifies this photo set in precomputed files

    def picks(self, per_class: int = DEFAULT_PICKS_PER_CLASS) -> list[str]:
        """A few test-split photos per class (the first in split order), interleaved by class."""
        by = [[f for f, y, t in zip(self.files, self.labels, self.is_test) if t and y == c][:per_class] for c in range(len(self.classes))]
        return [g[i] for i in range(per_class) for g in by if i < len(g)]

    def class_of(self, file: str) -> str:
        try:
            return self.classes[int(self.labels[self.files.index(file)])]
        except ValueError:
            return file.split("/", 1)[0]


def index(root: str | Path) -> PhotoIndex:
    """Read ``<root>/split.csv`` (file, class, split). ``DataMissing`` if absent or malformed."""
    root = Path(root)
    path = root / SPLIT_NAME
    if not root.is_dir():
        raise DataMissing(f"photo folder {root} does not exist; set PRETEXT_LAB_DATA or restore data/flowers")
    if not path.is_file():
        raise DataMissing(f"{path} is missing; run `python -m ssl_train pretrain --data {root} --epochs 1` once to make the split, or restore it from git")
    raw = path.read_bytes()
    try:
        rows = list(csv.DictReader(raw.decode("utf-8").splitlines()))
        files = tuple(r["file"] for r in rows)
        names = [r["class"] for r in rows]
        is_test = np.asarray([r["split"] == "test" for r in rows], bool)
    except (KeyError, UnicodeDecodeError, csv.Error) as e:
        raise DataMissing(f"{path} is not a split file (file,class,split,group): {type(e).__name__}; restore it from git") from None
    if not files:
        raise DataMissing(f"{path} lists no photos; restore it from git")
    classes = tuple(sorted(set(names)))
    labels = np.asarray([classes.index(n) for n in names], np.int64)
    return PhotoIndex(root, classes, files, labels, is_test, hashlib.sha256(raw).hexdigest())


def decoded(root: str | Path, image_size: int):
    """``ssl_train.data.SplitData`` of the bundled photos at ``image_size`` (decoded once, cached on
    disk by the training package)."""
    from ssl_train.data import DataConfig, load_split_data

    return load_split_data(DataConfig(root=str(root), image_size=int(image_size)))


def thumbnail(root: str | Path, file: str, size: int = 192, square: bool = False) -> Image.Image | None:
    """A bundled photo (EXIF applied) with its long side ≤ ``size`` — or, ``square``, its centre
    ``size``×``size`` crop (what the models see; rows of thumbnails line up); None if unreadable."""
    path = (Path(root) / file).resolve()
    if Path(root).resolve() not in path.parents:
        return None
    try:
        img = open_rgb(path)
    except (BadImage, OSError):
        return None
    if square:
        return square_resize(img, size)
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    return img


def open_bundled(root: str | Path, file: str) -> Image.Image:
    """A bundled photo as RGB (raises BadImage / OSError)."""
    path = (Path(root) / file).resolve()
    if Path(root).resolve() not in path.parents:
        raise BadImage(f"{file} is not inside {root}")
    return open_rgb(path)

"""Photos on disk → a decoded uint8 cache, the saved train/test split, and labelled subsets.

- ``load_dataset`` scans an ImageFolder directory (``<root>/<class>/<photo>``), decodes every photo
  once to ``(N, 3, S, S)`` uint8 at the training resolution and keeps a perceptual hash of each.
  Unreadable files are skipped and listed in one warning.
- ``load_or_make_split`` reads the split file (``<root>/split.csv`` by default) or makes it once:
  stratified by class, deterministic, near-duplicates (same photo at two sizes, burst shots) kept on
  one side. Every reported result uses that file's test photos.
- ``labelled_subset`` draws the labelled fraction of the training split: stratified, seeded, nested
  across fractions, at least one photo per class.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .model_files import sha256_file
from .images import IMAGE_SUFFIXES, BadImage, dhash, open_rgb, square_resize, to_uint8_chw
from .paths import REPO

DEFAULT_DATA = REPO / "data" / "flowers"
FRACTIONS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class DataConfig:
    """Where the photos are and how they are split. ``image_size`` is the side in pixels of the
    square decoded cache (the encoder's input size)."""

    root: str = str(DEFAULT_DATA)
    image_size: int = 96
    split_file: str = ""  # "" → <root>/split.csv
    test_fraction: float = 0.2
    split_seed: int = 0
    near_dup_bits: int = 32  # of 256 dHash bits; see images.dhash

    def __post_init__(self) -> None:
        if not 16 <= self.image_size <= 512:
            raise UserError(f"--image-size {self.image_size} is out of range; use 16..512 (default 96)")
        if not 0.0 < self.test_fraction < 1.0:
            raise UserError(f"--test-fraction {self.test_fraction} must be in (0, 1), e.g. 0.2")

    @property
    def split_path(self) -> Path:
        return Path(self.split_file) if self.split_file else Path(self.root) / "split.csv"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Dataset:
    """Decoded photos. ``images`` is (N, 3, S, S) uint8 on the CPU; ``labels`` (N,) int64."""

    root: Path
    classes: list[str]
    files: list[str]  # relative to root, '/' separated
    labels: np.ndarray
    images: torch.Tensor
    hashes: np.ndarray  # (N, 256) bool
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)


def scan_image_folder(root: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    """List ``<root>/<class>/<photo>`` files. Returns (classes, relative files, labels).

    Raises ``UserError`` for a missing or empty directory or a class folder without photos.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data directory {root} does not exist; pass --data DIR with one sub-folder of photos per class")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise UserError(f"data directory {root} has no class folders; put photos in {root}/<class name>/")
    classes, files, labels = [], [], []
    for c in class_dirs:
        photos = sorted(
            p for p in c.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if not photos:
            raise UserError(f"class folder {c} has no photos ({', '.join(IMAGE_SUFFIXES)}); add photos or remove the folder")
        classes.append(c.name)
        for p in photos:
            files.append(p.relative_to(root).as_posix())
            labels.append(len(classes) - 1)
    if len(classes) < 2:
        raise UserError(f"data directory {root} has only one class folder ({classes[0]}); a classifier needs at least two")
    return classes, files, np.asarray(labels, dtype=np.int64)


def _decode_one(path: Path, size: int) -> tuple[np.ndarray, np.ndarray] | str:
    try:
        img = open_rgb(path)
    except BadImage as e:
        return str(e)
    return to_uint8_chw(square_resize(img, size)), dhash(img)


def _cache_dir() -> Path:
    return Path(os.environ.get("PRETEXT_LAB_CACHE", Path.home() / ".cache" / "pretext-lab"))


def _cache_key(root: Path, files: list[str], size: int) -> str:
    h = hashlib.sha256(f"v1|{root.resolve()}|{size}".encode())
    for f in files:
        st = (root / f).stat()
        h.update(f"|{f}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def load_dataset(cfg: DataConfig, use_cache: bool = True) -> Dataset:
    """Scan and decode every photo under ``cfg.root`` once (cached on disk under
    ``$PRETEXT_LAB_CACHE``, default ``~/.cache/pretext-lab``, keyed by file names, sizes and times)."""
    root = Path(cfg.root)
    classes, files, labels = scan_image_folder(root)
    key = _cache_key(root, files, cfg.image_size)
    cache = _cache_dir() / f"decoded-{key}"
    if use_cache and (cache / "meta.json").is_file():
        try:
            meta = json.loads((cache / "meta.json").read_text())
            images = np.load(cache / "images.npy", allow_pickle=False)
            hashes = np.load(cache / "hashes.npy", allow_pickle=False)
            kept = meta["kept"]
            skipped = [tuple(s) for s in meta["skipped"]]
            ds = Dataset(root, classes, [files[i] for i in kept], labels[kept], torch.from_numpy(images), hashes, skipped)
            _warn_skipped(ds)
            return ds
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda f: _decode_one(root / f, cfg.image_size), files))
    kept = [i for i, r in enumerate(results) if not isinstance(r, str)]
    skipped = [(files[i], r) for i, r in enumerate(results) if isinstance(r, str)]
    if not kept:
        raise UserError(f"no readable photos under {root} ({len(skipped)} files failed to decode); check the files")
    images = np.stack([results[i][0] for i in kept])  # type: ignore[index]
    hashes = np.stack([results[i][1] for i in kept])  # type: ignore[index]
    ds = Dataset(root, classes, [files[i] for i in kept], labels[kept], torch.from_numpy(images), hashes, skipped)
    for c, name in enumerate(classes):
        if not (ds.labels == c).any():
            raise UserError(f"class folder {root / name} has no readable photos; add photos or remove the folder")
    if use_cache:
        try:
            tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
            tmp.mkdir(parents=True, exist_ok=True)
            np.save(tmp / "images.npy", images)
            np.save(tmp / "hashes.npy", hashes)
            (tmp / "meta.json").write_text(json.dumps({"kept": kept, "skipped": skipped}))
            if not cache.exists():
                os.replace(tmp, cache)
        except OSError:
            pass  # caching is an optimisation only (another process may have just written it)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _warn_skipped(ds)
    return ds


def _warn_skipped(ds: Dataset) -> None:
    if ds.skipped:
        listing = "; ".join(f"{f}: {why}" for f, why in ds.skipped[:20])
        more = f" (and {len(ds.skipped) - 20} more)" if len(ds.skipped) > 20 else ""
        warnings.warn(f"skipped {len(ds.skipped)} unreadable file(s) under {ds.root}: {listing}{more}", stacklevel=2)


def near_duplicate_groups(hashes: np.ndarray, max_bits: int) -> np.ndarray:
    """Group photos whose hashes differ in at most ``max_bits`` bits (transitively, union-find).

    ``hashes`` (N, B) bool → group id per photo (N,) int64, ids are the smallest member index.
    """
    n = len(hashes)
    h = hashes.astype(np.float32)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    step = 512  # bounded memory: (step × N) distance blocks
    for s in range(0, n, step):
        blk = h[s : s + step]
        dist = blk @ (1.0 - h).T + (1.0 - blk) @ h.T  # Hamming distance
        rows, cols = np.nonzero(dist <= max_bits)
        for r, c in zip(rows + s, cols):
            if c > r:
                a, b = find(r), find(c)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return np.asarray([find(i) for i in range(n)], dtype=np.int64)


def make_split(labels: np.ndarray, groups: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Stratified group split → bool mask (N,), True for test.

    Whole near-duplicate groups go to one side; a group counts for the class most of its photos
    have. Per class, groups in a seeded random order fill the test side up to
    ``round(test_fraction × n_class)`` photos. Every class keeps ≥ 1 photo on each side.
    """
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(labels), dtype=bool)
    group_ids = np.unique(groups)
    members = {g: np.nonzero(groups == g)[0] for g in group_ids}
    owner = {g: int(np.bincount(labels[m]).argmax()) for g, m in members.items()}
    for c in np.unique(labels):
        n_c = int((labels == c).sum())
        if n_c < 2:
            raise UserError(f"class {c} has {n_c} photo; each class needs at least 2 (one for train, one for test)")
        target = max(1, round(test_fraction * n_c))
        gs = np.array([g for g in group_ids if owner[g] == c])
        gs = gs[rng.permutation(len(gs))]
        taken = 0
        for g in gs:
            if taken >= target:
                break
            if taken + len(members[g]) > target and taken > 0:
                continue
            is_test[members[g]] = True
            taken += len(members[g])
        if taken >= n_c:
            raise UserError(f"class {c} cannot keep a training photo with --test-fraction {test_fraction}; lower it")
    return is_test


SPLIT_HEADER = ["file", "class", "split", "group"]


def load_or_make_split(ds: Dataset, cfg: DataConfig) -> np.ndarray:
    """The fixed split for ``ds`` → bool mask (N,), True for test.

    Reads ``cfg.split_path`` if it exists (and checks it covers every photo); otherwise makes the
    split and writes it there (temporary file, then rename).
    """
    path = cfg.split_path
    if path.is_file():
        with open(path, newline="") as f:
            rows = {r["file"]: r for r in csv.DictReader(f)}
        missing = [f for f in ds.files if f not in rows]
        if missing:
            raise UserError(
                f"split file {path} does not list {len(missing)} photo(s) (e.g. {missing[0]}); "
                f"pass --split NEW.csv to make a new split, or delete {path} (results will no longer be comparable)"
            )
        bad = [f for f in ds.files if rows[f]["split"] not in ("train", "test")]
        if bad:
            raise UserError(f"split file {path} has a split other than train/test for {bad[0]}; regenerate it")
        return np.asarray([rows[f]["split"] == "test" for f in ds.files])
    groups = near_duplicate_groups(ds.hashes, cfg.near_dup_bits)
    is_test = make_split(ds.labels, groups, cfg.test_fraction, cfg.split_seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a per-process temporary name: under torchrun every rank may make the (identical) split at once
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(SPLIT_HEADER)
        for i, fname in enumerate(ds.files):
            w.writerow([fname, ds.classes[ds.labels[i]], "test" if is_test[i] else "train", ds.files[groups[i]]])
    os.replace(tmp, path)
    return is_test


def check_fraction(fraction: float) -> None:
    if not 0.0 < fraction <= 1.0:
        raise UserError(f"labelled fraction {fraction} is outside (0, 1]; use e.g. 0.1 for 10% of the training labels")


def labelled_subset(train_idx: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices (into the dataset) of the labelled subset: per class the first
    ``max(1, round(fraction × n_class))`` of a per-(seed, class) permutation of that class's training
    photos. Prefixes of one permutation, so a seed's smaller fractions are subsets of its larger ones.
    Returned sorted.
    """
    check_fraction(fraction)
    train_idx = np.sort(np.asarray(train_idx))
    out = []
    for c in np.unique(labels[train_idx]):
        idx = train_idx[labels[train_idx] == c]
        perm = np.random.default_rng([seed, int(c)]).permutation(len(idx))
        k = max(1, int(round(fraction * len(idx))))
        out.append(idx[perm[:k]])
    return np.sort(np.concatenate(out))


@dataclass
class SplitData:
    """A dataset with its fixed split: what every command works on."""

    ds: Dataset
    is_test: np.ndarray
    cfg: DataConfig

    @property
    def train_idx(self) -> np.ndarray:
        return np.nonzero(~self.is_test)[0]

    @property
    def test_idx(self) -> np.ndarray:
        return np.nonzero(self.is_test)[0]

    @property
    def split_sha256(self) -> str:
        return sha256_file(self.cfg.split_path)


def load_split_data(cfg: DataConfig) -> SplitData:
    ds = load_dataset(cfg)
    return SplitData(ds, load_or_make_split(ds, cfg), cfg)


def check_same_photos(other: SplitData, like: SplitData) -> None:
    """One-line ``UserError`` unless ``other`` (the data decoded at another size) holds the very photos
    and split of ``like``: a photo that decodes at one size and not at another would shift every row."""
    if other.split_sha256 != like.split_sha256 or list(other.ds.files) != list(like.ds.files):
        raise UserError(f"the photos decoded at {other.cfg.image_size} px are not those at {like.cfg.image_size} px (another split or a photo "
                        "that failed to decode at one size); pass the same --data and --split")


def decoded_at(data: SplitData, image_size: int) -> SplitData:
    """``data`` itself, or the same photos and split decoded at ``image_size`` px (checked)."""
    if int(image_size) == data.cfg.image_size:
        return data
    other = load_split_data(replace(data.cfg, image_size=int(image_size)))
    check_same_photos(other, data)
    return other


VAL_FRACTION = 0.2
VAL_SEED = 1  # the test split uses split_seed 0; a different stream for the second split


def validation_split(data: SplitData, val_fraction: float = VAL_FRACTION, seed: int = VAL_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Training photos → (fit indices, validation indices) into the dataset, disjoint, both sorted;
    whole near-duplicate groups on one side, every class on both. Test photos are in neither."""
    tr = data.train_idx
    groups = near_duplicate_groups(data.ds.hashes[tr], data.cfg.near_dup_bits)
    is_val = make_split(data.ds.labels[tr], groups, val_fraction, seed)
    return np.sort(tr[~is_val]), np.sort(tr[is_val])

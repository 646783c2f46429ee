"""Data: scanning, robust decoding, the fixed split, near-duplicates, labelled fractions."""
from __future__ import annotations

import csv
import json
import io
import shutil
import warnings
from collections import Counter, defaultdict

import numpy as np
import pytest
from PIL import Image

from ssl_train.data import (
    DataConfig,
    FRACTIONS,
    labelled_subset,
    load_dataset,
    load_split_data,
    load_or_make_split,
    make_split,
    near_duplicate_groups,
    scan_image_folder,
    validation_split,
)
from ssl_train.errors import UserError
from ssl_train.images import BadImage, open_rgb

from ..conftest import FLOWERS, copy_photos


def _split_rows():
    with open(FLOWERS / "split.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_split_file__covers_every_bundled_photo_exactly_once():
    rows = _split_rows()
    files = [r["file"] for r in rows]
    on_disk = sorted(p.relative_to(FLOWERS).as_posix() for p in FLOWERS.glob("*/*.jpg"))
    assert len(files) == len(set(files)) == len(on_disk) == 3479
    assert sorted(files) == on_disk
    assert {r["split"] for r in rows} == {"train", "test"}


def test_split_file__stratified_20_percent_per_class():
    per = defaultdict(Counter)
    for r in _split_rows():
        per[r["class"]][r["split"]] += 1
    for cls, c in per.items():
        share = c["test"] / (c["test"] + c["train"])
        assert 0.19 <= share <= 0.21, (cls, share)


def test_split__near_dups_same_side():
    rows = {r["file"]: r for r in _split_rows()}
    a, b = "daisy/10466290366_cc72e33532.jpg", "daisy/10994032453_ac7f8d9e2e.jpg"  # named in the data README
    assert rows[a]["group"] == rows[b]["group"]
    assert rows[a]["split"] == rows[b]["split"]
    sides = defaultdict(set)
    for r in rows.values():
        sides[r["group"]].add(r["split"])
    assert all(len(s) == 1 for s in sides.values())
    assert sum(1 for g, n in Counter(r["group"] for r in rows.values()).items() if n > 1) >= 10


def test_split__regenerating_gives_the_saved_file(tmp_path):
    """The saved split is exactly what the code makes: anyone can check and reproduce it."""
    ds = load_dataset(DataConfig())
    load_or_make_split(ds, DataConfig(split_file=str(tmp_path / "s.csv")))
    assert (tmp_path / "s.csv").read_bytes() == (FLOWERS / "split.csv").read_bytes()


def test_split__deterministic_and_disjoint(tiny_folder, tmp_path):
    cfg1 = DataConfig(root=str(tiny_folder), image_size=32, split_file=str(tmp_path / "a.csv"))
    cfg2 = DataConfig(root=str(tiny_folder), image_size=32, split_file=str(tmp_path / "b.csv"))
    ds = load_dataset(cfg1)
    m1, m2 = load_or_make_split(ds, cfg1), load_or_make_split(ds, cfg2)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert np.array_equal(m1, m2)
    for c in range(3):  # each class on both sides
        assert m1[ds.labels == c].any() and (~m1[ds.labels == c]).any()
    # re-reading the saved file gives the same mask
    assert np.array_equal(load_or_make_split(ds, cfg1), m1)


def test_split__resized_copy_lands_with_its_original(tmp_path):
    root = copy_photos(tmp_path / "f", per_class=12)
    src = sorted((root / "rose").glob("*.jpg"))[0]
    img = Image.open(src)
    img.resize((img.width * 2, img.height * 2)).save(root / "rose" / "zz_copy_big.jpg", quality=80)
    cfg = DataConfig(root=str(root), image_size=32, split_file=str(tmp_path / "s.csv"))
    ds = load_dataset(cfg)
    groups = near_duplicate_groups(ds.hashes, cfg.near_dup_bits)
    i, j = ds.files.index(f"rose/{src.name}"), ds.files.index("rose/zz_copy_big.jpg")
    assert groups[i] == groups[j]
    for seed in range(5):
        mask = make_split(ds.labels, groups, 0.3, seed)
        assert mask[i] == mask[j]


def test_near_duplicate_groups__distinct_photos_stay_apart():
    rng = np.random.default_rng(0)
    h = rng.random((50, 256)) < 0.5
    groups = near_duplicate_groups(h, 32)
    assert len(np.unique(groups)) == 50
    h2 = h.copy()
    h2[7] = h[3]
    h2[7, :5] = ~h2[7, :5]  # 5 bits off: a near duplicate of 3
    g2 = near_duplicate_groups(h2, 32)
    assert g2[7] == g2[3] and len(np.unique(g2)) == 49


def test_split_file__new_photo_not_listed_is_an_error(tiny_folder, tmp_path):
    root = tmp_path / "f"
    shutil.copytree(tiny_folder, root)
    cfg = DataConfig(root=str(root), image_size=32, split_file=str(tmp_path / "s.csv"))
    load_or_make_split(load_dataset(cfg), cfg)
    before = (tmp_path / "s.csv").read_bytes()
    shutil.copy(FLOWERS / "sunflower" / sorted(p.name for p in (FLOWERS / "sunflower").iterdir())[0], root / "daisy" / "new.jpg")
    with pytest.raises(UserError, match="does not list 1 photo"):
        load_or_make_split(load_dataset(cfg), cfg)
    assert (tmp_path / "s.csv").read_bytes() == before  # nothing overwritten


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_fractions__stratified_with_one_per_class(tiny_data, fraction):
    y = tiny_data.ds.labels
    sub = labelled_subset(tiny_data.train_idx, y, fraction, seed=0)
    assert set(sub) <= set(tiny_data.train_idx)
    counts = np.bincount(y[sub], minlength=3)
    assert (counts >= 1).all()
    n_train = np.bincount(y[tiny_data.train_idx], minlength=3)
    assert np.all(np.abs(counts - np.maximum(1, np.round(fraction * n_train))) <= 0)


def test_fractions__nested_per_seed_on_real_split():
    ds = load_dataset(DataConfig())
    mask = load_or_make_split(ds, DataConfig())
    train = np.nonzero(~mask)[0]
    for seed in (0, 1, 2):
        subs = [set(labelled_subset(train, ds.labels, f, seed)) for f in FRACTIONS]
        assert all(a <= b for a, b in zip(subs, subs[1:]))
        assert len(subs[-1]) == len(train)
        ten = labelled_subset(train, ds.labels, 0.1, seed)
        per = np.bincount(ds.labels[ten]) / np.bincount(ds.labels[train])
        assert np.allclose(per, 0.1, atol=0.005)
    a, b = labelled_subset(train, ds.labels, 0.1, 0), labelled_subset(train, ds.labels, 0.1, 1)
    assert not np.array_equal(a, b)
    assert np.array_equal(a, labelled_subset(train, ds.labels, 0.1, 0))


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_fractions__outside_0_1_refused(tiny_data, fraction):
    with pytest.raises(UserError, match="outside"):
        labelled_subset(tiny_data.train_idx, tiny_data.ds.labels, fraction, 0)


def test_load__corrupt_photos_skipped_and_listed_once(tiny_folder, tmp_path):
    root = tmp_path / "f"
    shutil.copytree(tiny_folder, root)
    good = next((root / "rose").glob("*.jpg")).read_bytes()
    (root / "rose" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "rose" / "notes.jpg").write_text("this is not a photo")
    (root / "tulip" / "empty.png").write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(DataConfig(root=str(root), image_size=32))
    msgs = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert len(msgs) == 1
    assert "skipped 3" in msgs[0] and "truncated.jpg" in msgs[0] and "notes.jpg" in msgs[0] and "empty.png" in msgs[0]
    assert len(ds) == 30 and not any(f.endswith(("truncated.jpg", "notes.jpg", "empty.png")) for f in ds.files)
    assert ds.images.shape == (30, 3, 32, 32)


def test_open_rgb__every_mode_becomes_rgb():
    base = Image.open(next((FLOWERS / "tulip").glob("*.jpg"))).convert("RGB")
    variants = {
        "L": base.convert("L"),
        "CMYK": base.convert("CMYK"),
        "RGBA": base.convert("RGBA"),
        "P": base.convert("P"),
        "LA": base.convert("LA"),
        "I;16": Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257)),
    }
    for mode, img in variants.items():
        buf = io.BytesIO()
        img.save(buf, format="PNG" if mode != "CMYK" else "JPEG")
        out = open_rgb(buf.getvalue())
        assert out.mode == "RGB" and out.size == base.size, mode
    sixteen = np.asarray(open_rgb(_png(variants["I;16"])), dtype=np.int32)[..., 0]
    assert abs(sixteen.astype(float).mean() - np.asarray(base.convert("L")).mean()) < 1.0  # rescaled, not clipped


def _png(img):
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_open_rgb__exif_orientation_applied():
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif, quality=95)
    out = np.asarray(open_rgb(buf.getvalue()))
    assert out.shape == (40, 20, 3)
    assert out[2, 10, 0] > 200 and out[-3, 10, 0] < 60  # red is now on top


def test_open_rgb__non_image_and_bomb_give_one_line():
    with pytest.raises(BadImage, match="not a readable image") as e:
        open_rgb(b"%PDF-1.4 not an image")
    assert "\n" not in str(e.value)
    with pytest.raises(BadImage, match="pixel"):
        open_rgb(_png(Image.new("L", (300, 300))), max_pixels=10_000)


def test_scan__missing_empty_and_photo_less_folders(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        scan_image_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no class folders"):
        scan_image_folder(tmp_path / "empty")
    root = copy_photos(tmp_path / "f", classes=("daisy",), per_class=3)
    (root / "rose").mkdir()
    (root / "rose" / "readme.txt").write_text("x")
    with pytest.raises(UserError, match="rose has no photos"):
        scan_image_folder(root)


def test_load__class_of_only_corrupt_files_is_an_error(tmp_path):
    root = copy_photos(tmp_path / "f", classes=("daisy", "rose"), per_class=3)
    (root / "tulip").mkdir()
    (root / "tulip" / "bad.jpg").write_text("nope")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UserError, match="tulip has no readable photos"):
            load_dataset(DataConfig(root=str(root), image_size=32))


def test_split__class_with_one_photo_refused():
    labels = np.array([0, 0, 0, 1])
    with pytest.raises(UserError, match="at least 2"):
        make_split(labels, np.arange(4), 0.2, 0)


def test_validation_split__disjoint_inside_train_every_class_near_dups_same_side(tmp_path):
    folder = copy_photos(tmp_path / "flowers", per_class=12)
    for c in ("daisy", "rose", "tulip"):  # an exact copy of each class's first photo: a near-duplicate pair
        first = sorted((folder / c).glob("*.jpg"))[0]
        shutil.copy(first, first.with_name("copy_" + first.name))
    data = load_split_data(DataConfig(root=str(folder), image_size=32, split_file=str(tmp_path / "split.csv")))
    fit, val = validation_split(data)
    assert len(val) > 0 and not set(fit) & set(val)
    assert set(fit) | set(val) == set(data.train_idx)  # every training photo, no test photo
    labels = data.ds.labels
    assert set(labels[fit]) == set(labels[val]) == set(labels[data.train_idx])
    side = {i: "fit" for i in fit} | {i: "val" for i in val}
    checked = 0
    for c in ("daisy", "rose", "tulip"):
        first = sorted(f for f in data.ds.files if f.startswith(c + "/") and not f.split("/")[1].startswith("copy_"))[0]
        a, b = data.ds.files.index(first), data.ds.files.index(first.replace("/", "/copy_"))
        if not data.is_test[a]:
            assert side[a] == side[b], first
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("size", [(100_000, 1), (1, 1_000_000), (961, 96)])
def test_load__a_strip_is_refused_from_its_header_and_memory_stays_small(tiny_folder, tmp_path, size):
    import io
    import resource

    root = tmp_path / "f"
    shutil.copytree(tiny_folder, root)
    buf = io.BytesIO()
    Image.new("L", size, 128).save(buf, "PNG", optimize=True)
    (root / "rose" / "strip.png").write_bytes(buf.getvalue())
    assert len(buf.getvalue()) < 5_000  # a few hundred bytes on disk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(DataConfig(root=str(root), image_size=32), use_cache=False)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert [f for f, _ in ds.skipped] == ["rose/strip.png"] and "a strip rather than a photo" in ds.skipped[0][1]
    assert any("strip.png" in str(w.message) for w in caught)
    assert grown_mb < 300, grown_mb  # decoding it would have taken gigabytes


def test_pretrain__skipped_photos_are_listed_in_the_summary(tiny_folder, tmp_path, small_encoder):
    from ssl_train.tasks import get_task
    from ssl_train.data import load_split_data
    from ssl_train.train import TrainConfig, pretrain

    root = tmp_path / "f"
    shutil.copytree(tiny_folder, root)
    (root / "rose" / "notes.jpg").write_text("this is not a photo")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_split_data(DataConfig(root=str(root), image_size=32, split_file=str(tmp_path / "split.csv")))
    s = pretrain(get_task("rotation"), data, tmp_path / "run", small_encoder, TrainConfig(epochs=1, batch_size=8, device="cpu"), progress=False)
    assert s["skipped_files"][0]["file"] == "rose/notes.jpg" and "not a readable image" in s["skipped_files"][0]["why"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["skipped_files"] == s["skipped_files"]

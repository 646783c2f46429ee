"""Shared fixtures: small ImageFolders cut from the real bundled photos."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
FLOWERS = REPO / "data" / "flowers"

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Decoded-image caches of tests go to a temporary folder, never the user's cache."""
    monkeypatch.setenv("PRETEXT_LAB_CACHE", str(tmp_path_factory.getbasetemp() / "decode-cache"))


def copy_photos(dest: Path, classes=("daisy", "rose", "tulip"), per_class: int = 10) -> Path:
    """Copy the first ``per_class`` real photos of each class into ``dest/<class>/``."""
    for c in classes:
        (dest / c).mkdir(parents=True, exist_ok=True)
        for p in sorted((FLOWERS / c).glob("*.jpg"))[:per_class]:
            shutil.copy(p, dest / c / p.name)
    return dest


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    """3 classes × 10 real flower photos (read-only by convention: copy it to modify)."""
    return copy_photos(tmp_path_factory.mktemp("tiny") / "flowers")


@pytest.fixture
def tiny_data(tiny_folder, tmp_path):
    """SplitData over ``tiny_folder`` at 32 px with its split file in tmp_path."""
    from ssl_train.data import DataConfig, load_split_data

    return load_split_data(DataConfig(root=str(tiny_folder), image_size=32, split_file=str(tmp_path / "split.csv")))


@pytest.fixture
def small_encoder():
    from ssl_train.encoders import EncoderConfig

    return EncoderConfig(widths=(8, 16, 16, 32), blocks=(1, 1, 1, 1))

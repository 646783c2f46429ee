"""The encoders shipped in models/: every file matches its card, loads in onnxruntime, and runs on
real photos exactly as PyTorch does. These tests read the repository's models/ (nothing is written)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from ssl_train.export import PARITY_TOL, load_photos, parity_check
from ssl_train.model_files import HEAD_ONNX_NAME, ONNX_NAME, sha256_file, verify_model_dir

from ..conftest import FLOWERS, REPO

MODELS = REPO / "models"
SHIPPED = sorted(p.name for p in MODELS.iterdir() if (p / "model.json").is_file()) if MODELS.is_dir() else []
BUDGET_MB = 30.0


def _photos(size: int) -> np.ndarray:
    files = [sorted((FLOWERS / c).glob("*.jpg"))[-1] for c in ("daisy", "rose", "tulip")]
    return load_photos(files, size)


def test_models__every_core_task_and_the_reference_are_shipped():
    assert {"rotation", "jigsaw", "colorization", "random_init"} <= set(SHIPPED), f"models/ holds {SHIPPED}"


def test_models__whole_folder_within_the_size_budget():
    total = sum(p.stat().st_size for p in MODELS.rglob("*") if p.is_file())
    assert total / 1e6 <= BUDGET_MB, f"models/ is {total / 1e6:.1f} MB > {BUDGET_MB} MB"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model__files_match_card_and_run_in_onnxruntime(name):
    d = MODELS / name
    card = verify_model_dir(d)  # sha256 of every file, or ModelFileError naming the bad one
    assert card["task"] == ("random_init" if name == "random_init" else name)
    size = card["input"]["image_size"]
    assert card["normalization"]["colour_space"] == "RGB" and len(card["normalization"]["mean"]) == 3
    assert card["feature_output"] in card["output_names"] and card["input_name"] == "input"
    for key in ("encoder", "epochs", "wall_seconds", "metrics", "files"):
        assert key in card, key
    if name != "random_init":
        assert card["split_sha256"] == sha256_file(FLOWERS / "split.csv"), "trained on another split than data/flowers/split.csv"
        assert card["trained_on"] == "train split of data/flowers only" and card["finished"] and card["device"]
    x = _photos(size)
    sess = ort.InferenceSession(str(d / ONNX_NAME), providers=["CPUExecutionProvider"])
    mean = np.asarray(card["normalization"]["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(card["normalization"]["std"], np.float32).reshape(1, 3, 1, 1)
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": (x.astype(np.float32) / 255.0 - mean) / std})))
    feats = outs[card["feature_output"]]
    assert feats.shape == (len(x), card["feature_dim"]) and np.isfinite(feats).all()
    assert not np.allclose(feats[0], feats[1])  # different photos, different features
    if (d / HEAD_ONNX_NAME).is_file():
        ort.InferenceSession(str(d / HEAD_ONNX_NAME), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model__onnx_equals_pytorch_on_real_photos(name):
    card = verify_model_dir(MODELS / name)
    assert parity_check(MODELS / name, _photos(card["input"]["image_size"])) <= PARITY_TOL

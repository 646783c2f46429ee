"""The encoders shipped in models/: every file matches its card, loads in onnxruntime, and runs on
real photos exactly as PyTorch does. These tests read the repository's models/ (nothing is written)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from ssl_train.model_files import HEAD_ONNX_NAME, ONNX_NAME, sha256_file, verify_model_dir
from ssl_train.onnx_graph import PARITY_TOL, load_photos, parity_check

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
    for graph in (card.get("sub_head_graphs") or {}).values():
        ort.InferenceSession(str(d / graph["file"]), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model__onnx_equals_pytorch_on_real_photos(name):
    card = verify_model_dir(MODELS / name)
    assert parity_check(MODELS / name, _photos(card["input"]["image_size"])) <= PARITY_TOL


def _test_split_photo(size: int) -> np.ndarray:
    """The first photo of data/flowers/split.csv's test split, decoded like training: (1, 3, S, S)."""
    import csv

    with open(FLOWERS / "split.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["split"] == "test")
    return load_photos([FLOWERS / row["file"]], size)


@pytest.mark.skipif("multitask" not in SHIPPED, reason="models/multitask is not shipped")
def test_shipped_multitask__jigsaw_sub_head_graph_runs_on_a_test_photos_tiles():
    """models/multitask's jigsaw sub-head has its own graph (head-jigsaw.onnx, model.json
    "sub_head_graphs"): on the tiles of a real test photo, the app's path (model.onnx's feature map
    at tile size, then the sub-head graph, both in onnxruntime) gives 1 × n_permutations logits
    equal to PyTorch's sub-head on the same weights."""
    import torch

    from app.inference import EncoderGraph, HeadGraph, ModelFileError, OnnxModel
    from ssl_train.model_files import load_model_weights
    from ssl_train.tasks import get_task
    from ssl_train.tasks import jigsaw as J

    d = MODELS / "multitask"
    card = verify_model_dir(d)
    assert card["sub_head_graphs"]["jigsaw"]["file"] == "head-jigsaw.onnx" and "head-jigsaw.onnx" in card["files"]
    assert "without a graph" not in card.get("head_note", "")
    sub = get_task("multitask", card["task_config"]).subtasks["jigsaw"]
    perms = sub.permutations()
    photo = _test_split_photo(card["input"]["image_size"])
    tiles = J.apply_permutation(J.cut_tiles(torch.from_numpy(photo).float() / 255.0, sub.config.tile_size, sub.config.gap), perms[5])
    x = J.standardize_tiles(tiles).flatten(0, 1)  # (9, 3, t, t), the sub-task's encoder input
    model = OnnxModel(d)
    fmap = EncoderGraph(model).run(x.numpy())["fmap"]
    head = HeadGraph(model, sub="jigsaw")
    assert head.file == "head-jigsaw.onnx"
    (logits,) = head.run(fmap).values()
    assert logits.shape == (1, len(perms)) == (1, 100) and np.isfinite(logits).all()
    encoder, torch_head, _ = load_model_weights(d)
    with torch.no_grad():
        want = torch_head["jigsaw"](encoder(x)).numpy()
    assert np.abs(logits - want).max() <= PARITY_TOL
    # the plain onnxruntime session on the file gives the same
    (raw,) = ort.InferenceSession(str(d / "head-jigsaw.onnx"), providers=["CPUExecutionProvider"]).run(None, {"head_input": fmap})
    assert np.array_equal(raw, logits)
    with pytest.raises(ModelFileError, match="no head graph for sub-task 'rotation'"):
        HeadGraph(model, sub="rotation")  # rotation's sub-head is an output of model.onnx

"""app.inference: model folders are checked, photos prepared per model.json, rotation = PyTorch."""
from __future__ import annotations

import io
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from app import inference
from app.uploads import open_upload
from ssl_train.model_files import load_model_weights
from ssl_train.model_files import verify_model_dir
from ssl_train.tasks.base import normalize
from ssl_train.tasks.rotation import all_rotations, upright

from ..conftest import REPO
from .conftest import break_file, photo_bytes


def test_list_models__valid_folders_have_cards(models):
    got = inference.list_models(models)
    assert [(e.name, e.ok, e.task) for e in got] == [("random_init", True, "random_init"), ("rotation", True, "rotation")]
    assert got[0].is_reference and "random init" in got[0].label()


def test_list_models__broken_folder_names_file_and_fix(models):
    break_file(models / "rotation")
    (models / "empty").mkdir()
    bad = {e.name: e.error for e in inference.list_models(models) if not e.ok}
    assert "model.onnx" in bad["rotation"] and "sha256" in bad["rotation"] and "ssl_train export" in bad["rotation"]
    assert "model.json is missing" in bad["empty"] and "regenerate" in bad["empty"]


def test_list_models__missing_or_empty_dir_is_empty(tmp_path):
    assert inference.list_models(tmp_path / "nope") == [] and inference.list_models(tmp_path) == []


def test_onnx_model__corrupt_graph_with_matching_card_is_a_model_file_error(models):
    import json

    from ssl_train.model_files import sha256_file

    d = models / "rotation"
    (d / "model.onnx").write_bytes(b"not onnx")
    card = json.loads((d / "model.json").read_text())
    card["files"]["model.onnx"] = sha256_file(d / "model.onnx")
    (d / "model.json").write_text(json.dumps(card))
    with pytest.raises(inference.ModelFileError, match="cannot be loaded by onnxruntime.*regenerate"):
        inference.OnnxModel(d)


def _parity(model_dir) -> float:
    """Max |app − PyTorch| of the rotation probabilities of a real photo in its four rotations."""
    name, data = photo_bytes("tulip")
    img = open_upload(name, data).image
    app_model = inference.OnnxModel(model_dir)
    u8 = app_model.prepare(img)
    rotated, probs = inference.rotation_grid(app_model, u8)
    encoder, head, _ = load_model_weights(model_dir)
    x, _ = all_rotations(torch.from_numpy(u8)[None])
    assert np.array_equal(rotated, x.numpy())
    with torch.no_grad():
        ref = F.softmax(head(encoder(normalize(x.float() / 255.0))), 1).numpy()
    return float(np.abs(probs - ref).max())


def test_rotation__app_probabilities_equal_pytorch(models):
    assert _parity(models / "rotation") <= 1e-4


@pytest.mark.skipif(not (REPO / "models" / "rotation" / "model.json").is_file(), reason="no exported models/rotation in the repository")
def test_rotation__app_probabilities_equal_pytorch_for_shipped_model():
    verify_model_dir(REPO / "models" / "rotation")
    assert _parity(REPO / "models" / "rotation") <= 1e-4


def test_with_mirror_probabilities__equal_the_training_side_judgement_and_are_mirror_symmetric(models):
    from ssl_train.studies.rotation_limits import rotation_log_probs, with_mirror_log_probs
    from ssl_train.tasks.rotation import MIRROR_TURN, mirror

    m = inference.OnnxModel(models / "rotation")
    u8 = m.prepare(open_upload(*photo_bytes("sunflower")).image)
    probs = inference.with_mirror_probabilities(m, u8)
    assert probs.shape == (4, 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    encoder, head, _ = load_model_weights(models / "rotation")
    x = torch.from_numpy(u8)[None]
    ref = with_mirror_log_probs(rotation_log_probs(encoder, head, x), rotation_log_probs(encoder, head, mirror(x)))[0]
    assert np.array_equal(probs.argmax(1), ref.argmax(1))
    assert np.abs(probs - F.softmax(torch.from_numpy(ref), 1).numpy()).max() <= 1e-4
    # the mirror image's pair of looks is the same two images: its answers are the mirrored answers
    pm = inference.with_mirror_probabilities(m, mirror(x)[0].numpy())
    assert np.allclose(pm, probs[list(MIRROR_TURN)][:, list(MIRROR_TURN)], atol=1e-5)


def test_auto_upright__turns_back_by_the_predicted_angle_with_ssl_train_upright(models):
    m = inference.OnnxModel(models / "rotation")
    img = open_upload(*photo_bytes("daisy")).image
    u8 = m.prepare(img)
    turned = inference.turn(u8, 1)
    k, probs, fixed = inference.auto_upright(m, turned)
    assert k == int(np.argmax(probs)) and abs(float(probs.sum()) - 1) < 1e-5
    assert np.array_equal(fixed, upright(torch.from_numpy(turned)[None], torch.tensor([k]))[0].numpy())
    assert np.array_equal(inference.turn(turned, 3), u8)  # four quarter turns are the identity


def test_auto_upright__judges_from_all_four_turns_so_its_answer_turns_with_the_photo(models):
    # the four views of a turned photo are the same four images: the answer moves with the turn exactly,
    # whatever any one view says
    m = inference.OnnxModel(models / "rotation")
    for cls in ("daisy", "sunflower", "tulip"):
        u8 = m.prepare(open_upload(*photo_bytes(cls)).image)
        k0, p0, _ = inference.auto_upright(m, u8)
        for u in (1, 2, 3):
            k, p, _ = inference.auto_upright(m, inference.turn(u8, u))
            assert k == (k0 + u) % 4
            assert np.allclose(np.roll(p0, u), p, atol=1e-4)


def test_prepare__matches_training_preprocessing(models):
    from ssl_train.images import open_rgb, square_resize, to_uint8_chw

    name, data = photo_bytes("rose")
    m = inference.OnnxModel(models / "random_init")
    expected = to_uint8_chw(square_resize(open_rgb(io.BytesIO(data)), m.image_size))
    assert np.array_equal(m.prepare(open_upload(name, data).image), expected)
    assert m.features(expected[None]).shape == (1, m.card["feature_dim"])
    with pytest.raises(ValueError, match="wants uint8"):
        m.run(np.zeros((1, 3, 5, 5), np.uint8))


def test_reference_model__has_no_rotation_head(models):
    m = inference.OnnxModel(models / "random_init")
    assert not m.has_rotation_head
    with pytest.raises(ValueError, match="no rotation head"):
        inference.turn_probabilities(m, np.zeros((1, 3, m.image_size, m.image_size), np.uint8))


@pytest.mark.skipif(not (REPO / "models" / "multitask" / "model.json").is_file(), reason="no exported models/multitask in the repository")
def test_head_output__names_a_tasks_logits_in_its_own_model_and_in_a_multitask_model():
    own, multi = inference.OnnxModel(REPO / "models" / "rotation"), inference.OnnxModel(REPO / "models" / "multitask")
    assert own.head_output("rotation") == own.rotation_output == "logits"
    assert multi.head_output("rotation") == multi.rotation_output == "rotation_logits"
    assert own.head_output("jigsaw") is None and multi.head_output("colorization") is None  # not in model.onnx


def test_inference__imports_no_training_machinery():
    code = ("import sys, app.inference, app.uploads, app.embedding, app.photos; "
            "bad = [m for m in ('torch', 'ssl_train.train', 'ssl_train.checkpoint', 'ssl_train.evaluate', 'streamlit', 'umap') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_auto_upright__known_turn_answers_give_the_same_verdict_as_asking_again(made_models, app_env):
    import numpy as np

    from app import inference, photos

    m = inference.OnnxModel(made_models / "rotation")
    idx = photos.index(app_env["data"])
    for f in idx.picks(1)[:3]:
        u8 = m.prepare(photos.open_bundled(app_env["data"], f))
        _, probs = inference.rotation_grid(m, u8)
        for k in range(4):
            asked = inference.auto_upright(m, inference.turn(u8, k))
            known = inference.auto_upright(m, inference.turn(u8, k), probs=probs[(k + np.arange(4)) % 4])
            assert asked[0] == known[0]
            np.testing.assert_allclose(asked[1], known[1], atol=1e-5)
            np.testing.assert_array_equal(asked[2], known[2])

"""app.pretext and each task's ``Panel.answer`` (app/panels/<task>.py): every task's panel data from
onnxruntime equals the task + model in PyTorch.

Models: ``made_task_models`` (one tiny 1-epoch model per registered task, exported once per
session). References are rebuilt from the model folder's weights.safetensors with
``ssl_train.model_files.load_model_weights`` and run through the task's own ``eval_batch``/``forward``.
"""
from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from app import pretext
from app.panels import colorization as colorization_panel
from app.panels import context as context_panel
from app.panels import deepcluster as deepcluster_panel
from app.panels import inpainting as inpainting_panel
from app.panels import jigsaw as jigsaw_panel
from app.panels import multitask as multitask_panel
from app.panels import pirl as pirl_panel
from app.panels import simclr as simclr_panel
from app.panels import superres as superres_panel
from app.inference import EncoderGraph, OnnxModel
from ssl_train.model_files import load_model_weights
from ssl_train.tasks import get_task
from ssl_train.tasks import jigsaw as J

from .conftest import photo_bytes

TOL = 1e-4


@pytest.fixture(scope="module")
def photo():
    _, data = photo_bytes("tulip")
    return Image.open(io.BytesIO(data)).convert("RGB")


def _open(models_dir, task):
    m = OnnxModel(models_dir / task)
    return m, pretext.open_pretext(m)


def _torch(models_dir, task, **overrides):
    encoder, head, card = load_model_weights(models_dir / task)
    t = get_task(card["task"], {**(card.get("task_config") or {}), **overrides})
    return encoder, head, t


def _x(u8):
    return torch.from_numpy(np.ascontiguousarray(u8))[None].float().div(255.0)


def _close(a, b, tol=TOL):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.abs(a - b).max() <= tol, np.abs(a - b).max()


# -- graphs ------------------------------------------------------------------------------------------
def test_encoder_graph__photo_features_equal_model_onnx_and_tiles_run_at_their_own_size(made_task_models, photo):
    m = OnnxModel(made_task_models / "jigsaw")
    enc = EncoderGraph(m)
    u8 = m.prepare(photo)[None]
    out = enc.run(m.normalise(u8), stages=True)
    _close(out["features"], m.features(u8), 1e-5)
    assert [s.shape[1] for s in out["stages"]] == list(m.card["encoder"]["widths"]) and out["stages"][-1].shape == out["fmap"].shape
    small = enc.run(np.zeros((9, 3, 8, 8), np.float32))
    assert small["features"].shape == (9, m.card["feature_dim"])


def test_open_pretext__model_without_head_graph_says_what_is_missing_and_how_to_reexport(made_task_models, tmp_path):
    dst = tmp_path / "jigsaw"
    shutil.copytree(made_task_models / "jigsaw", dst)
    card = json.loads((dst / "model.json").read_text())
    card["head_graph"] = None
    (dst / "model.json").write_text(json.dumps(card))
    p = pretext.open_pretext(OnnxModel(dst))
    assert p.encoder is None and "has no head.onnx" in p.problem and "ssl_train export" in p.problem


# -- jigsaw ------------------------------------------------------------------------------------------
def test_jigsaw__true_permutation_reassembles_photo(made_task_models, photo):
    m, p = _open(made_task_models, "jigsaw")
    u8 = m.prepare(photo)
    r = jigsaw_panel.solve(p, u8, 7)
    perms = p.task.permutations()
    cfg = p.config
    tiles = J.cut_tiles(_x(u8), cfg.tile_size, cfg.gap)
    shuffled = J.apply_permutation(tiles, perms[r["target"]])
    assert torch.equal(J.reassemble(shuffled, perms[r["target"]]), tiles)
    assert np.array_equal(r["shuffled"], pretext.to_u8(J.tiles_to_grid(shuffled)[0]))
    assert np.array_equal(r["original"], pretext.to_u8(J.tiles_to_grid(tiles)[0]))
    assert np.array_equal(r["answer"], pretext.to_u8(J.tiles_to_grid(J.reassemble(shuffled, perms[r["predicted"]]))[0]))
    assert r["correct"] == (r["predicted"] == r["target"]) and r["in_place"] == int((perms[r["predicted"]] == perms[r["target"]]).sum())
    assert r["probs"].shape == (len(perms),) and abs(r["probs"].sum() - 1) < 1e-5


def test_jigsaw__logits_equal_pytorch_task_and_model(made_task_models, photo):
    m, p = _open(made_task_models, "jigsaw")
    u8 = m.prepare(photo)
    r = jigsaw_panel.solve(p, u8, 3)
    encoder, head, task = _torch(made_task_models, "jigsaw")
    cfg = task.config
    shuffled = J.apply_permutation(J.cut_tiles(_x(u8), cfg.tile_size, cfg.gap), task.permutations()[r["target"]])
    with torch.no_grad():
        ref = task.forward(encoder, head, J.standardize_tiles(shuffled).reshape(9, *shuffled.shape[2:]))
    _close(r["logits"], ref)
    assert torch.equal(head.permutations, task.permutations())  # the table the logits refer to


# -- context -----------------------------------------------------------------------------------------
def test_context__all_eight_neighbours_equal_pytorch_eval_batch(made_task_models, photo):
    m, p = _open(made_task_models, "context")
    u8 = m.prepare(photo)
    r = context_panel.place_pieces(p, u8)
    encoder, head, task = _torch(made_task_models, "context")
    with torch.no_grad():
        inputs, targets = task.eval_batch(_x(u8), torch.Generator().manual_seed(0), torch.arange(1))
        ref = task.forward(encoder, head, inputs)
    assert targets.tolist() == list(range(8))  # eval order: label i is the row i of the panel
    _close(r["logits"], ref)
    t = r["centre"].shape[-1]
    assert r["neighbours"].shape == (8, 3, t, t) and r["probs"].shape == (8, 8) and r["boxes"].shape == (9, 4)
    top, left, bottom, right = r["boxes"][4]
    assert np.array_equal(r["centre"], u8[:, top:bottom, left:right])  # the centre patch is an exact crop


# -- colorization ------------------------------------------------------------------------------------
def test_colorization__l_input_prediction_and_original_equal_pytorch(made_task_models, photo):
    from ssl_train.tasks import colorization as Co

    m, p = _open(made_task_models, "colorization")
    u8 = m.prepare(photo)
    r = colorization_panel.colour(p, u8)
    encoder, head, task = _torch(made_task_models, "colorization")
    with torch.no_grad():
        inputs, _ = task.eval_batch(_x(u8), torch.Generator().manual_seed(0), torch.arange(1))
        ref = task.forward(encoder, head, inputs)
    _close(r["logits"], ref["logits"])
    _close(r["ab"], Co.decode_ab(ref["logits"], ref["bins"], task.config.temperature), 1e-3)
    s = m.image_size
    assert r["grey"].shape == r["predicted"].shape == (3, s, s) and np.array_equal(r["original"], u8)
    assert (r["grey"][0] == r["grey"][1]).mean() > 0.95  # lightness only: grey
    assert r["ab_rmse"] >= 0


# -- inpainting --------------------------------------------------------------------------------------
def test_inpainting__hole_is_filled_only_inside_and_equals_pytorch(made_task_models, photo):
    m, p = _open(made_task_models, "inpainting")
    u8 = m.prepare(photo)
    r = inpainting_panel.fill(p, u8)
    encoder, head, task = _torch(made_task_models, "inpainting", mask_mode="center")
    with torch.no_grad():
        inputs, targets = task.eval_batch(_x(u8), torch.Generator().manual_seed(0), torch.arange(1))
        ref = task.forward(encoder, head, inputs)
    _close(r["raw"], ref)
    t, l, b, rr = r["box"]
    assert targets["mask"][0, 0, t:b, l:rr].all() and targets["mask"].sum() == (b - t) * (rr - l)
    outside = np.ones(u8.shape[1:], bool)
    outside[t:b, l:rr] = False
    assert np.array_equal(r["filled"][:, outside], u8[:, outside])  # the photo untouched outside the hole
    assert np.array_equal(r["filled"][:, t:b, l:rr], r["prediction"][:, t:b, l:rr])


# -- super-resolution --------------------------------------------------------------------------------
def test_superres__small_image_restored_to_full_size_equals_pytorch(made_task_models, photo):
    m, p = _open(made_task_models, "superres")
    u8 = m.prepare(photo)
    r = superres_panel.sharpen(p, u8)
    encoder, head, task = _torch(made_task_models, "superres")
    with torch.no_grad():
        inputs, _ = task.eval_batch(_x(u8), torch.Generator().manual_seed(0), torch.arange(1))
        ref = task.forward(encoder, head, inputs)
    _close(r["raw"], ref)
    s, f = m.image_size, task.config.factor
    assert r["small"].shape == (3, s // f, s // f) and r["restored"].shape == r["bicubic"].shape == (3, s, s)
    assert np.isfinite([r["psnr_bicubic"], r["psnr_model"]]).all()


# -- PIRL --------------------------------------------------------------------------------------------
def test_pirl__embeddings_equal_pytorch_head_and_similarities_rank_own_photo(made_task_models, photo):
    import torch.nn.functional as F

    m, p = _open(made_task_models, "pirl")
    _, other = photo_bytes("daisy")
    images = np.stack([m.prepare(photo), m.prepare(Image.open(io.BytesIO(other)).convert("RGB"))])
    r = pirl_panel.embed(p, images, seed=5)
    encoder, head, task = _torch(made_task_models, "pirl")
    x = torch.from_numpy(images).float().div(255.0)
    with torch.no_grad():
        inputs, _ = task.eval_batch(x, torch.Generator().manual_seed(5), torch.arange(2))
        f, g = head(encoder(inputs["image"]), encoder(inputs["tiles"]))
    _close(r["f"], F.normalize(f, dim=1))
    _close(r["g"], F.normalize(g, dim=1))
    _close(r["similarity"], F.normalize(g, dim=1) @ F.normalize(f, dim=1).T)
    assert r["puzzles"].shape[0] == 2 and set(r["rank"].tolist()) <= {1, 2}


def test_simclr__views_are_the_tasks_and_similarities_equal_pytorch_projection(made_task_models, photo):
    import torch.nn.functional as F

    from ssl_train.tasks.base import normalize
    from ssl_train.tasks.simclr import two_views

    m, p = _open(made_task_models, "simclr")
    assert p.problem is None
    _, other = photo_bytes("daisy")
    images = np.stack([m.prepare(photo), m.prepare(Image.open(io.BytesIO(other)).convert("RGB"))])
    r = simclr_panel.embed(p, images, seed=5)
    encoder, head, task = _torch(made_task_models, "simclr")
    views = two_views(torch.from_numpy(images).float().div(255.0), task.config, torch.Generator().manual_seed(5))
    u8 = np.clip(np.rint(views.numpy() * 255), 0, 255).astype(np.uint8)
    assert np.array_equal(r["first"], u8[:2]) and np.array_equal(r["second"], u8[2:])
    with torch.no_grad():
        z = F.normalize(head(encoder(normalize(torch.from_numpy(u8).float().div(255.0))))["projection"], dim=1)
    _close(r["similarity"], z[:2] @ z[2:].T)
    assert set(r["rank"].tolist()) <= {1, 2}
    assert simclr_panel.embed(p, images, seed=6)["first"].tolist() != r["first"].tolist()  # another number, other views


# -- DeepCluster -------------------------------------------------------------------------------------
def test_deepcluster__cluster_and_classifier_equal_pytorch_and_members_are_that_cluster(made_task_models, photo):
    m, p = _open(made_task_models, "deepcluster")
    u8 = m.prepare(photo)[None]
    r = deepcluster_panel.assign(p, u8)
    encoder, head, task = _torch(made_task_models, "deepcluster")
    with torch.no_grad():
        inputs, _ = task.eval_batch(_x(u8[0]), torch.Generator().manual_seed(0), torch.arange(1))
        ref = task.forward(encoder, head, inputs)
    assert r["cluster"].tolist() == ref["assigned"].tolist()
    _close(r["probs"], torch.softmax(ref["logits"], 1))
    gallery = np.array([0, 2, 2, 1, 2]), np.array([0, 1, 1, 0, 0])
    info = deepcluster_panel.cluster_members(2, *gallery, ["daisy", "rose"])
    assert info["members"].tolist() == [1, 2, 4] and info["composition"] == [("rose", 2), ("daisy", 1)]


# -- multitask ---------------------------------------------------------------------------------------
def test_multitask__lists_its_sub_tasks_and_weights(made_task_models):
    m, p = _open(made_task_models, "multitask")
    assert multitask_panel.multitask_parts(m.card) == [("rotation", 1.0), ("jigsaw", 0.5)] and p.problem is None

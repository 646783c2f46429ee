"""The model-folder contract between training and the app: export, ONNX parity, verification."""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from ssl_train.checkpoint import load_checkpoint, save_checkpoint
from ssl_train.data import DataConfig, SplitData, load_dataset, load_or_make_split
from ssl_train.encoders import EncoderConfig, build_encoder, pooled
from ssl_train.errors import UserError
from ssl_train.export import add_export_parser, export_model, export_random_reference
from ssl_train.images import open_rgb, square_resize, to_uint8_chw
from ssl_train.model_files import ModelFileError, load_model_weights, verify_model_dir
from ssl_train.onnx_graph import PARITY_TOL, parity_check
from ssl_train.tasks.base import MEAN, STD, TASKS, PretextTask, TaskConfig, normalize
from ssl_train.train import CHECKPOINT_NAME, TrainConfig, pretrain

from ..conftest import FLOWERS, REPO

SIZE = 32
SMALL = EncoderConfig(widths=(8, 16, 16, 32), blocks=(1, 1, 1, 1))


def real_photos(n: int, classes=("sunflower", "dandelion")) -> np.ndarray:
    """Photos of data/flowers not in the training folder, decoded like training: (n, 3, S, S) uint8."""
    files = [p for c in classes for p in sorted((FLOWERS / c).glob("*.jpg"))[:n]]
    return np.stack([to_uint8_chw(square_resize(open_rgb(f), SIZE)) for f in files[:n]])


def onnx_input(u8: np.ndarray) -> np.ndarray:
    return normalize(torch.from_numpy(u8).float() / 255.0).numpy()


@pytest.fixture(scope="module")
def run_dir(tiny_folder, tmp_path_factory) -> Path:
    """One real 1-epoch rotation pretraining run on 3 classes × 10 photos at 32 px."""
    tmp = tmp_path_factory.mktemp("export-run")
    cfg = DataConfig(root=str(tiny_folder), image_size=SIZE, split_file=str(tmp / "split.csv"))
    ds = load_dataset(cfg, use_cache=False)
    data = SplitData(ds, load_or_make_split(ds, cfg), cfg)
    from ssl_train.tasks import get_task

    task = get_task("rotation", {"color_jitter": "0"})
    pretrain(task, data, tmp / "run", SMALL, TrainConfig(epochs=1, batch_size=8, lr=0.05, device="cpu"), progress=False)
    return tmp / "run"


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models")
    return export_model(run_dir / CHECKPOINT_NAME, out, "rotation", metrics={"knn_acc": 0.5})


@pytest.fixture
def model_copy(exported, tmp_path) -> Path:
    dst = tmp_path / "models" / "rotation"
    shutil.copytree(exported, dst)
    return dst


# -- export ------------------------------------------------------------------------------------
def test_export__writes_the_documented_folder(exported, run_dir):
    card = json.loads((exported / "model.json").read_text())
    meta = load_checkpoint(run_dir / CHECKPOINT_NAME).meta
    summary = json.loads((run_dir / "summary.json").read_text())
    assert sorted(p.name for p in exported.iterdir()) == ["model.json", "model.onnx", "weights.safetensors"]
    assert set(card["files"]) == {"model.onnx", "weights.safetensors"}
    assert card["task"] == "rotation" and card["task_config"] == meta["config"]["task"]
    assert card["encoder"] == SMALL.to_dict() | {"widths": list(SMALL.widths), "blocks": list(SMALL.blocks)}
    assert card["input"] == {"name": "input", "dtype": "float32", "shape": ["batch", 3, SIZE, SIZE], "layout": "NCHW", "image_size": SIZE}
    assert card["normalization"] == {"mean": list(MEAN), "std": list(STD), "colour_space": "RGB", "scale": 255.0}
    assert card["input_name"] == "input" and card["output_names"] == ["features", "logits"] and card["feature_output"] == "features"
    assert card["onnx"]["opset"] == 17 and card["head_graph"] is None and card["head_in_model_onnx"] is True
    assert card["split_sha256"] == meta["split_sha256"] and card["epochs"] == 1 and card["finished"] is True
    assert card["device"] == summary["device"] and card["versions"] == summary["versions"]
    assert card["wall_seconds"] == pytest.approx(summary["train_seconds_total"])
    assert card["metrics"] == {"knn_acc": 0.5}
    assert card["trained_on"].startswith("train split of") and card["trained_on"].endswith("only")
    assert card["weights"]["storage_dtype"] == "float16" and card["weights"]["load_dtype"] == "float32"
    ext = card["onnx"]["external_data"]
    assert ext["file"] == "weights.safetensors" and ext["sha256"] == card["files"]["weights.safetensors"]
    assert ext["tensors"] == ext["cast_to_float32"] > 0 and ext["inline_initializers"] == [] and ext["inline_bytes"] == 0
    assert 0 <= card["onnx_parity_max_abs_diff"] <= PARITY_TOL
    assert not list(exported.parent.glob(".*")), "temporary folders left behind"


def test_export__onnx_matches_pytorch_on_real_photos(exported, run_dir):
    photos = real_photos(4)
    assert parity_check(exported, photos) <= PARITY_TOL
    # and the released model is the checkpoint's model (up to float16 storage of the weights)
    ck = load_checkpoint(run_dir / CHECKPOINT_NAME)
    enc = build_encoder(SMALL)
    enc.load_state_dict(ck.encoder_state)
    with torch.no_grad():
        want = pooled(enc.eval()(torch.from_numpy(onnx_input(photos)))).numpy()
    got = ort.InferenceSession(str(exported / "model.onnx"), providers=["CPUExecutionProvider"]).run(["features"], {"input": onnx_input(photos)})[0]
    assert np.allclose(got, want, rtol=1e-2, atol=1e-3)


def _onnx_weight_refs(path: Path) -> list[tuple[onnx.TensorProto, dict]]:
    model = onnx.load(str(path), load_external_data=False)
    return [(t, {e.key: e.value for e in t.external_data}) for t in model.graph.initializer]


def _assert_graph_only(path: Path, weights: Path) -> int:
    """``path`` holds no float weights of its own: every float initializer is a byte range of a
    tensor of ``weights`` (same name, dtype, shape, bytes). Returns how many it references."""
    raw = weights.read_bytes()
    n = 0
    with safe_open(str(weights), framework="numpy") as f:
        for t, ext in _onnx_weight_refs(path):
            if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
                assert t.data_location == onnx.TensorProto.EXTERNAL and not t.raw_data and not t.float_data, t.name
            if t.data_location != onnx.TensorProto.EXTERNAL:
                continue
            assert ext["location"] == weights.name
            want = f.get_tensor(t.name)
            assert list(t.dims) == list(want.shape) and t.data_type == onnx.TensorProto.FLOAT16 == onnx.helper.np_dtype_to_tensor_dtype(want.dtype)
            off, length = int(ext["offset"]), int(ext["length"])
            assert raw[off:off + length] == np.ascontiguousarray(want).astype("<f2").tobytes()
            n += 1
    return n


def test_export__onnx_reads_weights_from_safetensors_single_copy(exported, model_copy):
    onnx_bytes = (exported / "model.onnx").stat().st_size
    weights_bytes = (exported / "weights.safetensors").stat().st_size
    n_params = sum(p.numel() for p in build_encoder(SMALL).state_dict().values() if p.is_floating_point())
    assert onnx_bytes < 200_000 and weights_bytes >= 2 * n_params  # the float16 weights are in one file only
    assert onnx_bytes < 4 * n_params  # a float32 copy inside model.onnx would take at least that
    n = _assert_graph_only(exported / "model.onnx", exported / "weights.safetensors")
    assert n == json.loads((exported / "model.json").read_text())["onnx"]["external_data"]["tensors"]
    meta = {p.key: p.value for p in onnx.load(str(exported / "model.onnx"), load_external_data=False).metadata_props}
    assert meta["weights_sha256"] == json.loads((exported / "model.json").read_text())["files"]["weights.safetensors"]
    # onnxruntime opened by path (a copied folder: the reference is relative) = PyTorch rebuilt from the same weights
    photos = real_photos(4)
    encoder, head, _ = load_model_weights(model_copy)
    with torch.no_grad():
        fmap = encoder(torch.from_numpy(onnx_input(photos)))
        want = [pooled(fmap).numpy(), head(fmap).numpy()]
    got = ort.InferenceSession(str(model_copy / "model.onnx"), providers=["CPUExecutionProvider"]).run(["features", "logits"], {"input": onnx_input(photos)})
    assert all(np.abs(g - w).max() <= PARITY_TOL for g, w in zip(got, want))
    assert parity_check(model_copy, photos) <= PARITY_TOL
    # the one copy is protected by model.json: a tampered weights.safetensors is refused
    path = model_copy / "weights.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"weights\.safetensors does not match its sha256"):
        verify_model_dir(model_copy)


def test_export__float32_storage_is_referenced_without_casts(tmp_path):
    path = export_random_reference(tmp_path, SMALL, SIZE, seed=1, fp16_storage=False)
    card = verify_model_dir(path)
    ext = card["onnx"]["external_data"]
    assert card["weights"]["storage_dtype"] == "float32" and ext["cast_to_float32"] == 0 and ext["tensors"] > 0
    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t, _ in _onnx_weight_refs(path / "model.onnx") if t.data_type == onnx.TensorProto.FLOAT)
    assert (path / "model.onnx").stat().st_size < 200_000
    assert parity_check(path, real_photos(2)) <= PARITY_TOL


def test_export__dynamic_batch_runs_batch_1_and_3(exported):
    sess = ort.InferenceSession(str(exported / "model.onnx"), providers=["CPUExecutionProvider"])
    x = onnx_input(real_photos(3))
    feats3, logits3 = sess.run(["features", "logits"], {"input": x})
    feats1, logits1 = sess.run(["features", "logits"], {"input": x[1:2]})
    assert feats3.shape == (3, SMALL.widths[-1]) and logits3.shape == (3, 4)
    assert feats1.shape == (1, SMALL.widths[-1]) and logits1.shape == (1, 4)
    assert np.allclose(feats1[0], feats3[1], atol=1e-5) and np.allclose(logits1[0], logits3[1], atol=1e-5)


def test_export__weights_are_float16_on_disk_and_float32_when_loaded(exported):
    with safe_open(str(exported / "weights.safetensors"), framework="pt") as f:
        keys = list(f.keys())
        assert {k.split(".")[0] for k in keys} == {"encoder", "head"}
        assert f.get_tensor("encoder.stem.0.weight").dtype == torch.float16
    encoder, head, card = load_model_weights(exported)
    assert all(p.dtype == torch.float32 for p in [*encoder.parameters(), *head.parameters()])
    assert not encoder.training and not head.training and card["task"] == "rotation"


def test_export__failed_export_keeps_existing_model(model_copy, run_dir, monkeypatch):
    before = {p.name: p.read_bytes() for p in model_copy.iterdir()}
    import ssl_train.model_writer as writer

    monkeypatch.setattr(writer, "parity_check", lambda *a, **k: 1.0)  # e.g. an exporter bug: ONNX ≠ PyTorch
    with pytest.raises(UserError, match="differ from PyTorch"):
        export_model(run_dir / CHECKPOINT_NAME, model_copy.parent, "rotation")
    assert {p.name: p.read_bytes() for p in model_copy.iterdir()} == before
    assert sorted(p.name for p in model_copy.parent.iterdir()) == ["rotation"]  # no temporary folder left
    verify_model_dir(model_copy)


def test_export__refuses_what_a_user_can_fix(run_dir, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        export_model(tmp_path / "nope.safetensors", tmp_path, "rotation")
    with pytest.raises(UserError, match="not a valid model folder name"):
        export_model(run_dir / CHECKPOINT_NAME, tmp_path, "../evil")
    enc = build_encoder(SMALL)
    save_checkpoint(tmp_path / "ft.safetensors", enc, nn.Linear(32, 3), {"task": "classifier", "encoder": SMALL.to_dict(), "config": {}, "epoch": 0})
    with pytest.raises(UserError, match="not a registered pretext task"):
        export_model(tmp_path / "ft.safetensors", tmp_path, "ft")
    assert not (tmp_path / "ft").exists() and not (tmp_path / "rotation").exists()


# -- verify ------------------------------------------------------------------------------------
def test_verify__intact_folder_passes(exported):
    card = verify_model_dir(exported)
    assert card["task"] == "rotation"


def test_verify__tampered_file_is_refused_with_its_name(model_copy):
    path = model_copy / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"model\.onnx does not match its sha256") as e:
        verify_model_dir(model_copy)
    assert "python -m ssl_train export" in str(e.value) and "\n" not in str(e.value)


def test_verify__graph_reading_an_unlisted_weights_file_is_refused(model_copy):
    card = json.loads((model_copy / "model.json").read_text())
    card["onnx"]["external_data"]["sha256"] = "0" * 64  # e.g. a model.json edited by hand
    (model_copy / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match=r"model\.onnx reads weights from 'weights\.safetensors', which is not the listed file"):
        verify_model_dir(model_copy)


def test_verify__missing_file_is_refused_with_its_name(model_copy):
    (model_copy / "weights.safetensors").unlink()
    with pytest.raises(ModelFileError, match=r"weights\.safetensors is missing.*python -m ssl_train export"):
        verify_model_dir(model_copy)


def test_verify__invalid_or_missing_model_json_is_refused(model_copy, tmp_path):
    (model_copy / "model.json").write_text("{ not json")
    with pytest.raises(ModelFileError, match=r"model\.json is not valid JSON"):
        verify_model_dir(model_copy)
    (model_copy / "model.json").unlink()
    with pytest.raises(ModelFileError, match=r"model\.json is missing"):
        verify_model_dir(model_copy)
    with pytest.raises(ModelFileError, match="does not exist"):
        verify_model_dir(tmp_path / "no-such-model")
    assert issubclass(ModelFileError, ValueError)


def test_verify__module_does_not_import_torch():
    code = "import sys, ssl_train.model_files; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


# -- other layouts -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PairConfig(TaskConfig):
    pass


class PairHead(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(2 * dim, 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(z)


class PairTask(PretextTask):
    """A custom-forward task like jigsaw/context: two views per sample, one prediction per pair."""

    name = "_test_pairs"
    Config = PairConfig

    def build_head(self, info):
        return PairHead(info.feature_dim)

    def make_batch(self, images, gen, index):
        x = torch.stack([images, images.flip(-1)], 1)  # (B, 2, 3, S, S)
        return normalize(x.flatten(0, 1)).unflatten(0, (-1, 2)), torch.zeros(len(images), dtype=torch.long)

    def forward(self, encoder, head, inputs):
        b = inputs.shape[0]
        return head(pooled(encoder(inputs.flatten(0, 1))).reshape(b, -1))

    def loss(self, out, targets):
        return F.cross_entropy(out, targets)


def test_export__custom_forward_task_gets_features_and_a_head_graph(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setitem(TASKS, PairTask.name, PairTask)
    torch.manual_seed(0)
    enc, head = build_encoder(SMALL), PairHead(SMALL.widths[-1])
    meta = {"task": PairTask.name, "encoder": SMALL.to_dict(), "epoch": 0,
            "config": {"task": {}, "train": {"epochs": 1}, "data": {"root": str(tiny_folder), "image_size": SIZE}}}
    save_checkpoint(tmp_path / "ck.safetensors", enc, head, meta)
    path = export_model(tmp_path / "ck.safetensors", tmp_path / "models", "pairs")
    card = verify_model_dir(path)
    assert card["output_names"] == ["features"] and card["head_in_model_onnx"] is False
    assert card["head_graph"]["file"] == "head.onnx" and set(card["files"]) == {"model.onnx", "head.onnx", "weights.safetensors"}
    assert card["head_graph"]["inputs"] == [{"name": "head_input", "dtype": "float32", "shape": ["batch", 2 * SMALL.widths[-1]]}]
    assert [o["name"] for o in card["head_graph"]["outputs"]] == ["logits"]
    assert parity_check(path, real_photos(3)) <= PARITY_TOL
    # both graphs read the one weights.safetensors: model.onnx the encoder.* tensors, head.onnx the head.* ones
    assert _assert_graph_only(path / "model.onnx", path / "weights.safetensors") > 0
    assert _assert_graph_only(path / "head.onnx", path / "weights.safetensors") == 2  # fc.weight, fc.bias
    assert {t.name for t, _ in _onnx_weight_refs(path / "head.onnx")} == {"head.fc.weight", "head.fc.bias"}
    assert card["head_graph"]["external_data"]["sha256"] == card["files"]["weights.safetensors"]


def test_export_random_reference__features_only(tmp_path):
    path = export_random_reference(tmp_path, SMALL, SIZE, seed=3)
    card = verify_model_dir(path)
    assert path.name == "random_init" and card["task"] == "random_init"
    assert card["output_names"] == ["features"] and card["head_graph"] is None and card["epochs"] == 0
    assert parity_check(path, real_photos(2)) <= PARITY_TOL
    with safe_open(str(path / "weights.safetensors"), framework="pt") as f:
        assert all(k.startswith("encoder.") for k in f.keys())


# -- CLI ---------------------------------------------------------------------------------------
def _cli() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ssl_train")
    add_export_parser(p.add_subparsers(dest="cmd", required=True))
    return p


def test_cli__export_subcommand_writes_and_reports(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _cli().parse_args(["export", "--help"])
    helptext = capsys.readouterr().out
    assert "--checkpoint" in helptext and "--random-init" in helptext and "(default:" in helptext
    a = _cli().parse_args(["export", "--checkpoint", str(run_dir / CHECKPOINT_NAME), "--out", str(tmp_path), "--metrics", '{"knn": 0.4}'])
    assert a.fn(a) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model_dir"] == str(tmp_path / "rotation") and out["outputs"] == ["features", "logits"]
    assert json.loads((tmp_path / "rotation" / "model.json").read_text())["metrics"] == {"knn": 0.4}
    bad = _cli().parse_args(["export", "--checkpoint", str(run_dir / CHECKPOINT_NAME), "--out", str(tmp_path), "--metrics", "{oops"])
    with pytest.raises(UserError, match="--metrics is not valid JSON"):
        bad.fn(bad)


def test_quantize_int8__per_channel_error_within_half_a_step():
    from ssl_train.weight_codec import quantize_int8

    w = torch.randn(6, 4, 3, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([1e-3, 0.1, 1, 10, 0, 2]).view(-1, 1, 1, 1)
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and q.abs().max() <= 127 and scale.shape == (6,)
    back = q.float() * scale.view(-1, 1, 1, 1)
    assert torch.all((back - w).abs() <= scale.view(-1, 1, 1, 1) / 2 + 1e-9)
    assert scale[4] == 1 and (q[4] == 0).all()  # a zero channel stays exactly zero


def test_export__int8_weights_are_half_the_file_and_onnx_matches_pytorch(run_dir, tmp_path):
    f16 = export_model(run_dir / CHECKPOINT_NAME, tmp_path / "f16", "rotation")
    i8 = export_model(run_dir / CHECKPOINT_NAME, tmp_path / "i8", "rotation", int8=True)
    card = verify_model_dir(i8)
    assert card["weights"]["storage_dtype"] == ["float16", "int8"]
    assert card["onnx"]["external_data"]["dequantized_int8"] > 0 and card["onnx"]["external_data"]["inline_bytes"] == 0
    assert (i8 / "weights.safetensors").stat().st_size < 0.7 * (f16 / "weights.safetensors").stat().st_size
    with safe_open(str(i8 / "weights.safetensors"), framework="pt") as f:
        quantized = [k[: -len(".qscale")] for k in f.keys() if k.endswith(".qscale")]
        assert len(quantized) >= 4
        assert all(f.get_tensor(k).dtype == torch.int8 and f.get_tensor(k + ".qscale").dtype == torch.float32 for k in quantized)
    # the graph reads exactly the dequantised weights that load_model_weights rebuilds
    assert parity_check(i8, real_photos(3)) <= PARITY_TOL
    enc8, head8, _ = load_model_weights(i8)
    enc16, _, _ = load_model_weights(f16)
    x = normalize(torch.from_numpy(real_photos(3)).float() / 255.0)
    with torch.no_grad():
        a, b = pooled(enc8(x)), pooled(enc16(x))
    assert torch.allclose(a, b, rtol=0.1, atol=0.05 * b.abs().max().item())  # int8 changes features only slightly


@pytest.fixture(scope="module")
def multitask_run(tiny_folder, tmp_path_factory) -> Path:
    """One real 1-epoch rotation+jigsaw multi-task pretraining run at 32 px (10 permutations)."""
    from ssl_train.tasks import get_task

    tmp = tmp_path_factory.mktemp("multitask-run")
    cfg = DataConfig(root=str(tiny_folder), image_size=SIZE, split_file=str(tmp / "split.csv"))
    ds = load_dataset(cfg, use_cache=False)
    data = SplitData(ds, load_or_make_split(ds, cfg), cfg)
    task = get_task("multitask", {"tasks": "rotation:1,jigsaw:0.5", "options": '{"jigsaw": {"n_permutations": 10, "tile_dim": 16, "hidden": 32}}'})
    pretrain(task, data, tmp / "run", SMALL, TrainConfig(epochs=1, batch_size=8, lr=0.05, device="cpu"), progress=False)
    return tmp / "run"


@pytest.fixture(scope="module")
def multitask_exported(multitask_run, tmp_path_factory) -> Path:
    return export_model(multitask_run / CHECKPOINT_NAME, tmp_path_factory.mktemp("mt-models"), "multitask")


def test_export__multitask_puts_the_sub_heads_that_fit_in_model_onnx(multitask_exported):
    """Rule 3: rotation's sub-head runs on the photo's feature map → "rotation_logits" in model.onnx,
    equal to PyTorch; jigsaw's takes tiles → its own graph (next test), and the card says why."""
    d = multitask_exported
    card = json.loads((d / "model.json").read_text())
    assert card["output_names"] == ["features", "rotation_logits"] and card["sub_heads_in_model_onnx"] == ["rotation"]
    assert "jigsaw in head-jigsaw.onnx (its head does not run on one photo's feature map" in card["head_note"]
    assert "without a graph" not in card["head_note"]
    photos = real_photos(4)
    assert parity_check(d, photos) <= PARITY_TOL
    encoder, head, _ = load_model_weights(d)
    x = torch.as_tensor(onnx_input(photos))
    sess = ort.InferenceSession(str(d / "model.onnx"))
    (got,) = sess.run(["rotation_logits"], {"input": x.numpy()})
    with torch.no_grad():
        want = head["rotation"](encoder(x)).numpy()
    assert got.shape == (4, 4) and np.abs(got - want).max() <= PARITY_TOL


def _jigsaw_tiles(photos_u8: np.ndarray, sub, perm_index: int = 3) -> torch.Tensor:
    """The jigsaw sub-task's encoder input for ``photos_u8``: centred tiles shuffled by one
    permutation of its set, standardised per tile → (N·9, 3, t, t)."""
    from ssl_train.tasks import jigsaw as J

    x = torch.from_numpy(photos_u8).float() / 255.0
    tiles = J.apply_permutation(J.cut_tiles(x, sub.config.tile_size, sub.config.gap), sub.permutations()[perm_index])
    return J.standardize_tiles(tiles).flatten(0, 1)


def test_export__multitask_jigsaw_sub_head_gets_its_own_graph_equal_to_pytorch(multitask_exported):
    from ssl_train.tasks import get_task

    d = multitask_exported
    card = verify_model_dir(d)
    g = card["sub_head_graphs"]["jigsaw"]
    assert list(card["sub_head_graphs"]) == ["jigsaw"] and g["file"] == "head-jigsaw.onnx"
    assert set(card["files"]) == {"model.onnx", "head-jigsaw.onnx", "weights.safetensors"} and card["head_graph"] is None
    assert g["inputs"] == [{"name": "head_input", "dtype": "float32", "shape": ["head_input_dim0", SMALL.widths[-1], 1, 1]}]
    assert g["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch", 10]}]
    assert g["external_data"]["sha256"] == card["files"]["weights.safetensors"] and g["external_data"]["inline_bytes"] == 0
    assert "sub-task 'jigsaw'" in g["input_from"]
    # graph only: every weight is a byte range of the head.jigsaw.* tensors of weights.safetensors
    assert _assert_graph_only(d / "head-jigsaw.onnx", d / "weights.safetensors") > 0
    assert {t.name for t, _ in _onnx_weight_refs(d / "head-jigsaw.onnx")} and \
        all(t.name.startswith("head.jigsaw.") for t, _ in _onnx_weight_refs(d / "head-jigsaw.onnx"))
    # ONNX (encoder in PyTorch, tiles as the sub-task cuts them) equals PyTorch's sub-head, 1 and 4 photos
    sub = get_task("multitask", card["task_config"]).subtasks["jigsaw"]
    encoder, head, _ = load_model_weights(d)
    sess = ort.InferenceSession(str(d / "head-jigsaw.onnx"), providers=["CPUExecutionProvider"])
    for n in (1, 4):
        with torch.no_grad():
            fmap = encoder(_jigsaw_tiles(real_photos(n), sub))
            want = head["jigsaw"](fmap).numpy()
        (got,) = sess.run(None, {"head_input": fmap.numpy()})
        assert got.shape == (n, 10) and np.abs(got - want).max() <= PARITY_TOL
    assert parity_check(d, real_photos(3)) <= PARITY_TOL


def test_export__parity_check_covers_the_sub_head_graph(multitask_exported, tmp_path):
    d = tmp_path / "multitask"
    shutil.copytree(multitask_exported, d)
    model = onnx.load(str(d / "head-jigsaw.onnx"), load_external_data=False)
    last = model.graph.node[-1]
    out = last.output[0]
    last.output[0] = out + "_raw"
    model.graph.node.append(onnx.helper.make_node("Neg", [out + "_raw"], [out]))  # a wrong sub-head graph
    (d / "head-jigsaw.onnx").write_bytes(model.SerializeToString())
    assert parity_check(d, real_photos(3)) > 100 * PARITY_TOL  # the logits negated: caught


# -- adding sub-head graphs to an existing folder ----------------------------------------------
def _sha(path: Path) -> str:
    from ssl_train.model_files import sha256_file

    return sha256_file(path)


@pytest.fixture
def multitask_without_graph(multitask_exported, tmp_path) -> Path:
    """The exported multi-task folder as an older export left it: no head-jigsaw.onnx, no
    "sub_head_graphs", the old head_note; plus an unlisted file of the app beside the card."""
    d = tmp_path / "models" / "multitask"
    shutil.copytree(multitask_exported, d)
    (d / "head-jigsaw.onnx").unlink()
    card = json.loads((d / "model.json").read_text())
    del card["sub_head_graphs"], card["files"]["head-jigsaw.onnx"]
    card["head_note"] = "sub-task heads without a graph: jigsaw: its head does not run on one photo's feature map (RuntimeError: x)"
    (d / "model.json").write_text(json.dumps(card, indent=2) + "\n")
    (d / "app_precomputed.npz").write_bytes(b"not listed in the card")
    verify_model_dir(d)
    return d


def test_add_head_graphs__adds_the_jigsaw_graph_and_keeps_every_file_byte_identical(multitask_without_graph, multitask_exported):
    from ssl_train.model_writer import add_sub_head_graphs

    d = multitask_without_graph
    before = {p.name: _sha(p) for p in d.iterdir() if p.name != "model.json"}
    path, added = add_sub_head_graphs(d, parity_data=FLOWERS)
    assert path == d and added == ["jigsaw"]
    card = verify_model_dir(d)
    assert {p.name: _sha(p) for p in d.iterdir() if p.name not in ("model.json", "head-jigsaw.onnx")} == before
    assert {k: v for k, v in card["files"].items() if k != "head-jigsaw.onnx"} == {k: before[k] for k in ("model.onnx", "weights.safetensors")}
    assert card["files"]["head-jigsaw.onnx"] == _sha(d / "head-jigsaw.onnx")
    want = verify_model_dir(multitask_exported)["sub_head_graphs"]["jigsaw"]
    got = card["sub_head_graphs"]["jigsaw"]
    assert {k: got[k] for k in ("file", "inputs", "outputs", "external_data")} == {k: want[k] for k in ("file", "inputs", "outputs", "external_data")}
    assert "jigsaw in head-jigsaw.onnx" in card["head_note"] and "without a graph" not in card["head_note"]
    assert card["sub_head_graphs_added"]["sub_tasks"] == ["jigsaw"] and card["onnx_parity_max_abs_diff"] <= PARITY_TOL
    assert [p.name for p in d.parent.iterdir()] == ["multitask"]  # no temporary folder left
    assert parity_check(d, real_photos(3)) <= PARITY_TOL
    # a second run finds nothing to add and writes nothing
    stamp = (d / "model.json").stat().st_mtime_ns, _sha(d / "model.json")
    assert add_sub_head_graphs(d, parity_data=FLOWERS) == (d, [])
    assert ((d / "model.json").stat().st_mtime_ns, _sha(d / "model.json")) == stamp


def test_add_head_graphs__a_failed_check_leaves_the_folder_as_it_was(multitask_without_graph, monkeypatch):
    import ssl_train.model_writer as W
    from ssl_train.errors import ExportError

    d = multitask_without_graph
    before = {p.name: _sha(p) for p in d.iterdir()}
    monkeypatch.setattr(W, "parity_check", lambda *a, **k: 1.0)
    with pytest.raises(ExportError, match="left as it was"):
        W.add_sub_head_graphs(d, parity_data=FLOWERS)
    assert {p.name: _sha(p) for p in d.iterdir()} == before
    assert [p.name for p in d.parent.iterdir()] == ["multitask"]


def test_cli__add_head_graphs(multitask_without_graph, exported, tmp_path, capsys, monkeypatch):
    import ssl_train.model_writer as W
    from ssl_train.__main__ import main

    d = multitask_without_graph
    assert main(["export", "--add-head-graphs", str(d), "--parity-data", str(FLOWERS)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["added"] == {"jigsaw": "head-jigsaw.onnx"} and set(out["unchanged_files_sha256"]) == {"model.onnx", "weights.safetensors"}
    # bad input: one line, exit code 2, before any work (no weights loaded)
    monkeypatch.setattr(W, "load_model_weights", lambda *a, **k: pytest.fail("loaded weights of a folder it should refuse"))
    for folder, msg in ((tmp_path / "nope", "does not exist"), (exported, "holds a 'rotation' model, not a 'multitask' one")):
        assert main(["export", "--add-head-graphs", str(folder)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and msg in err and err.count("\n") == 1
    assert main(["export", "--add-head-graphs", str(d), "--metrics", "{}"]) == 2
    assert "takes only --parity-data" in capsys.readouterr().err


def test_export__rotation_grid_and_hidden_head_export_and_match_pytorch(tiny_folder, tmp_path):
    # the 2×2-grid head slices the feature map (3×3 at 96 px: overlapping cells); ONNX must keep every
    # cell, and the hidden layer's batch norm must run in eval mode
    cfg = DataConfig(root=str(tiny_folder), image_size=96, split_file=str(tmp_path / "split.csv"))
    ds = load_dataset(cfg, use_cache=False)
    from ssl_train.tasks import get_task

    task = get_task("rotation", {"color_jitter": "0", "grid": "2", "hidden": "16"})
    pretrain(task, SplitData(ds, load_or_make_split(ds, cfg), cfg), tmp_path / "run", SMALL, TrainConfig(epochs=1, batch_size=8, lr=0.05, device="cpu"), progress=False)
    out = export_model(tmp_path / "run" / CHECKPOINT_NAME, tmp_path / "models", "rotation", metrics={}, int8=True)
    encoder, head, _ = load_model_weights(out)
    assert head.grid == 2 and isinstance(head.net, torch.nn.Sequential)
    files = sorted((FLOWERS / "sunflower").glob("*.jpg"))[:3]
    photos = np.stack([to_uint8_chw(square_resize(open_rgb(f), 96)) for f in files])
    with torch.no_grad():
        want = head(encoder(torch.from_numpy(onnx_input(photos)))).numpy()
    got = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"]).run(["logits"], {"input": onnx_input(photos)})[0]
    assert got.shape == (3, 4) and np.abs(got - want).max() <= PARITY_TOL

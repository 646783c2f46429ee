"""Fixtures for the app: a small real photo set, tiny real models exported from a 1-epoch run.

Everything is made once per test session in a temporary folder (about 15 s): 5 classes × 7 real
bundled photos at 32 px, a 1-epoch rotation encoder with stages of 8, 16, 16, 32 channels, and
the random-init reference. The app is pointed at them through its environment variables, so
nothing in the repository (models/, reports/, the user's cache) is read or written.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ..conftest import FLOWERS, REPO, copy_photos

CLASSES = ("daisy", "dandelion", "rose", "sunflower", "tulip")
PER_CLASS = 7  # → 1 test photo per class: maps use the PCA path (UMAP has its own test)
SIZE = 32
APP = REPO / "app" / "streamlit_app.py"


def photo_bytes(cls: str = "sunflower", i: int = -1) -> tuple[str, bytes]:
    """A real bundled photo not in the fixture folder (from the end of the class)."""
    p = sorted((FLOWERS / cls).glob("*.jpg"))[i]
    return p.name, p.read_bytes()


@pytest.fixture(scope="session")
def app_env(tmp_path_factory):
    """Fixture photos (with their split.csv) and a reports folder, made once per session."""
    base = tmp_path_factory.mktemp("app")
    data = copy_photos(base / "flowers", classes=CLASSES, per_class=PER_CLASS)
    from ssl_train.data import DataConfig, load_split_data

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRETEXT_LAB_CACHE", str(base / "cache"))  # never the user's cache
        load_split_data(DataConfig(root=str(data), image_size=SIZE))  # writes data/split.csv
    reports = base / "reports"
    reports.mkdir()
    (reports / "protocol.json").write_text(json.dumps({"config": {"protocol": {"tasks": ["rotation"], "fractions": [0.1, 1.0], "seeds": [0, 1], "modes": ["linear", "finetune"]}},
                                                       "runs": [{"task": t, "mode": m, "fraction": f, "seed": s, "test_accuracy": a + 0.01 * s}
                                                                for t, a in (("scratch", 0.4), ("rotation", 0.5)) for m in ("linear", "finetune")
                                                                for f in (0.1, 1.0) for s in (0, 1)]}))
    return {"base": base, "data": data, "reports": reports}


@pytest.fixture(autouse=True)
def _app_paths(app_env, monkeypatch):
    """Every app test reads the fixture photos and reports, never the repository's."""
    monkeypatch.setenv("PRETEXT_LAB_DATA", str(app_env["data"]))
    monkeypatch.setenv("PRETEXT_LAB_REPORTS", str(app_env["reports"]))


@pytest.fixture(scope="session")
def made_models(app_env) -> Path:
    """models/rotation (1 epoch, real photos) and models/random_init, exported by ssl_train.export."""
    from ssl_train.data import DataConfig, load_split_data
    from ssl_train.encoders import EncoderConfig
    from ssl_train.export import export_model, export_random_reference
    from ssl_train.tasks import get_task
    from ssl_train.train import CHECKPOINT_NAME, TrainConfig, pretrain

    base = app_env["base"]
    small = EncoderConfig(widths=(8, 16, 16, 32), blocks=(1, 1, 1, 1))
    out = base / "models-made"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRETEXT_LAB_CACHE", str(base / "cache"))
        data = load_split_data(DataConfig(root=str(app_env["data"]), image_size=SIZE))
        pretrain(get_task("rotation", {"color_jitter": "0"}), data, base / "run", small,
                 TrainConfig(epochs=1, batch_size=16, lr=0.05, device="cpu"), progress=False)
        export_model(base / "run" / CHECKPOINT_NAME, out, "rotation")
        export_random_reference(out, small, SIZE, seed=0)
    return out


# tiny settings per task: heads small, k and the permutation set small enough for 28 training photos
TASK_OPTIONS = {
    "jigsaw": {"n_permutations": "10", "tile_dim": "16", "hidden": "32"},
    "colorization": {"width": "16"},
    "context": {"patch_dim": "16", "hidden": "32"},
    "inpainting": {"width": "16"},
    "superres": {"width": "16"},
    "pirl": {"embed_dim": "16", "n_negatives": "16"},
    "simclr": {"embed_dim": "16", "hidden": "32"},
    "deepcluster": {"k": "5", "pca_dim": "8", "hidden": "16"},
    "synthetic": {"width": "16", "disc_hidden": "16"},
    "multitask": {"tasks": "rotation:1,jigsaw:0.5", "options": '{"jigsaw": {"n_permutations": 10, "tile_dim": 16, "hidden": 32}}'},
}


@pytest.fixture(scope="session")
def made_task_models(made_models, app_env) -> Path:
    """The two models of ``made_models`` plus one model per other registered task (1 epoch at 32 px,
    tiny encoder and heads; 32 px leaves 8-px jigsaw/context tiles), exported once per session."""
    from ssl_train.data import DataConfig, load_split_data
    from ssl_train.encoders import EncoderConfig
    from ssl_train.export import export_model
    from ssl_train.tasks import get_task
    from ssl_train.train import CHECKPOINT_NAME, TrainConfig, pretrain

    base = app_env["base"]
    small = EncoderConfig(widths=(8, 16, 16, 32), blocks=(1, 1, 1, 1))
    out = base / "models-tasks"
    shutil.copytree(made_models, out)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRETEXT_LAB_CACHE", str(base / "cache"))
        data = load_split_data(DataConfig(root=str(app_env["data"]), image_size=SIZE))
        for name, opts in TASK_OPTIONS.items():
            run = base / f"run-{name}"
            pretrain(get_task(name, opts), data, run, small, TrainConfig(epochs=1, batch_size=16, lr=0.05, device="cpu"), progress=False)
            export_model(run / CHECKPOINT_NAME, out, name)
    return out


@pytest.fixture
def task_models(made_task_models, tmp_path, monkeypatch) -> Path:
    """A private copy of the models of every task for one test; the app reads it."""
    dst = tmp_path / "models"
    shutil.copytree(made_task_models, dst)
    monkeypatch.setenv("PRETEXT_LAB_MODELS", str(dst))
    return dst


@pytest.fixture
def models(made_models, tmp_path, monkeypatch) -> Path:
    """A private copy of the two models for one test (it may break or add folders)."""
    dst = tmp_path / "models"
    shutil.copytree(made_models, dst)
    monkeypatch.setenv("PRETEXT_LAB_MODELS", str(dst))
    return dst


@pytest.fixture
def app(models, app_env):
    """An AppTest of the whole app (entry script + st.navigation), not yet run."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP), default_timeout=90)


@pytest.fixture
def task_app(task_models, app_env):
    """An AppTest of the whole app over the models of every task, not yet run."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP), default_timeout=120)


def page(at, name: str):
    """Run the app, switch to views/<name>.py and run it."""
    at.run()
    return at.switch_page(f"views/{name}.py").run()


def texts(at) -> str:
    """All markdown, captions, infos, warnings and errors on the page, one string."""
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "title", "subheader"):
        parts += [str(e.value) for e in at.get(kind)]
    return "\n".join(parts)


def break_file(model_dir: Path, name: str = "model.onnx") -> None:
    p = model_dir / name
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def fake_task(models_dir: Path, task: str = "jigsaw") -> Path:
    """A copy of the rotation model whose card says another task (files still verify)."""
    dst = models_dir / task
    shutil.copytree(models_dir / "rotation", dst)
    card = json.loads((dst / "model.json").read_text())
    card["task"] = task
    card["task_config"] = {}  # rotation's own fields (e.g. grid) are not the other task's: its defaults
    card["output_names"] = ["features"]
    (dst / "model.json").write_text(json.dumps(card))
    return dst


os.environ.setdefault("MPLBACKEND", "Agg")

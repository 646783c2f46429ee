"""Where the app finds things. Every path can be moved with an environment variable (tests do)."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

MAX_UPLOAD_MB = 20  # keep equal to server.maxUploadSize in .streamlit/config.toml
MAX_UPLOADS = 12  # photos per uploader; more are ignored with a note
PRECOMPUTED_NAME = "app_precomputed.npz"  # beside model.json, written by `python -m app.precompute`
RANDOM_INIT = "random_init"  # the exported no-pretraining reference (ssl_train.model_files.RANDOM_TASK)
# the one task the app names: the talk's story follows it (app.talk.PROTAGONIST), and a page features it when
# no model card records a score; every other task is known only through its panel (app/panels/<task>.py)
PROTAGONIST = "rotation"


def models_dir() -> Path:
    """``$PRETEXT_LAB_MODELS`` or ``<repo>/models``: one sub-folder per exported model."""
    return Path(os.environ.get("PRETEXT_LAB_MODELS") or REPO / "models")


def data_dir() -> Path:
    """``$PRETEXT_LAB_DATA`` or ``<repo>/data/flowers``: the bundled photos (one folder per class,
    with split.csv)."""
    return Path(os.environ.get("PRETEXT_LAB_DATA") or REPO / "data" / "flowers")


def reports_dir() -> Path:
    """``$PRETEXT_LAB_REPORTS`` or ``<repo>/reports``: protocol.json and protocol.png."""
    return Path(os.environ.get("PRETEXT_LAB_REPORTS") or REPO / "reports")


def cache_dir() -> Path:
    """Where the app keeps layouts it had to compute itself: ``$PRETEXT_LAB_CACHE/app`` (default
    ``~/.cache/pretext-lab/app``), the same root as the training package's decoded-photo cache."""
    return Path(os.environ.get("PRETEXT_LAB_CACHE") or Path.home() / ".cache" / "pretext-lab") / "app"


def display(path: Path) -> str:
    """A path as a user should type it: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)

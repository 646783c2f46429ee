"""Streamlit glue shared by the pages: cached resources and the widgets every page uses.

Caches are keyed by file signatures (name, size, mtime of every file in a model folder), so a
re-exported model is picked up without restarting the server. Only read-only things are cached
here (onnxruntime sessions, decoded bundled photos, layouts); anything a person makes (uploads,
trained models) lives in their own session state (``app.state``).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import streamlit as st

from . import embedding, photos, state
from .config import MAX_UPLOADS, data_dir, display, models_dir
from .inference import ModelEntry, ModelFileError, OnnxModel, folder_signature, list_models
from .inference import featured_model  # noqa: F401 (pages pick their default model through ui)
from .uploads import ACCEPTED_TYPES, UploadedPhoto, md_escape, open_upload

HOW_TO_MAKE_MODELS = """\
```bash
# pretrain an encoder on the bundled photos (labels unused; ~40 s per epoch on 2 CPU cores), then export it
.venv/bin/python -m ssl_train pretrain --task rotation --out runs/rotation
.venv/bin/python -m ssl_train export --checkpoint runs/rotation/checkpoint.safetensors --name rotation --out {out}
# the no-pretraining reference every page compares with
.venv/bin/python -m ssl_train export --random-init --out {out}
# optional: precompute features and maps so the Embedding map opens instantly
.venv/bin/python -m app.precompute
```"""


# -- models -------------------------------------------------------------------------------------------
def _models_signature(root: Path) -> tuple:
    if not root.is_dir():
        return ()
    return tuple((p.name, folder_signature(p)) for p in sorted(root.iterdir()) if p.is_dir())


@st.cache_data(show_spinner=False, max_entries=8)
def _list_models(root: str, signature: tuple) -> list[ModelEntry]:
    return list_models(root)


def all_models() -> list[ModelEntry]:
    """Every folder in the models directory, verified (cached until a file changes)."""
    root = models_dir()
    return _list_models(str(root), _models_signature(root))


@st.cache_resource(show_spinner=False, max_entries=16)
def _onnx_model(path: str, signature: tuple) -> OnnxModel:
    return OnnxModel(path)


def onnx_model(entry: ModelEntry) -> OnnxModel:
    """The shared onnxruntime session of a model (raises ModelFileError if it cannot load)."""
    return _onnx_model(str(entry.path), folder_signature(entry.path))


def usable_models(show_problems: bool = True) -> list[ModelEntry]:
    """Valid models; shows one st.error per broken folder (file and fix) and, when there is no
    valid model, how to make some. Pages call this first."""
    entries = all_models()
    ok = []
    for e in entries:
        if not e.ok:
            if show_problems:
                st.error(f"Model **{md_escape(e.name)}** cannot be used: {e.error}", icon="🧩")
            continue
        ok.append(e)
    if not ok:
        root = models_dir()
        where = f"`{display(root)}` is empty" if root.is_dir() and not entries else (
            f"`{display(root)}` does not exist" if not root.is_dir() else f"no usable model in `{display(root)}`")
        st.warning(f"No models to show: {where}. Make them with these commands (from the repository root), "
                   f"or point `PRETEXT_LAB_MODELS` at a folder of exported models:", icon="📦")
        st.markdown(HOW_TO_MAKE_MODELS.format(out=display(root)))
    return ok


def model_by_name(entries: list[ModelEntry], name: str | None) -> ModelEntry | None:
    return next((e for e in entries if e.name == name), None)


# -- bundled photos -----------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=4)
def _photo_index(root: str, mtime: float) -> photos.PhotoIndex:
    return photos.index(root)


def photo_index() -> photos.PhotoIndex | None:
    """Index of the bundled photos, or None after showing why it is missing."""
    root = data_dir()
    try:
        mtime = (root / photos.SPLIT_NAME).stat().st_mtime
    except OSError:
        mtime = 0.0
    try:
        return _photo_index(str(root), mtime)
    except photos.DataMissing as e:
        st.error(f"Bundled photos unavailable: {e}", icon="🌼")
        return None


@st.cache_data(show_spinner=False, max_entries=1024)
def thumbnail(root: str, file: str, size: int = 192, square: bool = False):
    return photos.thumbnail(root, file, size, square)


@st.cache_resource(show_spinner="Decoding the bundled photos (once per server)…", max_entries=2)
def decoded(root: str, size: int, key: str):
    """ssl_train's SplitData at ``size`` px (shared, read-only)."""
    return photos.decoded(root, size)


@st.cache_data(show_spinner=False, max_entries=8)
def _layout(path: str, signature: tuple, root: str, key: str) -> embedding.Layout:
    entry = next(e for e in list_models(Path(path).parent) if e.name == Path(path).name)
    if not entry.ok:
        raise ModelFileError(entry.error)
    found = embedding.find(entry.path, entry.card, key, photos.index(root).files)
    if found is not None:
        return found
    model = _onnx_model(path, signature)
    built = embedding.build(model, root)
    try:
        built.meta["saved_to"] = str(embedding.save(built, embedding.precomputed_paths(entry.path, entry.card, key)[1]))
    except OSError:
        pass  # the cache folder is optional
    built.meta["computed_here"] = True
    return built


def layout(entry: ModelEntry, index: photos.PhotoIndex) -> embedding.Layout:
    """Precomputed features/map of a model (from its folder or the cache; else computed once,
    with a spinner, and saved to the cache folder)."""
    if not embedding.available(entry.path, entry.card, index.key):
        with st.spinner(f"First use of **{md_escape(entry.name)}**: computing features of the bundled photos and a UMAP map "
                        f"(about 30 s; `python -m app.precompute` makes this instant)…"):
            return _layout(str(entry.path), folder_signature(entry.path), str(index.root), index.key)
    return _layout(str(entry.path), folder_signature(entry.path), str(index.root), index.key)


@st.cache_resource(show_spinner=False, max_entries=4)
def umap_reducer(path: str, signature: tuple, key: str, n: int):
    """UMAP refitted on a layout's map features (same parameters and seed → same layout), for
    placing uploads with ``transform``. Slow once per model per server."""
    lay = _layout(path, signature, str(data_dir()), key)
    return embedding.fit_umap(lay.map_features)


# -- uploads ------------------------------------------------------------------------------------------
def photo_input(uploader_key: str, page: str, label: str = "Upload photos") -> list[UploadedPhoto]:
    """An uploader whose good photos are shared with the other pages of this session.

    Every bad file gets its own one-line st.error right here; the good ones are returned. With the
    uploader empty, the photos last uploaded on any page are reused (and can be forgotten).
    """
    store = st.session_state[state.UPLOADS]
    files = st.file_uploader(
        label, type=list(ACCEPTED_TYPES), accept_multiple_files=True, key=uploader_key,
        help=f"JPEG, PNG, WebP, GIF, BMP or TIFF; up to {MAX_UPLOADS} photos at a time. Photos stay in your session only.",
    ) or []
    if files:
        known = {p.digest: p for p in store["photos"]}
        got: list[UploadedPhoto] = []
        for f in files[:MAX_UPLOADS]:
            data = f.getvalue()
            digest = hashlib.sha1(data).hexdigest()
            got.append(known.get(digest) or open_upload(f.name, data))
        if len(files) > MAX_UPLOADS:
            st.warning(f"Only the first {MAX_UPLOADS} of {len(files)} files are used.")
        store["photos"], store["page"] = got, page
        for p in got:
            if p.error:
                st.error(p.message(), icon="🚫")
        for p in got:
            if p.ok and len(p.notes) > 1:  # more than "JPEG 640×480": say what was done to the file
                st.caption(f"ℹ️ {p.message()}")
    good = [p for p in store["photos"] if p.ok]
    if not files and good:
        c1, c2 = st.columns([4, 1])
        c1.caption(f"Using {len(good)} photo{'s' if len(good) > 1 else ''} you uploaded on *{store['page']}*.")
        if c2.button("Forget them", key=f"{uploader_key}.forget"):
            store["photos"], store["page"] = [], ""
            st.rerun()
    return good


def show_photo_grid(images: list, captions: list[str], columns: int = 4, width: int = 160) -> None:
    for i in range(0, len(images), columns):
        cols = st.columns(columns)
        for c, img, cap in zip(cols, images[i : i + columns], captions[i : i + columns]):
            if img is not None:
                c.image(img, caption=cap, width=width)
            else:
                c.caption(f"{cap} (unreadable)")


def feature_size_words(card: dict | None) -> str:
    """Which photo size the map's and the linear probe's features come from, in a few words: the
    encoder's input size (the layout is computed there), and when the protocol judges it at another
    size (``metrics.downstream_image_size``: rotation is pretrained at 128 px, judged at 96 px), that
    the protocol's numbers are at that size."""
    from .fewshot import finetune_image_size

    card = card or {}
    own = int((card.get("input") or {}).get("image_size") or 0)
    if not own:
        return ""
    down = finetune_image_size(card)  # the protocol's size, or the card's own where it names none
    if down == own:
        return f"features of {own}-px photos"
    return (f"features of {own}-px photos, this encoder's input size (the protocol's tables judge every encoder on "
            f"{down}-px photos, so its numbers there differ)")


def percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def confusion_figure(cm: list[list[int]], classes: list[str], title: str):
    import plotly.graph_objects as go

    z = np.asarray(cm)
    fig = go.Figure(go.Heatmap(z=z, x=classes, y=classes, colorscale="Blues", showscale=False, text=z, texttemplate="%{text}",
                               hovertemplate="true %{y}, predicted %{x}: %{z} photos<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed", height=330,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig

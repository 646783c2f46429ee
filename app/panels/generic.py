"""Any encoder, whatever its task: the test photos it finds most like yours. The explorer's panel
for a model whose task has no panel of its own (and the heart of random init's)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from app import embedding, ui
from app.inference import ModelFileError
from app.uploads import md_escape

from . import GENERIC, register, register_compute
from .common import header

SHOWN = 6  # look-alikes shown per photo

TITLE = "Which photos look alike to this model?"
QUESTION = ("Every encoder turns a photo into a list of numbers, its **features**. Photos with close features look alike "
            "to the model. Here: the test photos whose features are closest to your photo's.")


def look_alikes(entry, items, index, lay=None) -> list[tuple[str, list[tuple[str, str, float]], str]] | None:
    """For each photo: (name, [(test photo file, its class, likeness)] most alike first, the kNN
    vote's class) from the model's precomputed features; None after one line if unavailable."""
    try:
        lay = lay or ui.layout(entry, index)
        model = ui.onnx_model(entry)
    except ModelFileError as e:
        st.error(f"Model **{md_escape(entry.name)}**: {md_escape(str(e))}")
        return None
    feats = model.features(np.stack([model.prepare(img) for _, img in items]))
    order, sims = embedding.neighbours(lay, feats, SHOWN)
    votes, _ = embedding.knn_vote(lay, feats)
    files = lay.files[lay.map_idx]
    labels = lay.labels[lay.map_idx]
    return [(name, [(str(files[j]), lay.classes[int(labels[j])], float(s)) for j, s in zip(order[i], sims[i])], lay.classes[votes[i]])
            for i, (name, _) in enumerate(items)]


def show_look_alikes(index, name: str, found: list[tuple[str, str, float]], width: int = 100) -> None:
    ui.show_photo_grid([ui.thumbnail(str(index.root), f, 160, True) for f, _, _ in found],
                       [f"{c} · {s:.2f}" for _, c, s in found], columns=len(found), width=width)


@register(GENERIC, "Look-alikes", TITLE, QUESTION, order=99)
def show(entry, items, ctx) -> None:
    header(entry, TITLE, QUESTION, None, int((entry.card or {}).get("input", {}).get("image_size", 0)) or 0)
    if ctx.index is None:
        st.info("The bundled test photos are needed to find look-alikes.")
        return
    found = look_alikes(entry, items, ctx.index)
    for name, near, vote in found or []:
        with st.container(border=True):
            st.markdown(f"##### {md_escape(name)} — its closest photos are mostly **{vote}**")
            show_look_alikes(ctx.index, name, near)
    st.caption("The number under each photo is the likeness of the features (cosine similarity, 1 = the same direction). "
               "The flower names come from the labels, which the encoder never saw.")


@register_compute(GENERIC)
def compute(entry, img) -> list:
    from app.config import data_dir

    from .common import bundled_index

    index = bundled_index(str(data_dir()))
    return look_alikes(entry, [("photo", img)], index, embedding.find(entry.path, entry.card, index.key, index.files))

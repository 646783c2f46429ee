"""Embedding map: the test photos placed by their features (UMAP), two encoders side by side."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app import embedding, state, ui
from app.config import RANDOM_INIT, data_dir
from app.inference import ModelFileError
from app.uploads import md_escape
from ssl_train.images import square_resize

COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]  # Tableau 10: tell classes apart


def figure(lay: embedding.Layout, xy: np.ndarray, upload_xy: np.ndarray | None, upload_names: list[str]) -> go.Figure:
    fig = go.Figure()
    files = lay.files[lay.map_idx]
    labels = lay.labels[lay.map_idx]
    for c, name in enumerate(lay.classes):
        sel = np.nonzero(labels == c)[0]
        fig.add_trace(go.Scattergl(
            x=xy[sel, 0], y=xy[sel, 1], mode="markers", name=name,
            marker=dict(size=6, color=COLOURS[c % len(COLOURS)], opacity=0.8),
            customdata=np.stack([files[sel], np.full(len(sel), name)], 1),
            hovertemplate="%{customdata[0]}<br>class: %{customdata[1]}<extra></extra>",
        ))
    if upload_xy is not None and len(upload_xy):
        fig.add_trace(go.Scatter(
            x=upload_xy[:, 0], y=upload_xy[:, 1], mode="markers+text", name="your photos",
            text=[n if len(n) <= 18 else n[:16] + "…" for n in upload_names], textposition="top center",
            textfont=dict(size=13, color="black"), marker=dict(size=24, symbol="star", color="black", line=dict(width=2, color="white")),
            customdata=np.stack([np.asarray(upload_names, dtype=object), np.full(len(upload_names), "upload", dtype=object)], 1),
            hovertemplate="%{customdata[0]} (your photo)<extra></extra>",
        ))
    fig.update_layout(
        height=470, margin=dict(l=0, r=0, t=10, b=0), legend=dict(orientation="h", y=-0.02, yanchor="top"),
        xaxis=dict(visible=False), yaxis=dict(visible=False), dragmode="pan",
    )
    return fig


def encoder_map(side: str, key: str, entries, index, uploads, exact: bool) -> None:
    names = [e.name for e in entries]
    name = st.selectbox(f"{side} encoder", names, key=key, format_func=lambda n: ui.model_by_name(entries, n).label())
    entry = ui.model_by_name(entries, name)
    try:
        lay = ui.layout(entry, index)
        model = ui.onnx_model(entry) if uploads else None
    except ModelFileError as e:
        st.error(f"Model **{md_escape(name)}**: {e}")
        return
    except Exception as e:  # noqa: BLE001 — one broken map must not take the page down
        st.error(f"The map of **{md_escape(name)}** could not be made: {type(e).__name__}: {str(e)[:200]}")
        return
    xy = lay.xy
    up_xy, up_feats = None, None
    if uploads:
        up_feats = model.features(np.stack([model.prepare(p.image) for p in uploads]))
        if exact and lay.method == "umap":
            with st.spinner("Fitting UMAP on this server (once per model)…"):
                reducer = ui.umap_reducer(str(entry.path), ui.folder_signature(entry.path), index.key, len(lay.map_idx))
            xy = reducer.embedding_.astype(np.float32)
            up_xy = reducer.transform(up_feats)
        else:
            up_xy = embedding.place(lay, up_feats)
    c1, c2 = st.columns(2)
    c1.metric("kNN accuracy", ui.percent(lay.knn_accuracy), help=(
        f"k = {lay.meta.get('knn_k', embedding.KNN_K)} nearest training photos (cosine, distance-weighted), all "
        f"{int((~lay.is_test).sum())} training labels, scored on the {int(lay.is_test.sum())} test photos."))
    c2.metric("photos on the map", f"{len(lay.map_idx)}", help="The test split (a fixed sample if over 1500 photos).")
    event = st.plotly_chart(figure(lay, xy, up_xy, [p.name for p in uploads]), key=f"{key}.chart", on_select="rerun",
                            selection_mode="points", config={"displaylogo": False, "scrollZoom": True})
    picked = [p for p in ((event or {}).get("selection", {}) or {}).get("points", []) if p.get("customdata")]
    shown = [p["customdata"] for p in picked if p["customdata"][1] != "upload"][:4]
    if shown:
        cols = st.columns(4)
        for col, (file, cls) in zip(cols, shown):
            col.image(ui.thumbnail(str(data_dir()), str(file)), caption=f"{cls} · {str(file).rsplit('/', 1)[-1]}", width=140)
        st.caption("Double-click the map to clear the selection.")
    else:
        st.caption("Click a dot to see its photo (shift-click adds more); hover shows the file name and class. Scroll to zoom.")
    if uploads:
        order, sims = embedding.neighbours(lay, up_feats)
        votes, share = embedding.knn_vote(lay, up_feats)
        for i, p in enumerate(uploads):
            st.markdown(f"**{md_escape(p.name)}** — kNN vote: **{lay.classes[votes[i]]}** ({share[i, votes[i]]:.0%}); nearest test photos:")
            cols = st.columns(embedding.NEIGHBOURS + 1)
            cols[0].image(square_resize(p.image, 128), caption="your photo", width=90)
            for col, j, s in zip(cols[1:], order[i], sims[i]):
                f = str(lay.files[lay.map_idx[j]])
                col.image(ui.thumbnail(str(data_dir()), f, 128, square=True), caption=f"{lay.classes[lay.labels[lay.map_idx[j]]]} · {s:.2f}", width=90)
    origin = "precomputed" if "loaded_from" in lay.meta else "computed on this server"
    st.caption(f"Layout {origin} ({lay.method}).")


st.title("Embedding map")
st.markdown(
    "Every dot is a **test photo**, placed by [UMAP](https://umap-learn.readthedocs.io) so that photos with similar "
    "encoder features land close together. The colour is the flower's true class, which the encoder never saw: a good "
    "encoder makes single-colour islands. **kNN accuracy** measures the same thing: the share of test photos whose "
    "20 nearest training photos mostly have the right class."
)
entries = ui.usable_models()
index = ui.photo_index()
if not entries or index is None:
    st.stop()

uploads = ui.photo_input(state.MAP_UPLOADER, "Embedding map", label="Upload photos to place them on the maps (★)")
names = [e.name for e in entries]
if state.MAP_LEFT not in st.session_state or st.session_state[state.MAP_LEFT] not in names:
    st.session_state[state.MAP_LEFT] = RANDOM_INIT if RANDOM_INIT in names else names[0]
if state.MAP_RIGHT not in st.session_state or st.session_state[state.MAP_RIGHT] not in names:
    others = [n for n in names if n != st.session_state[state.MAP_LEFT]]
    best = ui.featured_model(entries, method="knn")  # the map shows frozen features, which kNN scores
    st.session_state[state.MAP_RIGHT] = best if best in others else (others[0] if others else names[0])
exact = False
if uploads:
    exact = st.toggle(
        "Place your photos with UMAP's own transform", key=state.MAP_EXACT,
        help="Off: each photo sits at the similarity-weighted mean of its 5 nearest test photos (instant; how UMAP's "
             "transform starts). On: refits UMAP on this server (same seed, same map) and runs transform — about 15 s the first time.",
    )
left, right = st.columns(2, gap="large")
with left:
    encoder_map("Left", state.MAP_LEFT, entries, index, uploads, exact)
with right:
    encoder_map("Right", state.MAP_RIGHT, entries, index, uploads, exact)

"""Embedding map: the test photos placed by their features (UMAP), two encoders side by side.

- Hover a dot: its photo appears beside the pointer (``app.map_hover``: plotly's own hover label
  cannot hold an image, so a tiny in-page component listens to the native charts' hover events).
- Drag a lasso or box (or click dots) on either map: the same photos are highlighted on both maps
  (a yellow rim, the rest faded), and a gallery under the maps shows them with their class counts
  in plain words. The selection is kept as photo files (``state.MAP_SELECTION``), the one handle
  meaning the same photo on both maps; "Clear selection" drops it.
- Uploads are ★ on both maps, with their nearest test photos and kNN vote.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app import embedding, map_hover, map_selection, palette, photos, state, ui
from app.config import RANDOM_INIT, data_dir
from app.inference import ModelFileError
from app.uploads import md_escape
from ssl_train.images import square_resize

SIDES = ("Left", "Right")
VIEWS = ("Side by side", "Stacked")
HEIGHT = {"Side by side": 640, "Stacked": 720}  # px: at 1400×1000 a side-by-side map fills the window below its header


def figure(lay: embedding.Layout, xy: np.ndarray, upload_xy: np.ndarray | None, upload_names: list[str],
           selected: np.ndarray, height: int, revision: str) -> go.Figure:
    """One encoder's map: a trace per class (colour from ``app.palette``), ★ uploads on top.

    ``xy`` (M, 2) positions of the map photos (``lay.map_idx`` order); ``upload_xy`` (U, 2) or None;
    ``selected`` (M,) bool: photos drawn larger with a yellow rim while the rest fade; ``height`` in
    px; ``revision``: plotly's ``uirevision`` (zoom and pan survive reruns with the same revision)."""
    fig = go.Figure()
    files = lay.files[lay.map_idx]
    labels = lay.labels[lay.map_idx]
    colours = palette.class_colours(lay.classes)
    any_selected = bool(selected.any())
    for c, name in enumerate(lay.classes):
        idx = np.nonzero(labels == c)[0]
        trace = dict(
            x=xy[idx, 0], y=xy[idx, 1], mode="markers", name=name,
            marker=dict(size=8, color=colours[c], opacity=0.85),
            customdata=np.stack([files[idx], np.full(len(idx), name)], 1),
            hovertemplate="<b>%{customdata[1]}</b><extra></extra>",  # the photo itself comes from app.map_hover
        )
        if any_selected:  # plotly's own selected/unselected styles: the same look as a selection made on this map
            trace.update(selectedpoints=np.nonzero(selected[idx])[0].tolist(),
                         selected=dict(marker=dict(size=11, opacity=1.0)), unselected=dict(marker=dict(opacity=0.12)))
        fig.add_trace(go.Scattergl(**trace))
    if any_selected:  # the rim: a yellow ring with a thin dark edge round each selected photo (the edge keeps it
        # apart from yellow dandelion dots); no customdata: a ring is not a photo of its own
        for size, width, colour, label in ((19, 1.5, palette.UPLOAD, None), (15, 3.0, palette.HIGHLIGHT, f"selected ({int(selected.sum())})")):
            fig.add_trace(go.Scattergl(
                x=xy[selected, 0], y=xy[selected, 1], mode="markers", name=label or "", showlegend=label is not None,
                marker=dict(size=size, symbol="circle-open", color=colour, line=dict(width=width, color=colour)),
                hoverinfo="skip",
            ))
    if upload_xy is not None and len(upload_xy):
        fig.add_trace(go.Scatter(
            x=upload_xy[:, 0], y=upload_xy[:, 1], mode="markers+text", name="your photos",
            text=[n if len(n) <= 18 else n[:16] + "…" for n in upload_names], textposition="top center",
            textfont=dict(size=14, color=palette.UPLOAD),
            marker=dict(size=26, symbol="star", color=palette.UPLOAD, line=dict(width=2, color="white")),
            customdata=np.stack([np.asarray(upload_names, dtype=object), np.full(len(upload_names), map_selection.UPLOAD_TAG, dtype=object)], 1),
            hovertemplate="<b>%{customdata[0]}</b> (your photo)<extra></extra>",
        ))
    fig.update_layout(
        height=height, margin=dict(l=0, r=0, t=28, b=0), legend=dict(orientation="h", y=0, yanchor="top", x=0, font=dict(size=14)),
        xaxis=dict(visible=False), yaxis=dict(visible=False), dragmode="lasso", hovermode="closest",
        uirevision=revision, meta=map_hover.META,
    )
    return fig


def chart_key(side: str, model: str) -> str:
    """The st.plotly_chart key of one side's map: a new model or a bumped generation is a fresh chart
    (with no selection box of its own)."""
    return f"{state.MAP_CHART}.{side}.{model}.{st.session_state[state.MAP_CHART_GEN][side]}"


def _on_select(side: str, key: str) -> None:
    """A selection on one map (box, lasso, click; empty after a double-click) becomes the page's
    selection; the other map's own stale selection box, if any, is dropped with a fresh chart."""
    files = map_selection.selected_files(st.session_state.get(key))
    st.session_state[state.MAP_SELECTION] = files
    st.session_state[state.MAP_SELECTED_ON] = side if files else None
    for other in SIDES:
        if other != side:
            gen = st.session_state[state.MAP_CHART_GEN]
            other_key = chart_key(other, st.session_state.get(state.MAP_LEFT if other == "Left" else state.MAP_RIGHT, ""))
            if map_selection.selected_files(st.session_state.get(other_key)):
                st.session_state[state.MAP_CHART_GEN] = {**gen, other: gen[other] + 1}


def _clear() -> None:
    st.session_state[state.MAP_SELECTION] = []
    st.session_state[state.MAP_SELECTED_ON] = None
    st.session_state[state.MAP_CHART_GEN] = {s: g + 1 for s, g in st.session_state[state.MAP_CHART_GEN].items()}


def load_side(side: str, key: str, entries) -> tuple[str, embedding.Layout | None]:
    """The encoder picker of one side and its layout (None after showing why it cannot be drawn)."""
    names = [e.name for e in entries]
    name = st.selectbox(f"{side} encoder", names, key=key, format_func=lambda n: ui.model_by_name(entries, n).label())
    entry = ui.model_by_name(entries, name)
    try:
        return name, ui.layout(entry, index)
    except ModelFileError as e:
        st.error(f"Model **{md_escape(name)}**: {e}")
    except Exception as e:  # noqa: BLE001 — one broken map must not take the page down
        st.error(f"The map of **{md_escape(name)}** could not be made: {type(e).__name__}: {str(e)[:200]}")
    return name, None


def placed_uploads(name: str, lay: embedding.Layout, uploads, exact: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(map xy (M, 2), uploads' xy (U, 2) or None, uploads' features (U, D) or None)."""
    if not uploads:
        return lay.xy, None, None
    entry = ui.model_by_name(entries, name)
    model = ui.onnx_model(entry)
    feats = model.features(np.stack([model.prepare(p.image) for p in uploads]))
    if exact and lay.method == "umap":
        with st.spinner("Fitting UMAP on this server (once per model)…"):
            reducer = ui.umap_reducer(str(entry.path), ui.folder_signature(entry.path), index.key, len(lay.map_idx))
        return reducer.embedding_.astype(np.float32), reducer.transform(feats), feats
    return lay.xy, embedding.place(lay, feats), feats


def draw_map(side: str, name: str, lay: embedding.Layout, uploads, exact: bool, height: int) -> np.ndarray | None:
    """kNN metric and the map of one side → the uploads' features (None without uploads)."""
    try:
        xy, up_xy, feats = placed_uploads(name, lay, uploads, exact)
    except ModelFileError as e:
        st.error(f"Model **{md_escape(name)}**: {e}")
        return None
    selected = map_selection.highlight_mask(lay.files[lay.map_idx], st.session_state[state.MAP_SELECTION])
    key = chart_key(side, name)
    fig = figure(lay, xy, up_xy, [p.name for p in uploads], selected, height, revision=key)
    st.plotly_chart(fig, key=key, on_select=lambda: _on_select(side, key), selection_mode=("points", "box", "lasso"),
                    config={"displaylogo": False, "scrollZoom": True})
    return feats


def show_selection(class_of: dict[str, str], thumbs: dict[str, str], classes: list[str]) -> None:
    """Under the maps: class counts of the selection in plain words and its photos."""
    files = st.session_state[state.MAP_SELECTION]
    if not files:
        st.caption("**Drag a lasso** round an island on either map to see its photos here (the toolbar above a map also "
                   "has a box; click a dot, shift-click for more). Hover a dot to see its photo; scroll to zoom; "
                   "double-click a map to zoom out.")
        return
    colours = dict(zip(classes, palette.class_colours(classes)))
    where = {"Left": "left", "Right": "right"}.get(st.session_state[state.MAP_SELECTED_ON] or "", "")
    st.subheader(f"{len(files)} photo{'s' if len(files) != 1 else ''} selected" + (f" on the {where} map" if where else ""),
                 anchor=False)
    lines = []
    for cls, n in map_selection.class_counts(files, class_of):
        sentence = map_selection.count_sentence(cls, n, len(files))
        lines.append(f'<span style="color:{colours.get(cls, palette.SCRATCH)};font-size:1.3em">●</span> '
                     f"{sentence[0].upper() + sentence[1:]}")
    st.markdown("  \n".join(lines), unsafe_allow_html=True)
    shown = map_selection.gallery_pick(files, class_of)
    st.html(map_selection.gallery_html(shown, thumbs, class_of, colours, more=len(files) - len(shown)))


def show_uploads(name: str, lay: embedding.Layout, uploads, feats: np.ndarray) -> None:
    """Each upload with its kNN vote and nearest test photos on one encoder's map."""
    st.markdown(f"**{md_escape(ui.model_by_name(entries, name).label())}**")
    order, sims = embedding.neighbours(lay, feats)
    votes, share = embedding.knn_vote(lay, feats)
    for i, p in enumerate(uploads):
        st.markdown(f"**{md_escape(p.name)}** — kNN vote: **{lay.classes[votes[i]]}** ({share[i, votes[i]]:.0%}); nearest test photos:")
        cols = st.columns(embedding.NEIGHBOURS + 1)
        cols[0].image(square_resize(p.image, 128), caption="your photo", width=90)
        for col, j, s in zip(cols[1:], order[i], sims[i]):
            f = str(lay.files[lay.map_idx[j]])
            col.image(ui.thumbnail(str(data_dir()), f, 128, square=True), caption=f"{lay.classes[lay.labels[lay.map_idx[j]]]} · {s:.2f}", width=90)


@st.cache_data(show_spinner=False, max_entries=4)
def classes_of(root: str, key: str) -> dict[str, str]:
    """{photo file: its class} of the photo set (``key``: its split.csv sha256)."""
    idx = photos.index(root)
    return {f: idx.classes[int(y)] for f, y in zip(idx.files, idx.labels)}


# this page only: narrower page margins, so the two maps get the width (Streamlit's wide layout keeps
# 5 rem each side and 6 rem above, ~250 px of a 1400-px window)
st.html("<style>[data-testid='stMainBlockContainer']{padding:2.5rem 1.5rem 4rem 1.5rem}</style>")
st.title("Embedding map")
st.markdown(
    "Every dot is a **test photo**, placed by [UMAP](https://umap-learn.readthedocs.io) so that photos the encoder finds "
    "alike land close together; its colour is the true class, which the encoder never saw. A good encoder makes "
    "single-colour islands. **Hover** a dot to see its photo, **drag a lasso** round an island to see them all."
)
entries = ui.usable_models()
index = ui.photo_index()
if not entries or index is None:
    st.stop()

top = st.columns([3, 2], vertical_alignment="top")
with top[0]:
    with st.expander("Place your own photos on the maps (★)", expanded=bool(st.session_state[state.UPLOADS]["photos"])):
        uploads = ui.photo_input(state.MAP_UPLOADER, "Embedding map", label="Upload photos to place them on the maps (★)")
        exact = bool(uploads) and st.toggle(
            "Place your photos with UMAP's own transform", key=state.MAP_EXACT,
            help="Off: each photo sits at the similarity-weighted mean of its 5 nearest test photos (instant; how UMAP's "
                 "transform starts). On: refits UMAP on this server (same seed, same map) and runs transform — about 15 s the first time.",
        )
names = [e.name for e in entries]
if state.MAP_LEFT not in st.session_state or st.session_state[state.MAP_LEFT] not in names:
    st.session_state[state.MAP_LEFT] = RANDOM_INIT if RANDOM_INIT in names else names[0]
if state.MAP_RIGHT not in st.session_state or st.session_state[state.MAP_RIGHT] not in names:
    others = [n for n in names if n != st.session_state[state.MAP_LEFT]]
    best = ui.featured_model(entries, method="knn")  # the map shows frozen features, which kNN scores
    st.session_state[state.MAP_RIGHT] = best if best in others else (others[0] if others else names[0])
with top[1]:
    layout_col, clear_col = st.columns([3, 2], vertical_alignment="center")
    view = layout_col.segmented_control("Maps", VIEWS, key=state.MAP_VIEW, label_visibility="collapsed",
                                        help="Two maps side by side, or each map the full width of the page.") or VIEWS[0]
    clear_col.button("Clear selection", key=state.MAP_CLEAR, on_click=_clear, icon=":material/deselect:",
                     disabled=not st.session_state[state.MAP_SELECTION])
height = HEIGHT[view]
slots = st.columns(2, gap="large") if view == "Side by side" else [st.container(), st.container()]
drawn: dict[str, tuple[str, embedding.Layout, np.ndarray | None]] = {}
for side, slot, key in zip(SIDES, slots, (state.MAP_LEFT, state.MAP_RIGHT)):
    with slot:
        pick, knn = st.columns([2, 1], vertical_alignment="bottom")
        with pick:
            name, lay = load_side(side, key, entries)
        if lay is None:
            continue
        knn.metric("kNN accuracy", ui.percent(lay.knn_accuracy), help=(
            "The share of test photos whose nearest training photos mostly have the right class: how well the map's "
            f"islands match the classes. k = {lay.meta.get('knn_k', embedding.KNN_K)} nearest training photos (cosine, distance-weighted), all "
            f"{int((~lay.is_test).sum())} training labels, scored on the {int(lay.is_test.sum())} test photos on the map"
            + (" (a fixed sample of them)." if len(lay.map_idx) < int(lay.is_test.sum()) else ".")))
        feats = draw_map(side, name, lay, uploads, exact, height)
        origin = "precomputed" if "loaded_from" in lay.meta else "computed on this server"
        sized = ui.feature_size_words((ui.model_by_name(entries, name) or entries[0]).card)
        st.caption(f"{len(lay.map_idx)} photos · layout {origin} ({lay.method})" + (f" · {sized}." if sized else "."))
        drawn[side] = (name, lay, feats)

if drawn:
    first = next(iter(drawn.values()))[1]
    map_files = tuple(sorted({str(f) for _, lay, _ in drawn.values() for f in lay.files[lay.map_idx]}))
    thumbs = map_hover.photo_thumbs(str(data_dir()), index.key, map_files)
    show_selection(classes_of(str(index.root), index.key), thumbs, first.classes)
    colours = dict(zip(first.classes, palette.class_colours(first.classes)))
    map_hover.mount("photos", thumbs, colours)
    if uploads:
        map_hover.mount("uploads", {map_selection.upload_thumb_key(p.name): map_selection.thumbnail_uri(square_resize(p.image, map_selection.THUMB_PX))
                                    for p in uploads}, colours)
        up_cols = st.columns(len(drawn), gap="large") if view == "Side by side" else [st.container() for _ in drawn]
        for col, (name, lay, feats) in zip(up_cols, drawn.values()):
            if feats is not None:
                with col:
                    show_uploads(name, lay, uploads, feats)

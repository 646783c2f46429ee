"""Pretext explorer: what each pretext task asks of a photo, and what the model answers."""
from __future__ import annotations

import numpy as np
import streamlit as st

from app import inference, photos, pretext, reference, state, ui
from app.config import RANDOM_INIT, data_dir, reports_dir
from app.inference import ANGLE_LABELS, ModelFileError, OnnxModel
from app.uploads import md_escape

TURNS = [0, 90, 180, 270]


def rotation_panel(entry, items, k_user: int) -> None:
    """Rotation: each photo in its four rotations with the model's probabilities, then auto-upright."""
    try:
        model = ui.onnx_model(entry)
    except ModelFileError as e:
        st.error(f"Model **{md_escape(entry.name)}**: {e}")
        return
    if not model.has_rotation_head:
        st.warning(f"{entry.name} has no rotation head in its model.onnx (outputs: {', '.join(model.output_names)}); re-export it.")
        return
    pt = (entry.card.get("pretext_test") or {})
    acc = next((pt[k] for k in ("acc", "rotation_acc") if isinstance(pt.get(k), (int, float))), None)  # a multi-task card prefixes it
    weights = (entry.card.get("files") or {}).get((entry.card.get("weights") or {}).get("file", ""))
    limits = reference.rotation_limits(reports_dir() / "rotation-limits.json", weights)
    acc_m = reference.rotation_accuracy_with_mirror(limits)
    st.caption(
        f"**{md_escape(entry.label())}** · sees {model.image_size}×{model.image_size} px"
        + (f" · rotation accuracy on the test split: {ui.percent(acc)}" if acc is not None else "")
        + (f" ({ui.percent(acc_m)} with each view's mirror image)" if acc_m is not None else "")
    )
    per_class = reference.rotation_accuracy_per_class(limits)
    if per_class:
        by_class = " · ".join(f"{c} {ui.percent(a)}" for c, a in sorted(per_class.items(), key=lambda kv: -kv[1]))
        st.caption(f"Why it errs — per class on the test split: {by_class}. A flower head seen from above looks alike at "
                   "every turn; a side view with stem and sky does not (`reports/rotation-limits.md`).")
    for name, img in items:
        with st.container(border=True):
            st.markdown(f"##### {md_escape(name)}")
            u8 = model.prepare(img)
            shown = inference.display_square(img, 192)
            _, probs = inference.rotation_grid(model, u8)
            probs_m = inference.with_mirror_probabilities(model, u8, probs)
            right = int(sum(int(np.argmax(probs[k])) == k for k in range(4)))
            right_m = int(sum(int(np.argmax(probs_m[k])) == k for k in range(4)))
            st.markdown(f"**The four rotations** — the model names the turn of **{right} of 4** correctly; "
                        f"looking at each with its mirror image too, **{right_m} of 4**")
            st.caption("↺ = counter-clockwise. Bars: the model's probability for each possible turn, from one look. "
                       "A mirrored upright flower is still upright, so the mirror image is a second look at the same question.")
            cols = st.columns(4)
            for k, col in enumerate(cols):
                with col:
                    guess = int(np.argmax(probs[k]))
                    st.image(inference.to_pil(inference.turn(shown, k)), caption=f"turned {ANGLE_LABELS[k]}", width=150)
                    st.markdown(f"Model's guess: **{ANGLE_LABELS[guess]}** {'✅' if guess == k else '❌'}")
                    guess_m = int(np.argmax(probs_m[k]))
                    st.caption(f"with its mirror image: {ANGLE_LABELS[guess_m]} {'✅' if guess_m == k else '❌'}")
                    for j in range(4):
                        st.progress(float(probs[k, j]), text=f"{ANGLE_LABELS[j]}: {probs[k, j]:.0%}")
            st.markdown(f"**Auto-upright** — the photo turned {ANGLE_LABELS[k_user]}, then turned back by the model's guess")
            guess, p_in, fixed = inference.auto_upright(model, inference.turn(u8, k_user), inference.turn(shown, k_user))
            c1, c2, c3 = st.columns([1, 1, 1])
            c1.image(inference.to_pil(inference.turn(shown, k_user)), caption=f"input: turned {ANGLE_LABELS[k_user]}", width=150)
            c2.markdown(f"Model: the photo is turned **{ANGLE_LABELS[guess]}** ({p_in[guess]:.0%}), so turn it back.")
            c2.caption("Judged from all four turns of the input at once — which of them looks upright? — "
                       "more reliable than one look (`reports/rotation-limits.md`).")
            c2.markdown("✅ upright again" if guess == k_user else f"❌ off by {ANGLE_LABELS[(k_user - guess) % 4]}")
            c3.image(inference.to_pil(fixed), caption="after auto-upright", width=150)


# -- the other tasks: compute in app.pretext, drawn here ----------------------------------------------
W = 170  # px of each picture


@st.cache_resource(show_spinner=False, max_entries=32)
def _open(path: str, signature: tuple) -> pretext.Pretext:
    return pretext.open_pretext(OnnxModel(path))


@st.cache_data(show_spinner=False, max_entries=256)
def _compute(kind: str, path: str, signature: tuple, image_u8: np.ndarray, *args) -> dict:
    return getattr(pretext, kind)(_open(path, signature), image_u8, *args)


@st.cache_data(show_spinner=False, max_entries=8)
def _gallery(path: str, signature: tuple, root: str, key: str, size: int, limit: int | None, clusters: bool) -> dict:
    """Test photos at the model's size (and, for DeepCluster, the cluster of each), once per model."""
    g = pretext.test_gallery(ui.decoded(root, size, key), limit)
    if clusters:
        g.update(pretext.deepcluster_assign(_open(path, signature), g["images"]))
    return g


def _load(entry) -> pretext.Pretext | None:
    """The model ready for its panel, or None after one clear line saying what is missing."""
    try:
        p = _open(str(entry.path), inference.folder_signature(entry.path))
    except ModelFileError as e:
        st.error(f"Model **{md_escape(entry.name)}**: {e}")
        return None
    except Exception as e:  # noqa: BLE001 (e.g. a task config this version cannot rebuild)
        st.error(f"Model **{md_escape(entry.name)}** cannot be prepared for its panel: {type(e).__name__}: {md_escape(str(e).splitlines()[0][:200] if str(e) else '')}")
        return None
    if p.problem:
        st.warning(md_escape(p.problem), icon="🧩")
        return None
    return p


def _run(entry, kind: str, image_u8: np.ndarray, *args) -> dict | None:
    try:
        return _compute(kind, str(entry.path), inference.folder_signature(entry.path), image_u8, *args)
    except ModelFileError as e:
        st.error(f"Model **{md_escape(entry.name)}**: {md_escape(str(e))}")
        return None


def _about(entry, p: pretext.Pretext) -> None:
    pt = entry.card.get("pretext_test") or {}
    bits = []
    for k, v in pt.items():
        if isinstance(v, (int, float)) and k != "loss":
            bits.append(f"{k.replace('_', ' ')} {ui.percent(v) if 'acc' in k else f'{v:.3g}'}")
    st.caption(f"**{md_escape(entry.label())}** · sees {p.model.image_size}×{p.model.image_size} px"
               + (f" · on the test split: {', '.join(bits)}" if bits else ""))


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _photos(entry, p, items):
    """(name, the model's uint8 view of the photo) for each photo."""
    return [(name, p.model.prepare(img)) for name, img in items]


def jigsaw_panel(entry, items, puzzle: int) -> None:
    p = _load(entry)
    if p is None:
        return
    _about(entry, p)
    n = len(p.task.permutations())
    st.caption(f"The photo is cut into 3×3 tiles (with a gap, so lines cannot simply be continued), shuffled by one of the "
               f"model's **{n} permutations**, and the model must say which one. It sees each tile on its own, brightness-equalised.")
    for i, (name, u8) in enumerate(_photos(entry, p, items)):
        perm = int(np.random.default_rng([puzzle, i]).integers(n))
        r = _run(entry, "jigsaw", u8, perm)
        if r is None:
            continue
        with st.container(border=True):
            st.markdown(f"##### {md_escape(name)}")
            c1, c2, c3, c4 = st.columns([1, 1, 1, 1.2])
            c1.image(pretext.enlarge(r["shuffled"], W), caption=f"the puzzle: shuffled by permutation #{r['target']}", width=W)
            c2.image(pretext.enlarge(r["answer"], W), caption=f"put back with the model's guess #{r['predicted']}", width=W)
            c3.image(pretext.enlarge(r["original"], W), caption="the tiles in their true places", width=W)
            with c4:
                if r["correct"]:
                    st.markdown(f"✅ **Right permutation** ({r['probs'][r['predicted']]:.0%} sure): the photo is reassembled.")
                else:
                    st.markdown(f"❌ **Wrong permutation**: {r['in_place']} of 9 tiles end up in their place.")
                top = np.argsort(-r["probs"])[:3]
                for j in top:
                    st.progress(float(r["probs"][j]), text=f"#{j}{' (true)' if j == r['target'] else ''}: {r['probs'][j]:.0%}")


def context_panel(entry, items, neighbour: str) -> None:
    p = _load(entry)
    if p is None:
        return
    _about(entry, p)
    st.caption("The model sees two patches: the **centre** one and a **neighbour**, and must say where the neighbour sits "
               "(8 positions). Patches are kept apart and brightness-equalised, so it has to recognise *what* is above or "
               "beside what (sky above, stem below), not continue a line.")
    for name, u8 in _photos(entry, p, items):
        r = _run(entry, "context", u8)
        if r is None:
            continue
        names = list(r["names"])
        k = names.index(neighbour) if neighbour in names else 2
        pred = r["predicted"]
        with st.container(border=True):
            st.markdown(f"##### {md_escape(name)}")
            st.markdown(f"The model places **{int((pred == np.arange(8)).sum())} of 8** neighbours correctly.")
            c1, c2, c3, c4 = st.columns([1.3, 0.8, 0.8, 1.6])
            c1.image(pretext.draw_boxes(u8, r["boxes"], W, {4: "yellow", r["cells"][k]: "red"}), width=W,
                     caption="the 9 patch positions (yellow: centre, red: this neighbour)")
            c2.image(pretext.enlarge(r["centre"], 110), caption="centre patch", width=110)
            c3.image(pretext.enlarge(r["neighbours"][k], 110), caption="neighbour patch", width=110)
            with c4:
                probs = r["probs"][k]
                cell_p = {c: probs[j] for j, c in enumerate(r["cells"])}
                rows = ["| | left | middle | right |", "|---|:-:|:-:|:-:|"]
                for ri, rn in enumerate(("top", "middle", "bottom")):
                    cells = []
                    for ci in range(3):
                        c = 3 * ri + ci
                        if c == 4:
                            cells.append("⬛ centre")
                            continue
                        txt = f"{cell_p[c]:.0%}"
                        txt = f"**{txt}**" if c == r["cells"][int(pred[k])] else txt
                        cells.append(txt + (" 🎯" if c == r["cells"][k] else ""))
                    rows.append(f"| {rn} | " + " | ".join(cells) + " |")
                st.markdown("\n".join(rows))
                ok = int(pred[k]) == k
                st.caption(f"Model's probability for each position; 🎯 = the true one ({names[k]}), bold = its guess "
                           f"({names[int(pred[k])]}) {'✅' if ok else '❌'}.")
            with st.expander("All 8 neighbours"):
                cols = st.columns(8)
                for j, col in enumerate(cols):
                    col.image(pretext.enlarge(r["neighbours"][j], 64), width=64)
                    col.caption(f"{names[j]} → {names[int(pred[j])]} {'✅' if pred[j] == j else '❌'}")


def picture_row(pictures: list[tuple[np.ndarray, str]], width: int = W, smooth: bool = True) -> None:
    """One row of captioned pictures (uint8 (3, H, W) arrays), enlarged to ``width`` px."""
    for col, (img, caption) in zip(st.columns(len(pictures)), pictures):
        col.image(pretext.enlarge(img, width, smooth), caption=caption, width=width)


def colorization_panel(entry, items) -> None:
    p = _load(entry)
    if p is None:
        return
    _about(entry, p)
    st.caption("The model gets only the **lightness** of the photo (a black-and-white version) and must predict its colours. "
               "To colour a tulip red and the sky blue, it has to recognise what is in the picture.")
    for name, u8 in _photos(entry, p, items):
        r = _run(entry, "colorization", u8)
        if r is None:
            continue
        with st.container(border=True):
            st.markdown(f"##### {md_escape(name)}")
            picture_row([(r["grey"], "input: lightness only"), (r["predicted"], "the model's colours"), (r["original"], "the original")])
            st.caption(f"Colour error: {r['ab_rmse']:.1f} (Lab a/b units; 0 = perfect, grey everywhere ≈ 20–40 on flowers).")


def inpainting_panel(entry, items) -> None:
    p = _load(entry)
    if p is None:
        return
    _about(entry, p)
    st.caption("A square **hole** is cut out of the photo (filled with one flat colour, which tells the model nothing) and the "
               "model must paint what was there from the surroundings. Training used holes at "
               f"{'random places' if p.config.mask_mode == 'random' else 'the centre'}; here the hole is in the centre.")
    for name, u8 in _photos(entry, p, items):
        r = _run(entry, "inpainting", u8)
        if r is None:
            continue
        with st.container(border=True):
            st.markdown(f"##### {md_escape(name)}")
            picture_row([(r["masked"], "input: the photo with a hole"), (r["filled"], "the hole filled by the model"), (r["original"], "the original")])
            st.caption(f"Squared error inside the hole: {r['hole_mse']:.4f} (pixel values in 0–1). A blurry filling is "
                       "normal: the model guesses the likely colours and shapes, not the exact pixels.")


def superres_panel(entry, items) -> None:
    p = _load(entry)
    if p is None:
        return
    _about(entry, p)
    f = p.config.factor
    st.caption(f"The photo is shrunk {f}× and the model must restore the detail. Plain bicubic enlargement is the baseline; "
               "the model adds what it believes is missing (edges, texture). PSNR: higher = closer to the original.")
    for name, u8 in _photos(entry, p, items):
        r = _run(entry, "superres", u8)
        if r is None:
            continue
        with st.container(border=True):
            st.markdown(f"##### {md_escape(name)}")
            s = r["small"].shape[-1]
            picture_row([(r["small"], f"input: the small image ({s}×{s} px)"), (r["bicubic"], f"bicubic: {r['psnr_bicubic']:.1f} dB"),
                         (r["restored"], f"the model's restoration: {r['psnr_model']:.1f} dB"), (r["original"], "the original")],
                        width=140, smooth=False)


def _with_gallery(entry, p: pretext.Pretext, items, index) -> tuple[list, np.ndarray, list[str]]:
    """The shown photos, then up to 100 test photos (minus any that is one of them) as the "other
    photos" of PIRL's and SimCLR's comparison → (shown [(name, u8)], images (N, 3, S, S), names)."""
    shown = _photos(entry, p, items)
    gal = _gallery(str(entry.path), inference.folder_signature(entry.path), str(index.root), index.key, p.model.image_size, 100, False)
    keep = [i for i, g in enumerate(gal["images"]) if not any(np.abs(g.astype(int) - u).mean() < 2 for _, u in shown)]
    images = np.concatenate([np.stack([u for _, u in shown]), gal["images"][keep]])
    names = [n for n, _ in shown] + [f"{gal['classes'][gal['labels'][i]]} · {gal['files'][i].rsplit('/', 1)[-1]}" for i in keep]
    return shown, images, names


def _contrast_panel(entry, items, index, seed: int, kind: str, intro: str) -> None:
    """PIRL and SimCLR predict nothing: each photo's second view (its jigsaw version; another random
    view) should embed closest to the photo's own first view among the views of the test photos.
    ``kind``: "pirl" or "simclr" (the function of ``app.pretext`` and how its views are named)."""
    p = _load(entry)
    if p is None:
        return
    _about(entry, p)
    st.caption(intro)
    if index is None:
        st.info("The bundled test photos are needed for the comparison.")
        return
    shown, images, names = _with_gallery(entry, p, items, index)
    try:
        r = _compute(kind, str(entry.path), inference.folder_signature(entry.path), images, seed)
    except ModelFileError as e:
        st.error(f"Model **{md_escape(entry.name)}**: {md_escape(str(e))}")
        return
    if kind == "pirl":  # row i of "similarity": photo i's jigsaw version against every photo
        pictures = lambda i: [(r["puzzles"][i], "its jigsaw version", False)]  # noqa: E731
        second, own, theirs, grid = "its jigsaw version", "its own photo", "photos", images
    else:  # row i: photo i's view 1 against every photo's view 2
        pictures = lambda i: [(r["first"][i], "view 1", True), (r["second"][i], "view 2", True)]  # noqa: E731
        second, own, theirs, grid = "view 1", "its own view 2", "photos' view 2", r["second"]
    n = len(images)
    for i, (name, u8) in enumerate(shown):
        sim = r["similarity"][i]
        others = np.delete(sim, i)
        with st.container(border=True):
            st.markdown(f"##### {md_escape(name)}")
            pics = [(u8, "the photo", True), *pictures(i)]
            cols = st.columns([1] * len(pics) + [2])
            for col, (img, caption, smooth) in zip(cols, pics):
                col.image(pretext.enlarge(img, 150, smooth), caption=caption, width=150)
            with cols[-1]:
                rank = int(r["rank"][i])
                if rank == 1:
                    st.markdown(f"✅ Of all {n} photos, {second} is closest to **{own}**.")
                else:
                    st.markdown(f"❌ {own[0].upper() + own[1:]} comes only **{_ordinal(rank)}** of {n} photos in similarity to {second}.")
                st.markdown(f"Similarity to {own}: **{sim[i]:.2f}** · to the other {n - 1} {theirs}: "
                            f"{others.mean():.2f} on average, {others.max():.2f} at most (1 = identical direction).")
            top = [j for j in np.argsort(-sim)[:4]]
            ui.show_photo_grid([pretext.enlarge(grid[j], 110, True) for j in top],
                               [f"{'★ ' + own.removeprefix('its ') if j == i else md_escape(names[j])} · {sim[j]:.2f}" for j in top],
                               columns=4, width=110)


def pirl_panel(entry, items, index, puzzle: int) -> None:
    _contrast_panel(entry, items, index, puzzle, "pirl",
                    "PIRL does not predict anything: it learns that a photo and **its own jigsaw version** (shuffled tiles) should "
                    "have similar features, and different ones from **other photos**. Here: how similar each photo's jigsaw "
                    "version is to the photo itself, against the test photos.")


def simclr_panel(entry, items, index, seed: int) -> None:
    _contrast_panel(entry, items, index, seed, "simclr",
                    "SimCLR does not predict anything either: it learns that **two random views** of one photo (crop, flip, "
                    "colour changes) should have similar features, and different ones from the views of **other photos**. Here: "
                    "two views of each photo, and how similar they are to each other against the views of the test photos (the "
                    "puzzle number on the jigsaw tab draws other views).")


def deepcluster_panel(entry, items, index) -> None:
    p = _load(entry)
    if p is None:
        return
    _about(entry, p)
    k = p.config.k
    st.caption(f"DeepCluster groups photos into **{k} clusters** of its own features (no labels) and learns to predict the "
               "cluster. Here: which cluster a photo falls in, and the test photos in that cluster. The flower names are "
               "shown only to judge the clusters; training never saw them.")
    if index is None:
        st.info("The bundled test photos are needed to show the clusters.")
        return
    with st.spinner("Sorting the test photos into the model's clusters (once per model)…"):
        gal = _gallery(str(entry.path), inference.folder_signature(entry.path), str(index.root), index.key, p.model.image_size, None, True)
    for name, u8 in _photos(entry, p, items):
        r = _run(entry, "deepcluster_assign", u8[None])
        if r is None:
            continue
        c = int(r["cluster"][0])
        info = pretext.cluster_members(c, gal["cluster"], gal["labels"], gal["classes"])
        with st.container(border=True):
            st.markdown(f"##### {md_escape(name)}")
            c1, c2 = st.columns([1, 3])
            c1.image(pretext.enlarge(u8, 150, True), caption="the photo", width=150)
            with c2:
                agree = int(r["guess"][0]) == c
                said = "agrees" if agree else f"says cluster {int(r['guess'][0])}"
                st.markdown(f"Falls in **cluster {c}** (of {k}); the model's classifier {said} ({r['probs'][0].max():.0%}).")
                if info["size"]:
                    comp = ", ".join(f"{n} {cls}" for cls, n in info["composition"])
                    st.markdown(f"The cluster holds **{info['size']}** of the {len(gal['cluster'])} test photos: {comp}.")
                else:
                    st.markdown(f"No test photo falls in this cluster ({info['n_clusters_used']} clusters hold test photos).")
            members = info["members"][:8]
            if len(members):
                ui.show_photo_grid([pretext.enlarge(gal["images"][j], 110, True) for j in members],
                                   [gal["classes"][gal["labels"][j]] for j in members], columns=8, width=80)


def multitask_panel(entry, items, k_user: int) -> None:
    try:
        parts = pretext.multitask_parts(entry.card)
    except Exception:  # noqa: BLE001
        parts = []
    listed = ", ".join(f"**{n}** (loss weight {w:g})" for n, w in parts) or "(the card does not list them)"
    in_graph = list(entry.card.get("sub_heads_in_model_onnx") or [])
    note = entry.card.get("head_note")
    st.info(
        f"**{md_escape(entry.label())}** is a *multitask* model: one shared encoder trained on several pretext tasks at once "
        f"— {listed} — with the weighted sum of their losses. "
        + (f"Its model.onnx answers for **{', '.join(in_graph)}** (below); " if in_graph else "Its export holds the shared encoder's features only; ")
        + (f"the other heads have no ONNX graph (model.json: “{md_escape(note)}”). " if note else "")
        + "Its features work on the Embedding map and in the Few-shot lab, where it can be compared with the single-task encoders.",
        icon="🧰",
    )
    if "rotation" in in_graph:
        rotation_panel(entry, items, k_user)


SIMPLE_PANELS = {"colorization": colorization_panel, "inpainting": inpainting_panel, "superres": superres_panel}


def reference_panel(entry) -> None:
    st.info(
        f"**{md_escape(entry.name)}** is the no-pretraining reference: a randomly initialised encoder with features only "
        "— no pretext head, so there is nothing to predict here. Compare its features with the pretrained ones on the "
        "Embedding map and in the Few-shot lab.", icon="🎲",
    )


def unknown_panel(task: str, entries) -> None:
    st.info(
        f"No visualisation for the task **{md_escape(task)}** yet. Its encoder's features already work on the Embedding map "
        "and in the Few-shot lab.", icon="🚧",
    )
    for e in entries:
        with st.expander(f"{e.name}: model card"):
            st.json(inference.card_summary(e.card), expanded=False)


st.title("Pretext explorer")
st.markdown(
    "A **pretext task** makes labels out of the photo itself. *Rotation*: turn a photo by 0, 90, 180 or 270° and ask "
    "the model which turn it was. To answer, it has to learn what upright flowers look like — petals, stems, sky — "
    "features that later help the **downstream** task (*which flower is this?*) with few labels. Each tab below is one "
    "pretext task: what it asks of your photos, and what its model answers."
)
entries = ui.usable_models()
index = ui.photo_index()

st.subheader("Photos")
items: list[tuple[str, object]] = []
c_up, c_pick = st.columns(2)
with c_up:
    uploads = ui.photo_input(state.EXPLORER_UPLOADER, "Pretext explorer", label="Upload your photos")
    items += [(p.name, p.image) for p in uploads]
with c_pick:
    if index is not None:
        options = index.picks()
        if state.EXPLORER_PICKS not in st.session_state:
            st.session_state[state.EXPLORER_PICKS] = options[:1] if uploads else options[:2]
        picked = st.multiselect(
            "…or pick bundled photos (test split: no model trained on them)", options, key=state.EXPLORER_PICKS,
            format_func=lambda f: f"{index.class_of(f)} · {f.rsplit('/', 1)[-1]}",
        )
        for f in picked:
            try:
                items.append((f"{index.class_of(f)} · {f.rsplit('/', 1)[-1]}", photos.open_bundled(data_dir(), f)))
            except Exception as e:  # noqa: BLE001
                st.error(f"{md_escape(f)}: cannot be opened ({type(e).__name__})")

if not entries:
    st.stop()
if not items:
    st.info("Upload a photo or pick a bundled one to see what the models make of it.", icon="👆")
    st.stop()

turn = st.segmented_control(
    "Auto-upright: turn each photo by… (then the model turns it back)", TURNS, key=state.EXPLORER_TURN,
    format_func=lambda d: f"{d}°", required=True,
    help="Counter-clockwise. For an upload that is already sideways, choose 0°: the model then fixes your photo.",
)
k_user = TURNS.index(turn if turn in TURNS else 90)

by_task: dict[str, list] = {}
for e in entries:
    by_task.setdefault(e.task, []).append(e)
order = sorted(by_task, key=lambda t: (t == RANDOM_INIT, pretext.PANEL_TASKS.index(t) if t in pretext.PANEL_TASKS else len(pretext.PANEL_TASKS), t))
tabs = st.tabs([f"{t} ({len(by_task[t])})" if len(by_task[t]) > 1 else t for t in order])
for tab, task in zip(tabs, order):
    with tab:
        models = by_task[task]
        if task == "rotation":
            for e in models:
                rotation_panel(e, items, k_user)
        elif task == "jigsaw":
            puzzle = st.number_input("Puzzle number (each number shuffles the tiles differently)", min_value=0, max_value=9999,
                                     step=1, key=state.EXPLORER_PUZZLE)
            for e in models:
                jigsaw_panel(e, items, int(puzzle))
        elif task == "context":
            from ssl_train.tasks.context import POSITION_NAMES

            neighbour = st.segmented_control("Neighbour shown in detail", list(POSITION_NAMES), key=state.EXPLORER_NEIGHBOUR, required=True)
            for e in models:
                context_panel(e, items, neighbour or "top-right")
        elif task in SIMPLE_PANELS:
            for e in models:
                SIMPLE_PANELS[task](e, items)
        elif task == "pirl":
            for e in models:
                pirl_panel(e, items, index, int(st.session_state.get(state.EXPLORER_PUZZLE, 1)))
        elif task == "simclr":
            for e in models:
                simclr_panel(e, items, index, int(st.session_state.get(state.EXPLORER_PUZZLE, 1)))
        elif task == "deepcluster":
            for e in models:
                deepcluster_panel(e, items, index)
        elif task == "multitask":
            for e in models:
                multitask_panel(e, items, k_user)
        elif task == RANDOM_INIT:
            for e in models:
                reference_panel(e)
        else:
            unknown_panel(task, models)

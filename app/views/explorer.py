"""Pretext explorer: what each pretext task asks of a photo, and what the model answers."""
from __future__ import annotations

import numpy as np
import streamlit as st

from app import inference, photos, state, ui
from app.config import RANDOM_INIT, data_dir
from app.inference import ANGLE_LABELS, ModelFileError
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
    acc = next((v for k, v in pt.items() if "acc" in k and isinstance(v, (int, float))), None)
    st.caption(
        f"**{md_escape(entry.label())}** · sees {model.image_size}×{model.image_size} px"
        + (f" · rotation accuracy on the test split: {ui.percent(acc)}" if acc is not None else "")
    )
    for name, img in items:
        with st.container(border=True):
            st.markdown(f"##### {md_escape(name)}")
            u8 = model.prepare(img)
            shown = inference.display_square(img, 192)
            _, probs = inference.rotation_grid(model, u8)
            right = int(sum(int(np.argmax(probs[k])) == k for k in range(4)))
            st.markdown(f"**The four rotations** — the model names the turn of **{right} of 4** correctly")
            st.caption("↺ = counter-clockwise. Bars: the model's probability for each possible turn.")
            cols = st.columns(4)
            for k, col in enumerate(cols):
                with col:
                    guess = int(np.argmax(probs[k]))
                    st.image(inference.to_pil(inference.turn(shown, k)), caption=f"turned {ANGLE_LABELS[k]}", width=150)
                    st.markdown(f"Model's guess: **{ANGLE_LABELS[guess]}** {'✅' if guess == k else '❌'}")
                    for j in range(4):
                        st.progress(float(probs[k, j]), text=f"{ANGLE_LABELS[j]}: {probs[k, j]:.0%}")
            st.markdown(f"**Auto-upright** — the photo turned {ANGLE_LABELS[k_user]}, then turned back by the model's guess")
            guess, p_in, fixed = inference.auto_upright(model, inference.turn(u8, k_user), inference.turn(shown, k_user))
            c1, c2, c3 = st.columns([1, 1, 1])
            c1.image(inference.to_pil(inference.turn(shown, k_user)), caption=f"input: turned {ANGLE_LABELS[k_user]}", width=150)
            c2.markdown(f"Model: the photo is turned **{ANGLE_LABELS[guess]}** ({p_in[guess]:.0%}), so turn it back.")
            c2.markdown("✅ upright again" if guess == k_user else f"❌ off by {ANGLE_LABELS[(k_user - guess) % 4]}")
            c3.image(inference.to_pil(fixed), caption="after auto-upright", width=150)


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
    "features that later help the **downstream** task (*which flower is this?*) with few labels."
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
order = sorted(by_task, key=lambda t: (t == RANDOM_INIT, t not in inference.VISUALISED_TASKS, t))
tabs = st.tabs([f"{t} ({len(by_task[t])})" if len(by_task[t]) > 1 else t for t in order])
for tab, task in zip(tabs, order):
    with tab:
        if task == "rotation":
            for e in by_task[task]:
                rotation_panel(e, items, k_user)
        elif task == RANDOM_INIT:
            for e in by_task[task]:
                reference_panel(e)
        else:
            unknown_panel(task, by_task[task])

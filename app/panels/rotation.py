"""Rotation (Gidaris et al., ICLR 2018): which way is up? The story's first task."""
from __future__ import annotations

import numpy as np
import streamlit as st

from app import inference, reference, scores, state, ui
from app.config import reports_dir
from app.inference import ANGLE_LABELS, ModelFileError
from app.uploads import md_escape

from . import register, register_compute, register_score, register_score_sub, register_sub, register_words
from .common import card_score, chance_words, details, header, weights_sha256

TURNS = [0, 90, 180, 270]
TITLE = "Which way is up?"
QUESTION = ("We turn your photo by 0, 90, 180 or 270° and ask the model **which turn it was**. To answer, it has to "
            "know what an upright flower looks like — petals up, stem down, sky on top — and that knowledge is what "
            "later helps to tell flowers apart.")


def answers(model, image_u8: np.ndarray, k_user: int) -> dict:
    """All the network calls of one photo (3, S, S) in one place: its four turns (one look, and
    with each turn's mirror image) and auto-upright of the photo turned ``k_user`` quarter turns."""
    _, probs = inference.rotation_grid(model, image_u8)
    probs_m = inference.with_mirror_probabilities(model, image_u8, probs)
    # the turned photo's four turns are the photo's own four, reordered (rot90 is exact): no new network calls
    guess, p_in, _ = inference.auto_upright(model, inference.turn(image_u8, k_user), probs=probs[(k_user + np.arange(4)) % 4])
    return {"probs": probs, "probs_mirror": probs_m, "upright_guess": guess, "upright_probs": p_in}


@st.cache_data(show_spinner=False, max_entries=256)
def _answers(path: str, signature: tuple, image_u8: np.ndarray, k_user: int) -> dict:
    return answers(ui._onnx_model(path, signature), image_u8, k_user)


def turn_control() -> int:
    """The auto-upright turn (quarter turns counter-clockwise) chosen on the page."""
    turn = st.segmented_control(
        "Auto-upright: turn each photo by… (then the model turns it back)", TURNS, key=state.EXPLORER_TURN,
        format_func=lambda d: f"{d}°", required=True,
        help="Counter-clockwise. For an upload that is already sideways, choose 0°: the model then fixes your photo.",
    )
    return TURNS.index(turn if turn in TURNS else 90)


def one_photo(entry, name: str, img, k_user: int) -> None:
    """One photo: the model's guess for each of its four turns, then auto-upright."""
    model = ui.onnx_model(entry)
    u8 = model.prepare(img)
    shown = inference.display_square(img, 192)
    a = _answers(str(entry.path), inference.folder_signature(entry.path), u8, k_user)
    probs = a["probs"]
    right = int(sum(int(np.argmax(probs[k])) == k for k in range(4)))
    with st.container(border=True):
        st.markdown(f"##### {md_escape(name)} — the model names **{right} of 4** turns right")
        cols = st.columns(5)
        for k in range(4):
            with cols[k]:
                guess = int(np.argmax(probs[k]))
                st.image(inference.to_pil(inference.turn(shown, k)), caption=f"turned {ANGLE_LABELS[k]}", width=140)
                ok = "✅" if guess == k else "❌"
                st.markdown(f"{ok} says **{ANGLE_LABELS[guess]}** ({probs[k, guess]:.0%} sure)")
        with cols[4]:
            guess = a["upright_guess"]
            st.image(inference.to_pil(inference.turn(inference.turn(shown, k_user), -guess)), width=140,
                     caption=f"auto-upright: turned {ANGLE_LABELS[k_user]}, then back by {ANGLE_LABELS[guess]}")
            st.markdown("✅ upright again" if guess == k_user else f"❌ still off by {ANGLE_LABELS[(k_user - guess) % 4]}")
        with st.expander("How sure was it? (every turn's probabilities)"):
            pm = a["probs_mirror"]
            rows = ["| shown | " + " | ".join(ANGLE_LABELS) + " | with its mirror image |", "|---|" + ":-:|" * 5]
            for k in range(4):
                cells = [f"**{probs[k, j]:.0%}**" if j == k else f"{probs[k, j]:.0%}" for j in range(4)]
                gm = int(np.argmax(pm[k]))
                rows.append(f"| turned {ANGLE_LABELS[k]} | " + " | ".join(cells) + f" | {ANGLE_LABELS[gm]} {'✅' if gm == k else '❌'} |")
            st.markdown("\n".join(rows))
            st.caption("Bold: the true turn. A mirrored upright flower is still upright, so its mirror image is a second "
                       "look at the same question. Auto-upright judges all four turns of the photo at once — which of "
                       "them looks upright? — more reliable than one look.")


@register_sub("rotation")  # a multi-task model answers through its model.onnx's rotation output, as this panel reads it
@register("rotation", "Rotation", TITLE, QUESTION, order=0)
def show(entry, items, ctx) -> None:
    try:
        model = ui.onnx_model(entry)
    except ModelFileError as e:
        st.error(f"Model **{md_escape(entry.name)}**: {md_escape(str(e))}")
        return
    if not model.has_rotation_head:
        st.warning(f"{entry.name} has no rotation head in its model.onnx (outputs: {', '.join(model.output_names)}); re-export it.")
        return
    own = card_score(entry, "acc") is not None  # a multi-task card prefixes its sub-tasks' scores
    acc = card_score(entry, "acc") if own else card_score(entry, "rotation_acc")
    header(entry, TITLE, QUESTION, chance_words(acc, 0.25) if acc is not None else None, model.image_size, use_measured=own)
    limits = reference.rotation_limits(reports_dir() / "rotation-limits.json", weights_sha256(entry))
    per_class = reference.rotation_accuracy_per_class(limits)
    if per_class:
        best, worst = max(per_class, key=per_class.get), min(per_class, key=per_class.get)
        st.caption(f"Why it errs: a flower head seen from above looks alike at every turn; a side view with stem and sky "
                   f"does not. Best on {best} ({per_class[best]:.0%}), worst on {worst} ({per_class[worst]:.0%}).")
    k_user = turn_control()
    for name, img in items:
        one_photo(entry, name, img, k_user)
    acc_m = reference.rotation_accuracy_with_mirror(limits)
    lines = [f"one-look accuracy on the test split: {ui.percent(acc)} (chance 25%)" if acc is not None else "no pretext test in model.json"]
    if acc_m is not None:
        lines.append(f"judged with each view's mirror image too: {ui.percent(acc_m)} (`reports/rotation-limits.md`)")
    if per_class:
        lines.append("per class on the test split: " + " · ".join(f"{c} {ui.percent(a)}" for c, a in sorted(per_class.items(), key=lambda kv: -kv[1])))
    details(entry, lines)


@register_compute("rotation")
def compute(entry, img) -> dict:
    model = ui.onnx_model(entry)
    return answers(model, model.prepare(img), 1)


# -- without Streamlit: its score on the test photos, in plain words ----------------------------------------
def score_photos(model, images_u8: np.ndarray, batch: int = 64) -> dict:
    """Each test photo (N, 3, S, S) uint8 in its four turns (``ssl_train.tasks.rotation.all_rotations``,
    as ``rotation_grid``), the turn named by ``turn_probabilities``' top class → {"share" of the 4N
    turns named right, "chance" 0.25, "answers" 4N, "photos" N, "all_four" share of photos whose
    four turns are all named right}."""
    import torch

    from ssl_train.tasks.rotation import all_rotations

    right = np.zeros((0, 4), bool)
    for i in range(0, len(images_u8), batch):
        chunk = torch.from_numpy(np.ascontiguousarray(images_u8[i : i + batch]))
        x, y = all_rotations(chunk)
        pred = inference.turn_probabilities(model, x.numpy()).argmax(1)
        right = np.concatenate([right, (pred == y.numpy()).reshape(4, -1).T])
    n = len(right)
    return {"kind": "rotation", "head": model.rotation_output, "share": float(right.mean()) if n else 0.0, "chance": 0.25,
            "answers": int(right.size), "photos": n, "all_four": float(right.all(1).mean()) if n else 0.0}


@register_score("rotation")
def score(job: scores.Scoring) -> str | None:
    if not job.model.has_rotation_head:
        return f"its model.onnx has no rotation logits (outputs: {', '.join(job.model.output_names)})"
    job.add(score_photos(job.model, job.images))
    return None


@register_score_sub("rotation")
def score_sub(job: scores.Scoring, sub: str) -> None:
    """A multi-task model's rotation head, through its model.onnx's rotation output."""
    if job.model.has_rotation_head:
        job.add(score_photos(job.model, job.images))
    else:
        job.note(f"its {sub} head is not in model.onnx, so it is not scored")


@register_words("rotation")
def words(s: dict) -> str:
    return f"names the turn right {scores.times_in_100(s['share'])} ({scores.guessing(s)})"

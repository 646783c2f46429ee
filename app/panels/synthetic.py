"""Synthetic imagery (Ren & Lee, CVPR 2018): depth, surface directions and outlines, learnt from
rendered flower scenes whose every pixel's answer is known."""
from __future__ import annotations

import numpy as np
import streamlit as st

from app import pretext, scores
from app.pretext import Pretext, to_u8
from app.uploads import md_escape

from . import (DEMO_SIDE, Demo, Needs, register, register_answer, register_baseline, register_compute, register_demo,
               register_score, register_words)
from .common import answer, answers, details, header, load, measured_sentence, photo_box, picture_row

TITLE = "How far away is each part of the picture?"
QUESTION = ("A small 3-D renderer draws flower scenes in which the **distance** of every pixel, the **direction** each surface "
            "faces and the **outlines** of every object are known for free. The model learns to see all three in the rendered "
            "picture alone, and was also pushed to treat real photos like renders. Then we ask it about **your** photo.")
SCENE_SEED = 2026  # the panel's first rendered scene; "Render another" steps from it
SCORE_SCENES = 64  # rendered scenes the score is measured on (seed SCORE_SEED, never a training draw's generator)
SCORE_SEED = 7
PAIRS = 2000  # pixel pairs per scene for the depth-order score
MIN_LOG_GAP = 0.1  # a pair counts when its true depths differ by ≥ 10 % (log gap): closer pairs are a coin flip to a viewer too
NEAR_DEG = 30.0  # a predicted surface direction within this angle of the truth counts as right
SCENE_KEY = "synthetic_scene_seed"  # this panel's own state: the scene on screen


def _pictures(log_depth: np.ndarray, normals: np.ndarray, contours: np.ndarray) -> dict[str, np.ndarray]:
    """(1, 1, S, S) log depth, (1, 3, S, S) normals, (1, 1, S, S) contour probability → uint8
    (3, S, S) pictures: depth in viridis from near (yellow) to far (purple), normals as colours
    (right = red, up = green, towards you = blue), outlines white on black."""
    import torch

    from ssl_train.render import depth_picture, normals_picture

    d = depth_picture(torch.from_numpy(np.exp(np.asarray(log_depth, np.float32))))[0]
    n = torch.from_numpy(np.asarray(normals, np.float32))
    n = n / n.norm(dim=1, keepdim=True).clamp_min(1e-6)
    c = torch.from_numpy(np.asarray(contours, np.float32))[0].expand(3, -1, -1)
    return {"depth": to_u8(d), "normals": to_u8(normals_picture(n)[0]), "contours": to_u8(c)}


# -- on the page ---------------------------------------------------------------------------------------
def _scene_words(j: dict) -> str:
    order = j["pairs_right"] / max(j["pairs"], 1)
    near = j["near"] / max(j["pixels"], 1)
    return (f"On this scene it puts the nearer of two points first **{scores.times_in_100(order)}** (guessing: 50) and gets the "
            f"way a flower's surface faces (within {NEAR_DEG:.0f}°) {scores.times_in_100(near)}.")


@register("synthetic", "Depth & shape", TITLE, QUESTION, order=10, needs=Needs(output="depth", lacking="there is no depth to show"))
def show(entry, items, ctx) -> None:
    p = load(entry)
    if p is None:
        return
    # real photos have no known depth: the score is measured on fresh renders, and the header says so
    header(entry, TITLE, QUESTION, None, p.model.image_size, use_measured=False)
    full = measured_sentence(entry)
    if full:
        st.markdown(f"**{md_escape(entry.name)}** on {SCORE_SCENES} new rendered scenes, which it never trained on: {full}.")
    seed = int(st.session_state.get(SCENE_KEY, SCENE_SEED))
    with st.container(border=True):
        top = st.columns([4, 1])
        top[0].markdown("##### A rendered scene: the answers are known")
        if top[1].button("Render another", key="synthetic_render_another"):
            seed += 1
            st.session_state[SCENE_KEY] = seed
        truth = rendered(p, seed)
        pred = shape(p, truth["rgb"][0])
        real = _pictures(truth["log_depth"][:1], truth["normals"][:1], truth["contours"][:1])
        st.caption("The renderer's truth")
        picture_row([(truth["rgb"][0], "the rendered picture"), (real["depth"], "true distance (yellow = near)"),
                     (real["normals"], "true surface directions"), (real["contours"], "true outlines")], width=150)
        st.caption("The model's answer, from the picture alone")
        picture_row([(truth["rgb"][0], "what the model sees"), (pred["depth"], "its distance"), (pred["normals"], "its surface directions"),
                     (pred["contours"], "its outlines")], width=150)
        st.markdown(_scene_words(judge(pred, truth, 0, np.random.default_rng(seed))))
    st.markdown("##### Your photos: how deep does it think they are?")
    for name, _u8, r in answers(entry, p, items, "synthetic"):
        with photo_box(name):
            picture_row([(r["original"], "your photo"), (r["depth"], "its distance (yellow = near)"),
                         (r["normals"], "its surface directions"), (r["contours"], "its outlines")], width=150)
    st.caption("A real photo has no known depth, so judge by eye: is the flower brighter (nearer) than what is behind it? "
               "The model learnt on renders only, so photos unlike its simple scenes (people, text, close-ups of one petal) "
               "get guesses shaped like flower scenes.")
    details(entry, ["distance colours: each picture is scaled from its own nearest (yellow) to its farthest (dark purple) point; "
                    "the model predicts log distance up to a common factor (the scale-invariant loss of Eigen et al. forgives "
                    "half of a global scale error), so only near/far within a picture means something",
                    "surface-direction colours: red = facing right, green = facing up, blue = facing you (a camera-space unit normal "
                    "mapped to RGB as (n + 1) / 2)",
                    f"scores: {SCORE_SCENES} scenes rendered from seed {SCORE_SEED}; near/far order over random pixel pairs whose true "
                    f"distances differ by at least {100 * MIN_LOG_GAP:.0f}%; outline F1 at probability 0.5 "
                    "(`python -m app.scores` → reports/panel-scores.md)"])


# -- without Streamlit: the model's answer, its score, in plain words ----------------------------------
@register_answer("synthetic")
def shape(p: Pretext, image_u8: np.ndarray) -> dict:
    """model.onnx's depth, normals and contours of one photo (uint8 (3, S, S)).

    → {"depth", "normals", "contours": uint8 (3, S, S) pictures, "log_depth" (1, 1, S, S) float32
    (scene units; only its relative values mean anything: the training loss ignores half of a global
    scale), "normals_raw" (1, 3, S, S) unit vectors (x right, y up, z towards the camera),
    "contour_prob" (1, 1, S, S) in [0, 1], "original" uint8 (3, S, S)}."""
    out = p.model.run(np.asarray(image_u8)[None], ["depth", "normals", "contours"])
    prob = 1.0 / (1.0 + np.exp(-out["contours"].astype(np.float64)))
    n = out["normals"].astype(np.float32)
    n = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-6)
    return {**_pictures(out["depth"], n, prob), "log_depth": out["depth"].astype(np.float32), "normals_raw": n,
            "contour_prob": prob.astype(np.float32), "original": np.asarray(image_u8)}


def rendered(p: Pretext, seed: int, n: int = 1) -> dict:
    """``n`` scenes from ``ssl_train.render`` at the model's size and settings (its task config),
    drawn from a generator seeded ``seed`` → {"rgb" uint8 (n, 3, S, S), "log_depth" (n, 1, S, S),
    "normals" (n, 3, S, S), "contours" (n, 1, S, S) 0/1, float32; "ids" (n, 1, S, S) int64: the
    visible object, ≥ 0 on a flower, negative on ground and sky}."""
    import torch

    from ssl_train.render import render
    from ssl_train.tasks.synthetic import MIN_DEPTH

    scene = render(p.config.render_config(p.model.image_size), n, torch.Generator().manual_seed(seed))
    return {"rgb": to_u8(scene.rgb), "log_depth": scene.depth.clamp_min(MIN_DEPTH).log().numpy(),
            "normals": scene.normals.numpy(), "contours": scene.contours.numpy(), "ids": scene.ids.numpy()}


def judge(pred: dict, truth: dict, i: int, rng: np.random.Generator, const: np.ndarray | None = None) -> dict:
    """One rendered scene's answer against the renderer's truth → {"pairs", "pairs_right": pixel
    pairs whose true depths differ by ≥ ``MIN_LOG_GAP`` and how many the model put in the right
    order, "pairs_rule" how many the rule "the lower point is the nearer" gets right (a tie: half);
    "pixels", "near": the flowers' pixels (not ground or sky, which face one way each) and how
    many of the model's surface directions there are within ``NEAR_DEG``; "near_const": the same for
    one direction ``const`` (unit (3,); default: facing the camera) given to every such pixel;
    "angles" (pixels,) degrees}."""
    td, pd = truth["log_depth"][i, 0].ravel(), pred["log_depth"][0, 0].ravel()
    a, b = rng.integers(0, td.size, PAIRS), rng.integers(0, td.size, PAIRS)
    gap = td[a] - td[b]
    keep = np.abs(gap) >= MIN_LOG_GAP
    right = np.sign(pd[a] - pd[b])[keep] == np.sign(gap)[keep]
    # the plain rule to beat: the lower of two points in the picture is the nearer (ground recedes upwards)
    side = truth["log_depth"].shape[-1]
    rule = np.sign((b // side) - (a // side))[keep]
    rule_right = float((rule == np.sign(gap)[keep]).sum() + 0.5 * (rule == 0).sum())
    tn = truth["normals"][i].reshape(3, -1)
    # the flowers' own pixels: ground and sky face one way each, so a constant would score well there
    surface = truth["ids"][i].ravel() >= 0
    pn = pred["normals_raw"][0].reshape(3, -1)
    ang = np.degrees(np.arccos(np.clip((tn * pn).sum(0), -1, 1)))[surface]
    const = np.array([0.0, 0.0, 1.0]) if const is None else const
    ang_c = np.degrees(np.arccos(np.clip(const @ tn[:, surface], -1, 1)))
    return {"pairs": int(keep.sum()), "pairs_right": int(right.sum()), "pairs_rule": rule_right, "pixels": int(surface.sum()),
            "near": int((ang < NEAR_DEG).sum()), "near_const": int((ang_c < NEAR_DEG).sum()), "angles": ang}


def score_scenes(p: Pretext, n: int = SCORE_SCENES, seed: int = SCORE_SEED) -> dict:
    """The model on ``n`` fresh rendered scenes (seed ``seed``) → {"kind": "synthetic", "depth_order":
    share of pixel pairs put in the right near/far order (guessing: 0.5), "depth_order_rule": the same
    for the rule "the lower point is the nearer", "normals_near": share of
    the flowers' pixels whose direction is within ``NEAR_DEG``°, "normals_near_const": the same for the best
    single direction per scene, "normals_median_deg", "contour_f1": F1 of outline pixels at p > 0.5,
    "scenes"}. Real photos have no true depth: this is measured on renders only."""
    truth = rendered(p, seed, n)
    rng = np.random.default_rng(seed)
    flower = (truth["ids"] >= 0).transpose(1, 0, 2, 3).reshape(-1)
    const = truth["normals"].transpose(1, 0, 2, 3).reshape(3, -1)[:, flower].mean(1) if flower.any() else np.array([0.0, 0.0, 1.0])
    const = const / max(float(np.linalg.norm(const)), 1e-6)
    tot = {"pairs": 0, "pairs_right": 0, "pairs_rule": 0.0, "pixels": 0, "near": 0, "near_const": 0}
    angles, tp, fp, fn = [], 0, 0, 0
    for i in range(n):
        pred = shape(p, truth["rgb"][i])
        j = judge(pred, truth, i, rng, const)
        for k in tot:
            tot[k] += j[k]
        angles.append(j["angles"])
        pc, tc = pred["contour_prob"][0, 0] > 0.5, truth["contours"][i, 0] > 0.5
        tp, fp, fn = tp + int((pc & tc).sum()), fp + int((pc & ~tc).sum()), fn + int((~pc & tc).sum())
    return {"kind": "synthetic", "scenes": n, "depth_order": tot["pairs_right"] / max(tot["pairs"], 1),
            "depth_order_rule": tot["pairs_rule"] / max(tot["pairs"], 1),
            "normals_near": tot["near"] / max(tot["pixels"], 1), "normals_near_const": tot["near_const"] / max(tot["pixels"], 1),
            "normals_median_deg": float(np.median(np.concatenate(angles))) if angles else 0.0, "near_deg": NEAR_DEG,
            "contour_f1": 2 * tp / max(2 * tp + fp + fn, 1)}


@register_score("synthetic")
def score(job: scores.Scoring) -> str | None:
    return scores.on_pretext(job, lambda p: score_scenes(p))


@register_words("synthetic")
def words(s: dict) -> str:
    near = scores.times_in_100(s["normals_near"])
    verdict = "better than" if s["normals_near"] > s["normals_near_const"] else "no better than"
    return (f"puts the nearer of two points first {scores.times_in_100(s['depth_order'])} (guessing: 50, the rule "
            f"'lower in the picture is nearer': {100 * s['depth_order_rule']:.0f}); gets the way a flower's surface faces "
            f"right (within {s['near_deg']:.0f}°) {near}, {verdict} one direction for every flower pixel "
            f"({100 * s['normals_near_const']:.0f})")


@register_baseline("synthetic")
def baseline(s: dict) -> str:
    return f"near/far: coin flip 50, 'lower is nearer' {100 * s['depth_order_rule']:.0f} in 100; one direction for all flower surfaces: {100 * s['normals_near_const']:.0f} in 100"


@register_compute("synthetic")
def compute(entry, img) -> dict:
    return answer(entry, "synthetic", img)


@register_demo("synthetic")
def demo(entry, img) -> Demo:
    """A rendered scene (its depth is known) → the model's depth of it. ``img`` (the talk's photo)
    is not used: this task learns on renders, and the slide shows what it learns from."""
    from .common import opened

    p = opened(entry)
    truth = rendered(p, SCENE_SEED)
    pred = shape(p, truth["rgb"][0])
    return Demo(pretext.enlarge(truth["rgb"][0], DEMO_SIDE, smooth=True), pretext.enlarge(pred["depth"], DEMO_SIDE, smooth=True),
                "a rendered scene", "its depth, yellow: near", "How far is each part?")

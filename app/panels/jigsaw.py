"""Jigsaw puzzles (Noroozi & Favaro, ECCV 2016): put the shuffled tiles back."""
from __future__ import annotations

import numpy as np
import streamlit as st

from app import pretext, scores, state
from app.inference import ModelFileError, softmax
from app.pretext import Pretext, as_tensor, fmap_for_head, first_output, reexport, to_np, to_u8

from . import (DEMO_SIDE, Demo, Needs, register, register_answer, register_baseline, register_compute, register_demo,
               register_score, register_score_sub, register_sub, register_words)
from .common import answer, W, card_score, chance_words, details, header, load, opened, photo_box, photos_for, run

TITLE = "Put the puzzle back together"
QUESTION = ("We cut your photo into 3×3 tiles and shuffle them, and the model must say **how they were shuffled**. "
            "To solve it, it must know which part of a flower goes where — petals around the centre, stem at the bottom.")


def puzzle_control() -> int:
    """The puzzle number chosen on the page: it picks the shuffles (and PIRL's and SimCLR's views)."""
    return int(st.number_input("Puzzle number (each number shuffles the tiles differently)", min_value=0, max_value=9999,
                               step=1, key=state.EXPLORER_PUZZLE))


def puzzle_permutation(puzzle: int, i: int, n: int) -> int:
    """The shuffle (index into the model's ``n`` permutations) of the ``i``-th photo for puzzle number
    ``puzzle``: ``default_rng([puzzle, i])`` (the panel's puzzles, and the score's for seed ``puzzle``)."""
    return int(np.random.default_rng([int(puzzle), int(i)]).integers(n))


def one_photo(entry, name: str, u8: np.ndarray, perm: int, sub: str | None = None) -> None:
    r = run(entry, "jigsaw", u8, perm, sub=sub)
    if r is None:
        return
    with photo_box(name):
        c1, c2, c3, c4 = st.columns([1, 1, 1, 1.2])
        c1.image(pretext.enlarge(r["shuffled"], W), caption="the puzzle: shuffled tiles", width=W)
        c2.image(pretext.enlarge(r["answer"], W), caption="put back the way the model says", width=W)
        c3.image(pretext.enlarge(r["original"], W), caption="the tiles in their true places", width=W)
        with c4:
            if r["correct"]:
                st.markdown(f"✅ **Solved** ({r['probs'][r['predicted']]:.0%} sure): every tile back in its place.")
            else:
                st.markdown(f"❌ **Not solved**: {r['in_place']} of 9 tiles end up in their place.")
            st.caption(f"Gaps between the tiles stop it from simply continuing lines; it sees each tile on its own. "
                       f"(Shuffle #{r['target']} of {len(r['probs'])}; the model chose #{r['predicted']}.)")


def show_for(entry, items, sub: str | None, acc_key: str) -> None:
    """The jigsaw panel for a jigsaw model, or for a multi-task model's jigsaw head (``sub``)."""
    p = load(entry, sub)
    if p is None:
        return
    n = len(p.task.permutations())
    acc = card_score(entry, acc_key)
    header(entry, TITLE, QUESTION, chance_words(acc, 1 / n, "solved") if acc is not None else None, p.model.image_size,
           use_measured=sub is None)  # a multi-task model's measured score is its first sub-task's
    puzzle = puzzle_control()
    for i, (name, u8) in enumerate(photos_for(p, items)):
        perm = puzzle_permutation(puzzle, i, n)
        one_photo(entry, name, u8, perm, sub)
    details(entry, [f"{n} possible shuffles (the model's permutation set), so guessing solves 1 in {n}",
                    f"puzzles solved on the test split: {100 * acc:.1f}%" if acc is not None else "no pretext test in model.json"])


@register("jigsaw", "Jigsaw", TITLE, QUESTION, order=1, needs=Needs(head=True))
def show(entry, items, ctx) -> None:
    show_for(entry, items, None, "acc")


@register_sub("jigsaw")
def show_sub(entry, items, ctx) -> None:
    """A multi-task model's jigsaw head: its own graph (model.json "sub_head_graphs") on the shared encoder."""
    show_for(entry, items, "jigsaw", "jigsaw_acc")


@register_compute("jigsaw")
def compute(entry, img) -> dict:
    return answer(entry, "jigsaw", img, 0)


@register_demo("jigsaw")
def demo(entry, img) -> Demo:
    """The explorer's first puzzle (number 0, first photo) on ``img``: the shuffled tiles → the tiles
    put back in the order the model names."""
    perm = puzzle_permutation(0, 0, len(opened(entry).task.permutations()))
    r = answer(entry, "jigsaw", img, perm)
    verdict = "solved" if r["correct"] else f"{r['in_place']} of 9 tiles in place"
    return Demo(pretext.enlarge(r["shuffled"], DEMO_SIDE, smooth=True), pretext.enlarge(r["answer"], DEMO_SIDE, smooth=True),
                "shuffled tiles", f"the model's order: {verdict}", "Put the shuffled tiles back")


# -- without Streamlit: the model's answer, its score on the test photos, in plain words -----------------
@register_answer("jigsaw")
def solve(p: Pretext, image_u8: np.ndarray, perm_index: int) -> dict:
    """Cut the photo's 3×3 puzzle (centred tiles, as on the test split), shuffle it by permutation
    ``perm_index`` of the model's set, let the model name the permutation, put the tiles back with
    its answer.

    → {"original", "shuffled", "answer": uint8 (3, H, W) grids, "target", "predicted": indices into
    "perms" (n, 9), "probs" (n,), "correct": bool, "in_place": tiles the answer puts right (0..9),
    "logits" (1, n), "tiles_input" (9, 3, t, t) float32 (what the encoder saw)}."""
    from ssl_train.tasks import jigsaw as J

    cfg = p.config
    x = as_tensor(image_u8)
    perms = p.task.permutations()
    target = int(perm_index) % len(perms)
    tiles = J.cut_tiles(x, cfg.tile_size, cfg.gap)  # (1, 9, 3, t, t) reading order
    shuffled = J.apply_permutation(tiles, perms[target])
    inp = J.standardize_tiles(shuffled).reshape(-1, *shuffled.shape[2:])
    fmap = fmap_for_head(p, p.encoder.run(to_np(inp))["fmap"])
    logits = first_output(p.head.run(fmap))
    if logits.shape != (1, len(perms)):
        raise ModelFileError(f"{p.model.name}: head.onnx gives {list(logits.shape)} scores for a {len(perms)}-permutation set; {reexport(p.model)}")
    probs = softmax(logits)[0]
    pred = int(np.argmax(probs))
    answer = J.reassemble(shuffled, perms[pred])
    return {
        "original": to_u8(J.tiles_to_grid(tiles)[0]), "shuffled": to_u8(J.tiles_to_grid(shuffled)[0]), "answer": to_u8(J.tiles_to_grid(answer)[0]),
        "target": target, "predicted": pred, "probs": probs, "perms": perms.numpy(), "correct": pred == target,
        "in_place": int((perms[pred] == perms[target]).sum()), "logits": logits, "tiles_input": to_np(inp),
    }


def score_photos(p: Pretext, images_u8: np.ndarray, seed: int) -> dict:
    """``solve`` on each test photo, shuffled by ``puzzle_permutation(seed, i, n)`` → {"share" of
    puzzles solved, "chance" 1/n, "tiles_in_place" mean tiles (0..9) the model's answer puts back
    right, "tiles_in_place_chance" the same for a permutation of the set picked at random, "photos",
    "permutations" n}."""
    perms = p.task.permutations().numpy()
    n_perm = len(perms)
    agree = (perms[:, None, :] == perms[None, :, :]).sum(-1)  # (n, n) tiles two permutations place alike
    solved, in_place = [], []
    for i, img in enumerate(images_u8):
        r = solve(p, img, puzzle_permutation(seed, i, n_perm))
        solved.append(bool(r["correct"]))
        in_place.append(int(r["in_place"]))
    return {"kind": "jigsaw", "share": float(np.mean(solved)) if solved else 0.0, "chance": 1.0 / n_perm,
            "tiles_in_place": float(np.mean(in_place)) if in_place else 0.0, "tiles_in_place_chance": float(agree.mean()),
            "photos": len(solved), "answers": len(solved), "permutations": n_perm, "seed": int(seed)}


@register_score("jigsaw")
def score(job: scores.Scoring) -> str | None:
    return scores.on_pretext(job, lambda p: score_photos(p, job.images, job.seed))


@register_score_sub("jigsaw")
def score_sub(job: scores.Scoring, sub: str) -> None:
    """A multi-task model's jigsaw head, through its own graph."""
    p = scores.open_sub(job, sub)
    if p is not None:
        job.add(dict(score_photos(p, job.images, job.seed), head=sub))


@register_words("jigsaw")
def words(s: dict) -> str:
    return (f"solves the 9-tile puzzle {scores.times_in_100(s['share'])} ({scores.guessing(s)}); puts {s['tiles_in_place']:.1f} of 9 tiles back "
            f"in place on average (guessing: {s['tiles_in_place_chance']:.1f})")


@register_baseline("jigsaw")
def baseline(s: dict) -> str:
    return f"guessing: {100 * s['chance']:.2g}% solved, {s['tiles_in_place_chance']:.2f} tiles"

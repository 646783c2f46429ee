"""Jigsaw puzzles (Noroozi & Favaro, ECCV 2016): put the shuffled tiles back."""
from __future__ import annotations

import numpy as np
import streamlit as st

from app import pretext, state

from . import DEMO_SIDE, Demo, register, register_compute, register_demo, register_sub
from .common import answer, W, card_score, chance_words, details, header, load, opened, photo_box, photos_for, run

TITLE = "Put the puzzle back together"
QUESTION = ("We cut your photo into 3×3 tiles and shuffle them, and the model must say **how they were shuffled**. "
            "To solve it, it must know which part of a flower goes where — petals around the centre, stem at the bottom.")


def puzzle_control() -> int:
    """The puzzle number chosen on the page: it picks the shuffles (and PIRL's and SimCLR's views)."""
    return int(st.number_input("Puzzle number (each number shuffles the tiles differently)", min_value=0, max_value=9999,
                               step=1, key=state.EXPLORER_PUZZLE))


def puzzle_permutation(puzzle: int, i: int, n: int) -> int:
    """The shuffle (index into the model's ``n`` permutations) of the ``i``-th photo for puzzle number ``puzzle``."""
    return int(np.random.default_rng([puzzle, i]).integers(n))


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


@register("jigsaw", "Jigsaw", TITLE, QUESTION, order=1)
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

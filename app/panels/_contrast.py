"""What PIRL's and SimCLR's panels share: neither predicts anything; each learns that two versions of
one photo should have alike features, unlike every other photo's. The panel shows how a photo's
second version ranks its own photo among the test photos."""
from __future__ import annotations

import numpy as np
import streamlit as st

from app import inference, pretext, scores, state, ui
from app.inference import ModelFileError
from app.uploads import md_escape

from .common import _compute, chance_words, details, gallery, gallery_answer, header, load, opened, ordinal, photo_box, photos_for

GALLERY = 100  # test photos the user's photo is compared with


def with_gallery(entry, p, items, index, kind: str, seed: int) -> tuple[list, np.ndarray, list[str], dict]:
    """The shown photos, then up to ``GALLERY`` test photos (minus any that is one of them) → (shown
    [(name, u8)], images (N, 3, S, S), names, the task ``kind``'s ``Panel.answer`` over them all). The gallery's
    own answer is computed once per model and seed; only the shown photos are new work."""
    shown = photos_for(p, items)
    gal = gallery(entry, p, index, GALLERY)
    mine = np.stack([u for _, u in shown])
    diff = np.abs(gal["images"][:, None].astype(np.int16) - mine[None]).mean((2, 3, 4))  # (gallery, shown)
    keep = np.flatnonzero(diff.min(1) >= 2)  # a shown photo that is a gallery photo is not compared with itself
    images = np.concatenate([mine, gal["images"][keep]])
    names = [n for n, _ in shown] + [f"{gal['classes'][gal['labels'][i]]} · {gal['files'][i].rsplit('/', 1)[-1]}" for i in keep]
    new = _compute(kind, str(entry.path), inference.folder_signature(entry.path), None, mine, seed)
    return shown, images, names, pretext.contrast_join(new, gallery_answer(entry, p, index, GALLERY, kind, seed), keep)


def show(entry, items, ctx, kind: str, title: str, question: str, version: str, views, partners) -> None:
    """``kind``: the task (its ``Panel.answer`` is run); ``version``: what the second version is
    called ("its jigsaw version"); ``views(r, i)``: [(picture, caption)] of photo i; ``partners(r,
    images)``: the pictures a photo's version is compared with, one per photo (the photos themselves,
    or their second views)."""
    p = load(entry)
    if p is None:
        return
    if ctx.index is None:
        header(entry, title, question, None, p.model.image_size)
        st.info("The bundled test photos are needed for the comparison.")
        return
    seed = int(st.session_state.get(state.EXPLORER_PUZZLE, 1))  # its widget is drawn under the header, below
    try:
        shown, images, names, r = with_gallery(entry, p, items, ctx.index, kind, seed)
    except ModelFileError as e:
        st.error(f"Model **{md_escape(entry.name)}**: {md_escape(str(e))}")
        return
    n = len(images)
    first = float(np.mean(r["rank"] == 1))
    header(entry, title, question,
           f"among these {n} photos, {version} picks out its own photo " + chance_words(first, 1 / n, "first"), p.model.image_size)
    st.number_input("Draw other versions (each number draws different ones)", min_value=0, max_value=9999, step=1,
                    key=state.EXPLORER_PUZZLE)
    for i, (name, u8) in enumerate(shown):
        sim = r["similarity"][i]
        rank = int(r["rank"][i])
        with photo_box(name):
            pics = [(u8, "the photo"), *views(r, i)]
            cols = st.columns([1] * len(pics) + [2])
            for col, (img, caption) in zip(cols, pics):
                col.image(pretext.enlarge(img, 150, True), caption=caption, width=150)
            with cols[-1]:
                if rank == 1:
                    st.markdown(f"✅ Of all {n} photos, {version} is most like **its own photo**.")
                else:
                    st.markdown(f"❌ Its own photo comes only **{ordinal(rank)}** of {n} in likeness to {version}.")
                st.caption("The most alike photos, most alike first:")
            top = list(np.argsort(-sim)[:4])
            grid = partners(r, images)
            ui.show_photo_grid([pretext.enlarge(grid[j], 110, True) for j in top],
                               [f"{'★ its own photo' if j == i else md_escape(names[j])} · {sim[j]:.2f}" for j in top], columns=4, width=110)
    details(entry, [f"likeness: cosine similarity of the two embeddings (1 = the same direction); here over {n} photos: "
                    f"your photos and {n - len(shown)} test photos",
                    "training scores this as a classification among the photos of a batch and a memory bank, so the "
                    "card's accuracy (the share ranked first among thousands of stored photos) looks low: chance there is far lower still"])



def compute(entry, img, ctx_index, kind: str) -> dict:
    """The network work for one photo: its versions and those of the ``GALLERY`` test photos."""
    return with_gallery(entry, opened(entry), [("photo", img)], ctx_index, kind, 1)[3]


# -- without Streamlit: the score on the test photos -------------------------------------------------------
def score_photos(answer, kind: str, p, images_u8: np.ndarray, seed: int) -> dict:
    """``answer`` (the task's ``Panel.answer``) over N test photos at once (their views drawn from
    ``seed``) → {"kind", "share" of photos whose own partner is the most similar of the N (rank 1),
    "chance" 1/N, "median_rank" (1 = first), "top5" share with rank ≤ 5, "gallery" N}."""
    r = answer(p, images_u8, seed)
    rank = np.asarray(r["rank"])
    n = len(rank)
    return {"kind": kind, "share": float(np.mean(rank == 1)) if n else 0.0, "chance": 1.0 / max(n, 1),
            "median_rank": float(np.median(rank)) if n else 0.0, "top5": float(np.mean(rank <= 5)) if n else 0.0,
            "top5_chance": min(5, n) / max(n, 1), "gallery": n, "photos": n, "seed": int(seed)}


def score(job: scores.Scoring, answer, kind: str, meaning) -> str | None:
    """At most ``job.limit`` test photos (evenly spread) at once, the card's number explained by ``meaning``."""

    def measure(p) -> dict:
        pick = scores.spread(len(job.images), job.limit)
        s = score_photos(answer, kind, p, job.images[pick], job.seed)
        s["gallery_limit"] = int(job.limit)
        return s

    return scores.on_pretext(job, measure, meaning)

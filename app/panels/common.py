"""What every panel shares: cached models and computations, the panel's header with its score in
plain words, picture rows. Streamlit only here and in the panel files; each task's compute is its
panel's ``Panel.answer`` (plain arrays, on what ``app.pretext`` opens), run here by task name and cached."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from app import inference, pretext, ui
from app.config import reports_dir
from app.inference import ModelEntry, ModelFileError, OnnxModel
from app.uploads import md_escape

from . import answer_of

W = 170  # px of each picture in a row


@dataclass(frozen=True)
class Context:
    """What a panel may need beyond its model and the photos: the bundled photo index (None when
    the photos are missing) and every usable model (a panel may compare with another)."""

    index: Any
    entries: list[ModelEntry]


# -- cached models and results (per server; keyed by the model folder's signature) -----------------
@st.cache_resource(show_spinner=False, max_entries=32)
def _open(path: str, signature: tuple, sub: str | None = None) -> pretext.Pretext:
    model = OnnxModel(path)
    return pretext.open_sub_pretext(model, sub) if sub else pretext.open_pretext(model)


@st.cache_data(show_spinner=False, max_entries=256)
def _compute(task: str, path: str, signature: tuple, sub: str | None, image_u8: np.ndarray, *args) -> dict:
    return answer_of(task)(_open(path, signature, sub), image_u8, *args)


# cache_resource, not cache_data: read-only arrays shared by every session, not copied on each read
@st.cache_resource(show_spinner=False, max_entries=8)
def _gallery(path: str, signature: tuple, root: str, key: str, size: int, limit: int | None, answered: str | None) -> dict:
    """Test photos at the model's size (with ``answered``, a task: its ``Panel.answer`` on them all,
    e.g. DeepCluster's group of each), once per model."""
    g = pretext.test_gallery(ui.decoded(root, size, key), limit)
    if answered:
        g.update(answer_of(answered)(_open(path, signature), g["images"]))
    return g


@st.cache_resource(show_spinner=False, max_entries=8)
def _gallery_answer(task: str, path: str, signature: tuple, root: str, key: str, size: int, limit: int, seed: int) -> dict:
    """The ``task``'s ``Panel.answer`` over the gallery of test photos, once per model and seed (read-only)."""
    g = _gallery(path, signature, root, key, size, limit, None)
    return answer_of(task)(_open(path, signature), g["images"], seed)


def gallery_answer(entry: ModelEntry, p: pretext.Pretext, index, limit: int, task: str, seed: int) -> dict:
    return _gallery_answer(task, str(entry.path), inference.folder_signature(entry.path), str(index.root), index.key,
                           p.model.image_size, limit, seed)


def load(entry: ModelEntry, sub: str | None = None) -> pretext.Pretext | None:
    """The model ready for its panel (``sub``: a multi-task model's sub-task), or None after one
    clear line saying what is missing and how to make it."""
    try:
        p = opened(entry, sub)
    except ModelFileError as e:
        st.error(f"Model **{md_escape(entry.name)}**: {md_escape(str(e))}")
        return None
    except Exception as e:  # noqa: BLE001 (e.g. a task config this version cannot rebuild)
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        st.error(f"Model **{md_escape(entry.name)}** cannot be prepared for its panel ({md_escape(first)}); "
                 f"re-export it with the current `python -m ssl_train export`.")
        return None
    if p.problem:
        st.warning(md_escape(p.problem), icon="🧩")
        return None
    return p


@st.cache_resource(show_spinner=False, max_entries=2)
def bundled_index(root: str):
    """The bundled photos' index (``app.photos.index``), read once: for ``Panel.compute``, which
    runs without the page (the page itself uses ``ui.photo_index``)."""
    from app import photos

    return photos.index(root)


def opened(entry: ModelEntry, sub: str | None = None) -> pretext.Pretext:
    """The model of ``entry`` (``sub``: a multi-task model's sub-task) as its panel uses it, cached;
    raises what ``load`` turns into one line."""
    return _open(str(entry.path), inference.folder_signature(entry.path), sub)


def answer(entry: ModelEntry, task: str, img, *args, sub: str | None = None) -> dict:
    """The ``task``'s ``Panel.answer`` on one photo (a PIL image), uncached: a panel's network work, for
    ``Panel.compute`` (the model itself stays cached)."""
    p = opened(entry, sub)
    return answer_of(task)(p, p.model.prepare(img), *args)


def run(entry: ModelEntry, task: str, image_u8: np.ndarray, *args, sub: str | None = None) -> dict | None:
    """The ``task``'s ``Panel.answer`` on one photo, cached; a model-file problem → one line, None."""
    try:
        return _compute(task, str(entry.path), inference.folder_signature(entry.path), sub, image_u8, *args)
    except ModelFileError as e:
        st.error(f"Model **{md_escape(entry.name)}**: {md_escape(str(e))}")
        return None


def answers(entry: ModelEntry, p: pretext.Pretext, items, task: str, *args):
    """(name, the model's uint8 view (3, S, S), the ``task``'s ``Panel.answer``) for each photo whose
    answer could be computed (a model-file problem was said in one line by ``run``)."""
    for name, u8 in photos_for(p, items):
        r = run(entry, task, u8, *args)
        if r is not None:
            yield name, u8, r


def gallery(entry: ModelEntry, p: pretext.Pretext, index, limit: int | None, answered: bool = False) -> dict:
    """Up to ``limit`` test photos at the model's size; ``answered``: with the model's task's
    ``Panel.answer`` on them all (e.g. DeepCluster's group of each), once per model."""
    return _gallery(str(entry.path), inference.folder_signature(entry.path), str(index.root), index.key,
                    p.model.image_size, limit, p.task.name if answered else None)


def photos_for(p: pretext.Pretext, items) -> list[tuple[str, np.ndarray]]:
    """(name, the model's uint8 view of the photo (3, S, S)) for each photo."""
    return [(name, p.model.prepare(img)) for name, img in items]


# -- words ---------------------------------------------------------------------------------------------
def times_in_100(share: float) -> str:
    """0.804 → "80 times in 100" (``app.scores``'s words, so a panel reads like the report)."""
    from app import scores

    return scores.times_in_100(share)


def chance_words(share: float, chance: float, verb: str = "right") -> str:
    """"right **80 times in 100** (guessing: 25)" — a score a non-expert can weigh, in the same words
    as the measured scores (``app.scores``)."""
    from app import scores

    return f"{verb} **{scores.times_in_100(share)}** ({scores.guessing({'chance': chance})})"


def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def card_score(entry: ModelEntry, key: str) -> float | None:
    """A number of the card's pretext test (``key`` or ``<sub>_key`` of a multi-task card)."""
    pt = (entry.card or {}).get("pretext_test") or {}
    v = pt.get(key)
    return float(v) if isinstance(v, (int, float)) else None


def weights_sha256(entry: ModelEntry) -> str | None:
    card = entry.card or {}
    return (card.get("files") or {}).get((card.get("weights") or {}).get("file", ""))


def measured(entry: ModelEntry) -> dict | None:
    """This model's scores in ``reports/panel-scores.json`` (``python -m app.scores``) when they
    were measured on these very weights, else None."""
    try:
        from app import scores
    except ImportError:  # noqa: BLE001 (the report's reader is optional to the panels)
        return None
    return scores.load(reports_dir() / scores.REPORT_JSON, entry.name, weights_sha256(entry))


def plain_measured(entry: ModelEntry) -> str | None:
    """The plain part of the measured score (``reports/panel-scores.json``): its first clause and
    its verdict ("— no better than the flat fill"); the rest goes to the experts' details."""
    full = measured_sentence(entry)
    if not full:
        return None
    first = full.split(";")[0].split(" — ")[0]
    verdict = full.split(" — ", 1)[1] if " — " in full else ""
    return f"{first}{' — **' + verdict + '**' if verdict else ''}"


def header(entry: ModelEntry, title: str, question: str, score: str | None, size: int, use_measured: bool = True) -> None:
    """The panel's opening: the question in one sentence, then how well this model answers it —
    measured on every test photo when ``python -m app.scores`` has scored these weights, else
    ``score`` (from the card, or from the photos on screen; always, with ``use_measured`` off)."""
    st.markdown(f"### {title}")
    st.markdown(question)
    measured_words = plain_measured(entry) if use_measured else None
    if measured_words:
        st.markdown(f"**{md_escape(entry.name)}** on the test photos, which it never trained on: {measured_words}.")
    elif score:
        st.markdown(f"**{md_escape(entry.name)}** on photos it never trained on: {score}.")
    st.caption(f"{md_escape(entry.label())} · sees {size}×{size}-pixel photos")


def details(entry: ModelEntry, lines: list[str]) -> None:
    """The expert's numbers (each with a one-line meaning) in a closed expander."""
    pt = {k: v for k, v in ((entry.card or {}).get("pretext_test") or {}).items() if isinstance(v, (int, float))}
    full = measured_sentence(entry)
    with st.expander("Details for experts"):
        if full:
            st.markdown(f"- on the test split (`python -m app.scores` → `reports/panel-scores.md`): {full}")
        for line in lines:
            st.markdown(f"- {line}")
        if pt:
            st.markdown("- model.json's pretext test (the test split, at training time): "
                        + ", ".join(f"`{k}` {v:.4g}" for k, v in pt.items()))


def picture_row(pictures: list[tuple[np.ndarray, str]], width: int = W, smooth: bool = True) -> None:
    """One row of captioned pictures (uint8 (3, H, W) arrays), enlarged to ``width`` px."""
    for col, (img, caption) in zip(st.columns(len(pictures)), pictures):
        col.image(pretext.enlarge(img, width, smooth), caption=caption, width=width)


def photo_box(name: str):
    """A bordered box for one photo's answer, titled with the photo's name."""
    box = st.container(border=True)
    box.markdown(f"##### {md_escape(name)}")
    return box


def measured_sentence(entry: ModelEntry) -> str | None:
    """The plain-words score of ``reports/panel-scores.json`` for this model's very weights, else None."""
    m = measured(entry)
    if not m:
        return None
    from app import scores

    return scores.sentence(m) or None

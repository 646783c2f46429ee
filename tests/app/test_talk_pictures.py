"""Talk mode's live pictures (app/talk/pictures.py) on the shipped models and the bundled photos.

The module is pure compute: each test passes the repository's models/ and data/flowers (or a
temporary copy of part of them) explicitly, so the app fixtures' environment variables do not matter.
The tests that run a model over every pick or every demoed model are marked ``slow``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app import inference, panels, photos
from app.talk import pictures as P

from ..conftest import FLOWERS, REPO

MODELS = REPO / "models"


def _index() -> photos.PhotoIndex:
    return photos.index(FLOWERS)


# -- slide 1 ------------------------------------------------------------------------------------------
def test_idea__four_turns_and_the_rotation_models_probabilities():
    f = _index().picks()[1]
    idea = P.idea(MODELS, FLOWERS, f)
    assert idea.photo == f
    assert idea.probs.shape == (4, 4)
    np.testing.assert_allclose(idea.probs.sum(1), 1.0, atol=1e-5)
    assert idea.correct == [int(np.argmax(idea.probs[k])) == k for k in range(4)]
    assert idea.angle_labels == list(inference.ANGLE_LABELS)
    assert len(idea.turns) == 4 and all(t.size == (P.TURN_SIDE, P.TURN_SIDE) for t in idea.turns)
    # the turns are one picture turned: turn 2 is turn 0 upside down
    a0, a2 = np.asarray(idea.turns[0]), np.asarray(idea.turns[2])
    assert np.array_equal(a2, a0[::-1, ::-1])
    # the probabilities are the app's rotation inference on that photo
    model = inference.OnnxModel(MODELS / P.PROTAGONIST)
    want = inference.rotation_grid(model, model.prepare(photos.open_bundled(FLOWERS, f)))[1]
    np.testing.assert_allclose(idea.probs, want, atol=1e-6)


@pytest.mark.slow
def test_idea__the_default_photo_is_the_one_the_model_is_surest_of():
    idea = P.idea(MODELS, FLOWERS)
    # the pick on which the model is surest of all four turns (its least sure turn's probability for
    # the true turn highest), recomputed here with the app's rotation inference
    model = inference.OnnxModel(MODELS / P.PROTAGONIST)
    sure = {}
    for f in _index().picks():
        probs = inference.rotation_grid(model, model.prepare(photos.open_bundled(FLOWERS, f)))[1]
        if (probs.argmax(1) == np.arange(4)).all():
            sure[f] = probs.diagonal().min()
    assert idea.photo == max(sure, key=sure.get) and all(idea.correct)
    np.testing.assert_allclose(idea.probs.diagonal().min(), sure[idea.photo], rtol=1e-5)
    assert P.default_photo(MODELS, FLOWERS) == idea.photo  # slide 2 shows the same photo by default


def test_idea__missing_model_or_photos_says_what_and_how(tmp_path):
    (tmp_path / "models").mkdir()
    with pytest.raises(P.Missing) as e:
        P.idea(tmp_path / "models", FLOWERS)
    assert P.PROTAGONIST in e.value.what and "models" in e.value.what and e.value.command
    assert str(e.value) == f"{e.value.what} — {e.value.command}"
    with pytest.raises(P.Missing) as e:
        P.idea(MODELS, tmp_path / "no-photos")
    assert "does not exist" in e.value.what and e.value.command


# -- slide 2 ------------------------------------------------------------------------------------------
def _demo_tasks(models_dir: Path) -> list[str]:
    """The tasks with a panel demo whose model folder is usable, in the panels' order."""
    reg = panels.load_all()
    tasks = {e.task for e in inference.list_models(models_dir) if e.ok and e.task in reg and reg[e.task].demo}
    return sorted(tasks, key=lambda t: (reg[t].order, t))


@pytest.mark.slow
def test_questions__a_row_per_demoed_task_present_and_none_for_a_missing_folder(tmp_path):
    tasks = _demo_tasks(MODELS)
    assert len(tasks) >= 2  # the shipped models: jigsaw, colouring, filling, sharpening
    rows = P.questions(MODELS, FLOWERS)
    assert [r.task for r in rows] == tasks
    reg = panels.load_all()
    for r in rows:
        assert r.label == reg[r.task].label and r.question and r.input_caption and r.output_caption
        assert isinstance(r.input, Image.Image) and isinstance(r.output, Image.Image)
        assert max(r.input.size) == max(r.output.size) == panels.DEMO_SIDE
        assert not np.array_equal(np.asarray(r.input.resize(r.output.size)), np.asarray(r.output))  # the model answered
    # the same models but one demoed task's folder left out (symlinks: nothing copied)
    left_out = tasks[0]
    sub = tmp_path / "models"
    sub.mkdir()
    for p in MODELS.iterdir():
        if p.is_dir() and p.name != left_out:
            (sub / p.name).symlink_to(p, target_is_directory=True)
    assert [r.task for r in P.questions(sub, FLOWERS)] == tasks[1:]


def test_questions__no_demoed_model_gives_an_empty_list(tmp_path):
    sub = tmp_path / "models"
    sub.mkdir()
    (sub / P.PROTAGONIST).symlink_to(MODELS / P.PROTAGONIST, target_is_directory=True)  # rotation has no demo
    assert P.questions(sub, FLOWERS) == []


def _rows(n: int) -> list[P.Question]:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (320, 320, 3), dtype=np.uint8))
    small = img.resize((48, 48)).resize((320, 320), Image.Resampling.NEAREST)
    return [P.Question(f"task{i}", f"Task {i}", "Put the shuffled tiles back", small, img, "what it gets", "the model's answer, in words")
            for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_questions_picture__fits_a_16_by_9_screen_and_is_legible(n):
    pic = P.questions_picture(_rows(n))
    assert pic.mode == "RGB" and pic.width == 1600
    assert pic.width / pic.height >= 16 / 9 - 0.02  # six tasks and fewer fit under a title on 1280×720
    assert pic.getpixel((2, 2)) == (255, 255, 255)
    assert pic.convert("L").getextrema()[0] <= P.INK[0]  # the text is drawn
    small = P.questions_picture(_rows(n), width=1280)
    assert small.width == 1280 and abs(small.height - pic.height * 0.8) < 0.05 * pic.height


def test_questions_picture__text_is_at_least_28_px_at_width_1600():
    """The fonts questions_picture asks for at width 1600 (label, question, caption)."""
    sizes = []
    real = P.font

    def spy(size, bold=False):
        sizes.append(size)
        return real(size, bold)

    P.font = spy
    try:
        P.questions_picture(_rows(4))
    finally:
        P.font = real
    assert sizes and min(sizes) >= 28


def test_wrap__lines_fit_and_overflow_ends_with_an_ellipsis():
    f = P.font(30)
    lines = P.wrap("the model's version is no sharper than smooth enlarging of the small photo", f, 200, max_lines=2)
    assert len(lines) == 2 and lines[-1].endswith("…") and all(f.getlength(x) <= 200 for x in lines)
    assert P.wrap("short", f, 200) == ["short"]


# -- slide 4 ------------------------------------------------------------------------------------------
def test_fraction_mosaic__lights_exactly_the_protocols_labelled_subset_nested_and_fast():
    from ssl_train.data import labelled_subset

    index = _index()
    t0 = time.perf_counter()
    one = P.fraction_mosaic(FLOWERS, 0.01)
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ten = P.fraction_mosaic(FLOWERS, 0.1)
    again_s = time.perf_counter() - t0
    # the protocol's subset: labelled_subset over the split's training indices (split.csv is in the
    # dataset's order) and labels
    train = np.flatnonzero(~index.is_test)
    for m, fraction in ((one, 0.01), (ten, 0.1)):
        sub = labelled_subset(train, index.labels, fraction, 0)
        assert m.n_labelled == len(sub) == int(m.labelled.sum())
        assert {m.files[i] for i in np.flatnonzero(m.labelled)} == {index.files[i] for i in sub}
        assert m.n_train == len(train) == len(m.files) and m.fraction == fraction
        assert m.picture.width <= 1800 and 1.6 <= m.picture.width / m.picture.height <= 1.95
    assert one.n_labelled < ten.n_labelled
    assert not (one.labelled & ~ten.labelled).any()  # nested: every photo lit at 1% is lit at 10%
    assert one.files == ten.files
    assert again_s < 1.0, f"a new fraction took {again_s:.2f} s after the first call ({first_s:.2f} s)"
    assert P.fraction_mosaic(FLOWERS, 0.1, seed=1).labelled.tolist() != ten.labelled.tolist()


def test_fraction_mosaic__missing_photos_or_split_say_what_and_how(tmp_path):
    with pytest.raises(P.Missing) as e:
        P.fraction_mosaic(tmp_path / "no-photos", 0.1)
    assert "does not exist" in e.value.what and str(tmp_path / "no-photos") in e.value.what and e.value.command
    bare = tmp_path / "flowers"
    bare.mkdir()
    (bare / "daisy").symlink_to(FLOWERS / "daisy", target_is_directory=True)  # photos, no split.csv
    with pytest.raises(P.Missing) as e:
        P.fraction_mosaic(bare, 0.1)
    assert "split.csv" in e.value.what and e.value.command

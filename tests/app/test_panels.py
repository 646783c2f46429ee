"""The explorer's panel registry (app/panels/): a panel for every task, each computing alone."""
from __future__ import annotations

import numpy as np
import pytest

from app import panels, pretext
from app.config import RANDOM_INIT
from app.inference import OnnxModel, list_models
from app.panels import simclr as simclr_panel

from .conftest import SIZE


def test_panels__every_registered_task_and_random_init_has_its_own_panel():
    from ssl_train.tasks import load_all, task_names

    load_all()
    reg = panels.load_all()
    for task in [*task_names(), RANDOM_INIT]:
        assert task in reg, task
        p = reg[task]
        assert p.title and p.question.count(".") >= 1 and p.label and p.compute is not None
    assert panels.panel_for("a-task-with-no-panel") is reg[panels.GENERIC]
    assert len({p.label for p in reg.values()}) == len(reg)  # the picker never shows two alike


def test_panels__each_task_computes_one_photo_alone(task_models, app_env):
    from app import photos

    index = photos.index(app_env["data"])
    img = photos.open_bundled(app_env["data"], index.picks(1)[0])
    for e in list_models(task_models):
        out = panels.panel_for(e.task).compute(e, img)
        assert out is not None, e.name


def test_contrast_join__equals_computing_the_photos_and_the_gallery_together():
    rng = np.random.default_rng(0)

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    q, k = unit(rng.normal(size=(7, 5))), unit(rng.normal(size=(7, 5)))
    new = {"query": q[:2], "key": k[:2], "first": np.arange(2)}
    gal = {"query": q[2:], "key": k[2:], "first": np.arange(2, 7)}
    keep = [0, 2, 3, 4]  # the gallery's second photo left out (say, it is one of the new photos)
    got = pretext.contrast_join(new, gal, keep)
    rows = [0, 1, 2, 4, 5, 6]
    sim = q[rows] @ k[rows].T
    np.testing.assert_allclose(got["similarity"], sim)
    assert got["first"].tolist() == rows
    assert got["rank"].tolist() == (1 + (sim > np.diag(sim)[:, None]).sum(1)).tolist()


def test_contrast_join__simclr_gallery_once_gives_the_same_ranks_as_all_at_once(task_models, app_env):
    from ssl_train.data import DataConfig, load_split_data

    p = pretext.open_pretext(OnnxModel(task_models / "simclr"))
    data = load_split_data(DataConfig(root=str(app_env["data"]), image_size=SIZE))
    images = data.ds.images[:6].numpy()
    a = simclr_panel.embed(p, images[:1], seed=3)
    b = simclr_panel.embed(p, images[1:], seed=3)
    joined = pretext.contrast_join(a, b, np.arange(5))
    assert joined["similarity"].shape == (6, 6) and joined["rank"].min() >= 1
    np.testing.assert_allclose(joined["similarity"][0, 0], float(a["query"][0] @ a["key"][0]), rtol=1e-5)

"""SimCLR (Chen et al., ICML 2020): two random views of one photo should look alike."""
from __future__ import annotations

import numpy as np

from app import scores
from app.config import data_dir
from app.novelty import unit_rows
from app.pretext import Pretext, as_tensor, to_u8

from . import Needs, _contrast, register, register_answer, register_compute, register_score, register_words
from .common import bundled_index

TEST_BATCH = 128  # ssl_train.train.pretext_scores' batch of test photos (the card's "acc" is measured within one)

TITLE = "Recognise a photo from another view of it"
QUESTION = ("The model does not predict anything: it learns to give **two random views** of one photo (cropped, flipped, "
            "colours changed) alike features, unlike the views of **every other photo**. The views differ in everything "
            "but what the photo shows, so the features must describe that.")


@register("simclr", "SimCLR", TITLE, QUESTION, order=7, name="SimCLR",
          needs=Needs(output="projection", lacking="there are no view embeddings to compare"))
def show(entry, items, ctx) -> None:
    _contrast.show(entry, items, ctx, "simclr", TITLE, QUESTION, "its first view",
                   lambda r, i: [(r["first"][i], "view 1"), (r["second"][i], "view 2")], lambda r, images: r["second"])


@register_compute("simclr")
def compute(entry, img) -> dict:
    return _contrast.compute(entry, img, bundled_index(str(data_dir())), "simclr")


# -- without Streamlit: the model's answer, its score on the test photos, in plain words -----------------
@register_answer("simclr")
def embed(p: Pretext, images_u8: np.ndarray, seed: int = 0) -> dict:
    """Two augmented views of each photo (``simclr.two_views``, the training augmentation, drawn
    from ``seed``), embedded by model.onnx's projection head. SimCLR trains the two views of a photo
    to embed alike and unlike the views of every other photo.

    → {"first", "second": uint8 (N, 3, S, S) the views, "similarity" (N, N): row i = photo i's
    first view against every photo's second view (cosine), "rank" (N,): 1 = its own second view is
    the most similar}."""
    import torch

    from ssl_train.tasks import simclr as S

    x = as_tensor(images_u8)
    n = x.shape[0]
    views = to_u8(S.two_views(x, p.config, torch.Generator().manual_seed(int(seed))))  # uint8, as model.onnx takes photos
    z = unit_rows(p.model.run(views, ["projection"])["projection"])
    sim = z[:n] @ z[n:].T
    own = np.diag(sim)
    return {"first": views[:n], "second": views[n:], "similarity": sim, "rank": 1 + (sim > own[:, None]).sum(1),
            "query": z[:n], "key": z[n:]}


def card_meaning(config, card: dict) -> str | None:
    """What the card's pretext-test "acc" measures, with its own chance level."""
    acc = scores.card_acc(card)
    if acc is None:
        return None
    return (f"the card's acc {100 * acc:.1f}% is how often a view's nearest other view among the 2×{TEST_BATCH} views of a "
            f"batch of test photos is its partner — guessing gets {100 / (2 * TEST_BATCH - 1):.1f}%")


@register_score("simclr")
def score(job: scores.Scoring) -> str | None:
    return _contrast.score(job, embed, "simclr", card_meaning)


@register_words("simclr")
def words(s: dict) -> str:
    return (f"matches two altered views of the same photo, among {s['gallery']} test photos, {scores.times_in_100(s['share'])} "
            f"({scores.guessing(s)}); the right view's median place is {scores.place(s['median_rank'])} of {s['gallery']}")

"""PIRL (Misra & van der Maaten, CVPR 2020): a photo and its own jigsaw version should look alike."""
from __future__ import annotations

import numpy as np

from app import scores
from app.config import data_dir
from app.pretext import Pretext, as_tensor, fmap_for_head, first_output, to_np, to_u8

from . import Needs, _contrast, register, register_answer, register_compute, register_score, register_words
from .common import bundled_index

TITLE = "Recognise a photo from its shuffled version"
QUESTION = ("The model does not predict anything: it learns to give a photo and **its own shuffled version** (jigsaw tiles) "
            "alike features, unlike **every other photo**. Shuffling cannot change what the photo shows, so the features "
            "must describe that.")


@register("pirl", "PIRL", TITLE, QUESTION, order=6, needs=Needs(head=True), name="PIRL")
def show(entry, items, ctx) -> None:
    _contrast.show(entry, items, ctx, "pirl", TITLE, QUESTION, "its shuffled version",
                   lambda r, i: [(r["puzzles"][i], "its shuffled version")], lambda r, images: images)


@register_compute("pirl")
def compute(entry, img) -> dict:
    return _contrast.compute(entry, img, bundled_index(str(data_dir())), "pirl")


# -- without Streamlit: the model's answer, its score on the test photos, in plain words -----------------
@register_answer("pirl")
def embed(p: Pretext, images_u8: np.ndarray, seed: int = 0) -> dict:
    """Each photo and its own jigsaw version (centred tiles, shuffled — ``pirl.make_views``, test
    mode), embedded by the model's two branches. PIRL trains a photo's jigsaw version to land
    next to the photo itself and away from every other photo.

    → {"f" (N, d) photo embeddings, "g" (N, d) jigsaw-version embeddings (both unit length),
    "similarity" (N, N): row i = photo i's jigsaw version against every photo (cosine),
    "rank" (N,): 1 = its own photo is the most similar, "puzzles" uint8 (N, 3, H, W) the shuffled
    tiles}."""
    import torch
    import torch.nn.functional as F

    from ssl_train.tasks import pirl as P
    from ssl_train.tasks.base import normalize
    from ssl_train.tasks.jigsaw import tiles_to_grid

    x = as_tensor(images_u8)
    v = P.make_views(x, p.config, torch.Generator().manual_seed(int(seed)), train=False)
    n = x.shape[0]
    img_map = fmap_for_head(p, p.encoder.run(to_np(normalize(v.image)))["fmap"], 0)
    tile_map = fmap_for_head(p, p.encoder.run(to_np(normalize(v.tiles.reshape(n * v.tiles.shape[1], *v.tiles.shape[2:]))))["fmap"], 1)
    out = p.head.run(img_map, tile_map)
    f = F.normalize(torch.from_numpy(first_output(out, 0)).float(), dim=1)
    g = F.normalize(torch.from_numpy(first_output(out, 1)).float(), dim=1)
    sim = (g @ f.T).numpy()
    own = np.diag(sim)
    rank = 1 + (sim > own[:, None]).sum(1)
    return {"f": f.numpy(), "g": g.numpy(), "similarity": sim, "rank": rank, "puzzles": to_u8(tiles_to_grid(v.tiles)),
            "query": g.numpy(), "key": f.numpy()}


def card_meaning(config, card: dict) -> str | None:
    """What the card's pretext-test "acc" measures, with its own chance level."""
    acc = scores.card_acc(card)
    if acc is None:
        return None
    m = int(config.n_negatives)
    return (f"the card's acc {100 * acc:.1f}% is how often a test photo's jigsaw version is closer to the photo itself "
            f"than to every one of {m} training photos drawn from the memory bank — a 1-in-{m + 1} pick where guessing "
            f"gets {100 / (m + 1):.2f}%, so it is {acc * (m + 1):.0f}× chance")


@register_score("pirl")
def score(job: scores.Scoring) -> str | None:
    return _contrast.score(job, embed, "pirl", card_meaning)


@register_words("pirl")
def words(s: dict) -> str:
    return (f"finds the photo a jigsaw version came from, among {s['gallery']} test photos, {scores.times_in_100(s['share'])} "
            f"({scores.guessing(s)}); the right photo's median place is {scores.place(s['median_rank'])} of {s['gallery']}")

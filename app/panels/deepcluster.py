"""DeepCluster (Caron et al., ECCV 2018): sort photos into groups of its own making, then learn the groups."""
from __future__ import annotations

import numpy as np
import streamlit as st

from app import pretext, scores, ui
from app.inference import softmax
from app.pretext import Pretext, as_tensor, fmap_for_head, first_output, to_np

from . import Needs, register, register_answer, register_baseline, register_compute, register_score, register_words
from .common import answer, details, gallery, header, load, photo_box, photos_for, run, times_in_100

TITLE = "Sort the photos into groups, with no labels"
QUESTION = ("The model sorts all photos into groups of look-alikes — **by its own judgement, no labels** — then learns to "
            "tell which group a photo belongs to, and sorts again. Photos in one group should show the same kind of flower.")
PURITY_SHUFFLES = 200  # label shuffles behind the chance level of the groups' purity (the score)


@register("deepcluster", "DeepCluster", TITLE, QUESTION, order=8, needs=Needs(head=True), name="DeepCluster")
def show(entry, items, ctx) -> None:
    p = load(entry)
    if p is None:
        return
    k = p.config.k
    if ctx.index is None:
        header(entry, TITLE, QUESTION, None, p.model.image_size)
        st.info("The bundled test photos are needed to show the groups.")
        return
    with st.spinner("Sorting the test photos into the model's groups (once per model)…"):
        gal = gallery(entry, p, ctx.index, None, answered=True)
    same = same_flower_rate(gal["cluster"], gal["labels"])
    rand = same_flower_rate(np.zeros_like(gal["labels"]), gal["labels"])  # every photo in one group: two at random
    agree = float(np.mean(gal["guess"] == gal["cluster"]))
    header(entry, TITLE, QUESTION,
           f"two test photos it puts in one group show the same flower **{times_in_100(same)}**; two photos picked at random, "
           f"{times_in_100(rand)}", p.model.image_size, use_measured=False)  # pairs of one flower say more than the classifier's score
    for name, u8 in photos_for(p, items):
        r = run(entry, "deepcluster", u8[None])
        if r is None:
            continue
        c = int(r["cluster"][0])
        info = cluster_members(c, gal["cluster"], gal["labels"], gal["classes"])
        with photo_box(name):
            c1, c2 = st.columns([1, 3])
            c1.image(pretext.enlarge(u8, 150, True), caption="your photo", width=150)
            with c2:
                if info["size"]:
                    comp = ", ".join(f"{n} {cls}" for cls, n in info["composition"])
                    st.markdown(f"Goes in **group {c}**, with **{info['size']}** of the {len(gal['cluster'])} test photos: {comp}.")
                else:
                    st.markdown(f"Goes in **group {c}**, which holds none of the test photos.")
                st.caption("The flower names are only shown to judge the groups; the model never saw them.")
            members = info["members"][:8]
            if len(members):
                ui.show_photo_grid([pretext.enlarge(gal["images"][j], 110, True) for j in members],
                                   [gal["classes"][gal["labels"][j]] for j in members], columns=8, width=80)
    details(entry, [f"{k} groups (k-means on the model's own features, redone every few epochs)",
                    f"the card's `acc` is how often its classifier names the group of a photo's own features: on these "
                    f"{len(gal['cluster'])} test photos {ui.percent(agree)}, where guessing gets {ui.percent(1 / k)} — low "
                    "because the groups are remade as training goes on, so it is not a failure",
                    f"{len(np.unique(gal['cluster']))} of the {k} groups hold test photos"])


@register_compute("deepcluster")
def compute(entry, img) -> dict:
    return answer(entry, "deepcluster", img)  # one photo (3, S, S) is a batch of one to it


# -- without Streamlit: the model's answer, its score on the test photos, in plain words -----------------
@register_answer("deepcluster")
def assign(p: Pretext, images_u8: np.ndarray) -> dict[str, np.ndarray]:
    """Photos (N, 3, S, S) → {"cluster" (N,) the nearest k-means centroid of the last clustering
    (what training used as the pseudo-label), "probs" (N, k) the classifier's probabilities,
    "guess" (N,) its top cluster}."""
    from ssl_train.tasks.base import normalize

    x = as_tensor(images_u8)
    if len(x) == 0:
        return {"cluster": np.zeros(0, np.int64), "probs": np.zeros((0, 0), np.float32), "guess": np.zeros(0, np.int64)}
    fmap = fmap_for_head(p, p.encoder.run(to_np(normalize(x)))["fmap"])
    out = p.head.run(fmap)
    logits, nearest = first_output(out, 0), first_output(out, 1)
    probs = softmax(logits)
    return {"cluster": np.asarray(nearest, np.int64), "probs": probs, "guess": probs.argmax(1)}


def cluster_members(cluster: int, gallery_clusters: np.ndarray, gallery_labels: np.ndarray, classes: list[str] | tuple[str, ...]) -> dict:
    """The gallery photos in ``cluster``: {"members" indices, "size", "composition": [(class,
    count)] most common first, "n_clusters_used": clusters holding any gallery photo}."""
    members = np.flatnonzero(gallery_clusters == cluster)
    counts = np.bincount(gallery_labels[members], minlength=len(classes)) if len(members) else np.zeros(len(classes), int)
    comp = [(classes[i], int(counts[i])) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
    return {"members": members, "size": int(len(members)), "composition": comp, "n_clusters_used": int(len(np.unique(gallery_clusters)))}


def group_purity(groups: np.ndarray, labels: np.ndarray) -> float:
    """Share of photos whose class is the most common class of their group: ``groups``, ``labels`` (N,) ints."""
    if len(groups) == 0:
        return 0.0
    top = 0
    for g in np.unique(groups):
        top += int(np.bincount(labels[groups == g]).max())
    return top / len(groups)


def same_flower_rate(groups: np.ndarray, labels: np.ndarray) -> float:
    """Share of the pairs of photos within one group that show the same class (0 when no group has two)."""
    same = total = 0.0
    for g in np.unique(groups):
        lab = labels[groups == g]
        total += len(lab) * (len(lab) - 1) / 2
        same += float(sum(c * (c - 1) / 2 for c in np.bincount(lab)))
    return same / total if total else 0.0


def score_photos(p: Pretext, images_u8: np.ndarray, labels: np.ndarray, seed: int) -> dict:
    """``assign`` on all test photos → {"share": how often the classifier's top group is the group
    (nearest k-means centroid) of the photo's own features — what the card's "acc" measures —,
    "chance" 1/k, "purity": share of photos showing their group's most common flower,
    "purity_chance": the same with the flower labels shuffled among the photos (same group sizes;
    mean of ``PURITY_SHUFFLES`` shuffles from ``default_rng([seed, 1])``), "same_flower" /
    "same_flower_chance": share of photo pairs within a group that show the same flower / of all
    pairs, "groups_used", "k", "photos"}."""
    r = assign(p, images_u8)
    cluster, guess = np.asarray(r["cluster"]), np.asarray(r["guess"])
    labels = np.asarray(labels, np.int64)
    k = int(p.config.k)
    rng = np.random.default_rng([int(seed), 1])
    shuffled = [group_purity(cluster, rng.permutation(labels)) for _ in range(PURITY_SHUFFLES)]
    n = len(cluster)
    return {"kind": "deepcluster", "share": float(np.mean(guess == cluster)) if n else 0.0, "chance": 1.0 / k, "k": k,
            "purity": group_purity(cluster, labels), "purity_chance": float(np.mean(shuffled)) if n else 0.0,
            "same_flower": same_flower_rate(cluster, labels), "same_flower_chance": same_flower_rate(np.zeros_like(labels), labels),
            "groups_used": int(len(np.unique(cluster))), "photos": n, "seed": int(seed)}


def card_meaning(config, card: dict) -> str | None:
    """What the card's pretext-test "acc" measures, with its own chance level."""
    acc = scores.card_acc(card)
    if acc is None:
        return None
    k = int(config.k)
    return (f"the card's acc {100 * acc:.1f}% is how often the classifier names the k-means group (of {k}) that the "
            f"test photo's own features fall in — guessing gets {100 / k:.1f}%, so it is {acc * k:.0f}× chance, not a failure; "
            "the groups are remade as training goes on, so the classifier chases a moving target")


@register_score("deepcluster")
def score(job: scores.Scoring) -> str | None:
    return scores.on_pretext(job, lambda p: score_photos(p, job.images, job.labels, job.seed), card_meaning)


@register_words("deepcluster")
def words(s: dict) -> str:
    return (f"its classifier names the group that a photo's own features fall in {scores.times_in_100(s['share'])} ({scores.guessing(s)}); "
            f"{scores.in_100(s['purity'])} in 100 test photos show their group's most common flower "
            f"(groups of the same sizes drawn at random: {scores.in_100(s['purity_chance'])})")


@register_baseline("deepcluster")
def baseline(s: dict) -> str:
    return f"guessing: {100 * s['chance']:.2g}%; purity by chance {100 * s['purity_chance']:.0f}%"

"""DeepCluster (Caron et al., ECCV 2018): sort photos into groups of its own making, then learn the groups."""
from __future__ import annotations

import numpy as np
import streamlit as st

from app import pretext, scores, ui

from . import register, register_compute
from .common import answer, details, gallery, header, load, photo_box, photos_for, run, times_in_100

TITLE = "Sort the photos into groups, with no labels"
QUESTION = ("The model sorts all photos into groups of look-alikes — **by its own judgement, no labels** — then learns to "
            "tell which group a photo belongs to, and sorts again. Photos in one group should show the same kind of flower.")


@register("deepcluster", "DeepCluster", TITLE, QUESTION, order=8)
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
        gal = gallery(entry, p, ctx.index, None, clusters=True)
    same = scores.same_flower_rate(gal["cluster"], gal["labels"])
    rand = scores.same_flower_rate(np.zeros_like(gal["labels"]), gal["labels"])  # every photo in one group: two at random
    agree = float(np.mean(gal["guess"] == gal["cluster"]))
    header(entry, TITLE, QUESTION,
           f"two test photos it puts in one group show the same flower **{times_in_100(same)}**; two photos picked at random, "
           f"{times_in_100(rand)}", p.model.image_size, use_measured=False)  # pairs of one flower say more than the classifier's score
    for name, u8 in photos_for(p, items):
        r = run(entry, "deepcluster_assign", u8[None])
        if r is None:
            continue
        c = int(r["cluster"][0])
        info = pretext.cluster_members(c, gal["cluster"], gal["labels"], gal["classes"])
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
    return answer(entry, "deepcluster_assign", img)  # one photo (3, S, S) is a batch of one to it

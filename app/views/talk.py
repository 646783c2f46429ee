"""Talk mode: the idea and the seven-step protocol, one step per screen, in large type."""
from __future__ import annotations

import streamlit as st

from app import inference, photos, reference, state, ui
from app.config import data_dir, display, reports_dir

STYLE = """
<style>
[data-testid="stMain"] [data-testid="stMarkdown"] p,
[data-testid="stMain"] [data-testid="stMarkdown"] li { font-size: 1.55rem; line-height: 1.45; }
[data-testid="stMain"] h1 { font-size: 3rem; }
[data-testid="stMain"] h2 { font-size: 2.3rem; }
[data-testid="stMain"] [data-testid="stCaptionContainer"] p { font-size: 1rem; }
[data-testid="stMain"] [data-testid="stPageLink"] p { font-size: 1.35rem; }
</style>
"""


def steps(n_train: int | None, n_test: int | None) -> list[dict]:
    tr = f"{n_train:,}" if n_train else "most"
    te = f"{n_test:,}" if n_test else "the rest"
    return [
        dict(title="Labels are expensive. Photos are free.", page="views/explorer.py", link="See a pretext task live", body=f"""
- **Downstream task** — what we care about: *which flower is this?* Needs a label per photo.
- **Pretext task** — a question the photo answers itself: *how was this photo turned?*
- Train an encoder on the pretext task with **no labels**, then reuse its features downstream with only a few labels.
""", rotations=True),
        dict(title="1 · Split once, and never train on the test photos", page="views/embeddings.py", link="The test photos on a map", body=f"""
- {tr} training photos, {te} test photos, 5 classes — saved in `split.csv` in the repository.
- Near-duplicates (same photo resized, burst shots) stay on **one** side of the split.
- Every number in this talk is scored on the same test photos.
"""),
        dict(title="2 · Keep only a fraction of the labels", page="views/fewshot.py", link="Choose a fraction", body="""
- 1, 5, 10, 25, 50 or 100 % of the training labels.
- Stratified (every class keeps some), seeded, and **nested**: the 5 % photos contain the 1 % photos.
"""),
        dict(title="3 · Scratch: learn from that small set alone", page="views/fewshot.py", link="Train from scratch", body="""
- Random weights, the same network, the same schedule.
- This is the bar a pretext task has to beat.
"""),
        dict(title="4 · Pretrain with a pretext task — labels unused", page="views/explorer.py", link="Rotation, live", body="""
- Rotation (Gidaris et al., ICLR 2018): every photo in all four turns in the same batch.
- To tell 90° from 270° the encoder has to learn what flowers look like.
- Only the **training** photos, and never their labels.
"""),
        dict(title="5 · Fine-tune (and probe) on the same small set", page="views/fewshot.py", link="Fine-tune or probe", body="""
- **Fine-tune**: start from the pretrained weights, train everything.
- **Linear probe**: freeze the encoder, fit a logistic regression on its features.
- **kNN**: vote of the 20 most similar labelled photos.
"""),
        dict(title="6 · Score on the test split", page="views/embeddings.py", link="Features side by side", body="""
- Test accuracy and the confusion matrix, on photos no model has seen.
- Three seeds each: mean ± standard deviation.
"""),
        dict(title="7 · Compare 3 with 5–6", page="views/fewshot.py", link="Compare it yourself", body="", figure=True),
    ]


def go(delta: int, n: int) -> None:
    st.session_state[state.TALK_STEP] = max(0, min(n - 1, st.session_state[state.TALK_STEP] + delta))


def rotations_strip() -> None:
    idx = ui.photo_index()
    if idx is None or not idx.picks(1):
        return
    try:
        img = photos.open_bundled(data_dir(), idx.picks(1)[0])
    except Exception:  # noqa: BLE001
        return
    sq = inference.display_square(img, 220)
    cols = st.columns(4)
    for k, col in enumerate(cols):
        col.image(inference.to_pil(inference.turn(sq, k)), caption=f"turned {inference.ANGLE_LABELS[k]}", width=200)


def headline() -> None:
    png = reports_dir() / "protocol.png"
    if png.is_file():
        st.image(str(png), width="stretch")
        return
    summ, note = reference.load(reports_dir() / "protocol.json")
    if summ is None:
        st.info(f"The headline figure appears here once the protocol has run: {note}.")
        return
    import plotly.graph_objects as pgo

    fig = pgo.Figure()
    for (task, mode), g in summ.groupby(["task", "mode"]):
        g = g.sort_values("fraction")
        fig.add_trace(pgo.Scatter(x=100 * g["fraction"], y=100 * g["mean"], error_y=dict(type="data", array=100 * g["std"]),
                                  mode="lines+markers", name=f"{task} · {reference.MODE_TITLES.get(mode, mode)}",
                                  line=dict(color=reference.task_colour(task), dash=reference.MODE_DASH.get(mode, "solid"), width=3)))
    fig.update_layout(xaxis=dict(type="log", title="labelled training photos (%)", tickvals=[1, 2, 5, 10, 25, 50, 100]),
                      yaxis=dict(title="test accuracy (%)"), height=480, font=dict(size=18), margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(fig)
    st.caption(f"Drawn from protocol.json ({note}); `python -m ssl_train report` draws {display(png)}.")


st.markdown(STYLE, unsafe_allow_html=True)
index = None
try:
    index = photos.index(data_dir())
except photos.DataMissing:
    pass
STEPS = steps(int((~index.is_test).sum()) if index else None, int(index.is_test.sum()) if index else None)
n = len(STEPS)
st.session_state[state.TALK_STEP] = max(0, min(n - 1, int(st.session_state[state.TALK_STEP])))
i = st.session_state[state.TALK_STEP]
step = STEPS[i]

st.title(step["title"])
if step["body"]:
    st.markdown(step["body"])
if step.get("rotations"):
    rotations_strip()
if step.get("figure"):
    headline()
st.page_link(step["page"], label=step["link"], icon="👉")

st.divider()
b1, b2, b3 = st.columns([1.4, 1.4, 4])
b1.button("◀ Previous", on_click=go, args=(-1, n), disabled=i == 0, shortcut="Left", key="talk.prev")
b2.button("Next ▶", on_click=go, args=(1, n), disabled=i == n - 1, shortcut="Right", key="talk.next", type="primary")
b3.caption(f"Step {i + 1} of {n} · ← / → keys work too")

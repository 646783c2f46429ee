"""Few-shot lab: train a flower classifier on a few labels, pretrained encoder vs scratch."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import fewshot, novelty, palette, reference, state, ui
from app.config import MAX_UPLOAD_MB, RANDOM_INIT, reports_dir
from app.inference import ModelFileError
from app.uploads import md_escape, size_limit_text

MODES = {"linear": "Linear probe (frozen features, < 1 s)", "finetune": "Fine-tune the whole network"}


def keep(results: list) -> None:
    """Append to this session's results, dropping the oldest beyond MAX_KEPT."""
    store = st.session_state[state.FEW_RESULTS]
    store.extend(results)
    del store[: max(0, len(store) - fewshot.MAX_KEPT)]


def find(mode: str, encoder: str, fraction: float, seed: int):
    for r in reversed(st.session_state[state.FEW_RESULTS]):
        if (r.mode, r.encoder, r.seed) == (mode, encoder, seed) and abs(r.fraction - fraction) < 1e-9:
            return r
    return None


def _task_of(name: str) -> str:
    e = ui.model_by_name(ui.all_models(), name)
    return e.task if e is not None else name


def arm_colour(name: str) -> str:
    """The palette's colour of an arm: scratch grey, an encoder its task's colour (``app.palette``)."""
    return palette.SCRATCH if name in ("scratch", RANDOM_INIT) else reference.task_colour(_task_of(name))


def confusion_figure(cm: list[list[int]], classes: list[str], title: str, colour: str) -> go.Figure:
    """Confusion matrix (true rows × predicted columns, photo counts) shaded from white to the arm's colour,
    so the encoder's and scratch's matrices read as the two arms of the curves above them."""
    z = np.asarray(cm)
    fig = go.Figure(go.Heatmap(z=z, x=classes, y=classes, colorscale=[[0.0, "#ffffff"], [1.0, colour]], showscale=False, text=z,
                               texttemplate="%{text}", hovertemplate="true %{y}, predicted %{x}: %{z} photos<extra></extra>"))
    fig.update_layout(title=dict(text=title, font=dict(color=colour)), xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed",
                      height=330, margin=dict(l=10, r=10, t=40, b=10))
    return fig


@st.cache_resource(show_spinner=False, max_entries=4)
def novelty_check(model_key: str, data_key: str, _layout) -> novelty.NoveltyCheck:
    """The training photos' features of one encoder and its 99 % threshold (shared, read-only; keyed by
    the model's and the photo set's keys, the layout itself is not hashed)."""
    return novelty.NoveltyCheck.from_layout(_layout)


def reference_figure(summ: pd.DataFrame | None, mode: str, points: list) -> go.Figure:
    fig = go.Figure()
    if summ is not None:
        sub = summ[summ["mode"] == mode]
        for task, g in sub.groupby("task"):
            g = g.sort_values("fraction")
            colour = reference.task_colour(task)
            fig.add_trace(go.Scatter(
                x=100 * g["fraction"], y=100 * g["mean"], error_y=dict(type="data", array=100 * g["std"], visible=True),
                mode="lines+markers", name=f"{task} (report, {int(g['seeds'].max())} seed{'s' if g['seeds'].max() > 1 else ''})",
                line=dict(color=colour, dash="dot" if task == reference.SCRATCH else "solid"),
            ))
    for r in points:
        fig.add_trace(go.Scatter(
            x=[100 * r.fraction], y=[100 * r.accuracy], mode="markers", name=f"{r.encoder} (this session)",
            marker=dict(size=15, symbol="diamond", color=arm_colour(r.encoder),
                        line=dict(width=1, color="black")),
        ))
    fig.update_layout(
        xaxis=dict(type="log", title="labelled training photos (%)", tickvals=[1, 2, 5, 10, 25, 50, 100]),
        yaxis=dict(title="test accuracy (%)"), height=360, margin=dict(l=10, r=10, t=30, b=10),
        title=f"{reference.MODE_TITLES.get(mode, mode)}: reference from reports/protocol.json",
    )
    return fig


@st.fragment(run_every=2.0)
def job_panel() -> None:
    """Live progress of this session's fine-tune (polled every 2 s while it runs: more often costs
    training time on a 2-core machine). Each poll is also the job's heartbeat (``FinetuneJob.snapshot``):
    when the tab closes the polls stop, and the job stops itself (see app.fewshot, SESSION_GONE_AFTER)."""
    job = st.session_state.get(state.FEW_JOB)
    if job is None:
        return
    if not job.running:
        st.rerun()  # whole page: show the results
    snap = job.snapshot()
    phase_no = snap["phase_index"] + 1
    if snap["state"] in ("queued", "waiting"):
        # no ETA while queued: how long the other fine-tune still needs is not this job's to know
        st.info(f"Waiting for another fine-tune on this server to finish ({snap['waited']:.0f} s so far); "
                "yours starts right after it. The time estimate appears once it starts.", icon="⏳")
    else:
        done = snap["step"] / max(1, snap["total"])
        left = f", about {snap['eta']:.0f} s to go" if snap["eta"] is not None else ""
        waited = f" (after {snap['waited']:.0f} s in the queue)" if snap["waited"] >= 2 else ""
        st.progress(done, text=f"Fine-tuning {snap['phase']} ({phase_no}/{len(snap['phases'])}) on {job.fraction:.0%} of the labels: "
                               f"step {snap['step']} of {snap['total']} · {snap['elapsed'] or 0:.0f} s of training so far{left}{waited}")
    losses = {k: v for k, v in snap["losses"].items() if v}
    if losses:
        n = max(len(v) for v in losses.values())
        st.line_chart(pd.DataFrame({k: v + [None] * (n - len(v)) for k, v in losses.items()}), height=200, x_label="step", y_label="training loss",
                      color=[arm_colour(k) for k in losses])
    if st.button("⏹ Stop", key="fewshot.stop", help="Keep the model trained so far, score it, skip the rest."):
        job.stop()


def top_classes(classes: list[str], probs: np.ndarray, n: int = 3) -> str:
    """``probs`` (classes,) → "sunflower 82% · dandelion 9% · tulip 4%" (the ``n`` most likely)."""
    order = np.argsort(-probs)[:n]
    return " · ".join(f"{classes[int(k)]} {probs[int(k)]:.0%}" for k in order)


def classify_uploads(uploads: list, current: list, entry, entries: list, index) -> None:
    """Each uploaded photo: its thumbnail, whether it is like the training photos (in ``entry``'s feature
    space: the nearest training photo, shown, and how unusual that distance is among test flowers;
    ``app.novelty``), and each model's top classes — as an answer only for a photo not flagged."""
    images = [p.image for p in uploads]
    verdicts: list[novelty.Verdict | None] = [None] * len(uploads)
    lay = None
    try:
        lay = ui.layout(entry, index)
        check = novelty_check(lay.model_key, lay.data_key, lay)
        enc = ui.onnx_model(entry)
        u8 = np.stack([enc.prepare(im) for im in images])
        verdicts = novelty.judge(check, enc.features(u8), u8)
    except Exception as e:  # noqa: BLE001 — the labels are still worth showing, with the check's failure said
        check = None
        st.error(f"Could not check whether the photos are like the training photos: {type(e).__name__}: {md_escape(str(e)[:200])}")
    probs_all: list[np.ndarray | None] = []
    for r in current:
        try:
            fm = ui.onnx_model(ui.model_by_name(entries, r.feature_model)) if r.mode == "linear" else None
            probs_all.append(fewshot.classify(r, images, fm))
        except Exception as e:  # noqa: BLE001
            st.error(f"{r.encoder}: {type(e).__name__}: {md_escape(str(e)[:200])}")
            probs_all.append(None)
    rows: dict[str, list] = {"photo": [], "like the training photos?": []}
    rows.update({r.encoder: [] for r in current})
    for i, (photo, v) in enumerate(zip(uploads, verdicts)):
        with st.container(border=True):
            c_img, c_text, c_near = st.columns([1, 3, 1])
            c_img.image(photo.image, caption=photo.name, width=150)
            if v is None:
                c_text.caption("Not checked against the training photos.")
                said = "not checked"
            elif v.flat:
                c_text.warning("**One flat colour** — there is nothing in this photo for a model to recognise; "
                               "the labels below are noise, not an answer.", icon="⚠️")
                said = "no: one flat colour"
            elif v.unlike:
                c_text.warning(f"**Unlike the training photos** — further from every one of them than {check.quantile:.0%} of the test "
                               f"flowers are (distance {v.distance:.2f}; limit {check.threshold:.2f}). This may not be a daisy, dandelion, "
                               "rose, sunflower or tulip: the labels below are a guess, not an answer.", icon="⚠️")
                said = "no: unlike them"
            else:
                c_text.caption(f"Not flagged: {v.further_share:.0%} of test flowers are further from their nearest "
                               f"training photo (distance {v.distance:.2f}; flagged beyond {check.threshold:.2f}, which 1 test flower "
                               f"in 100 is). This check uses {md_escape(entry.name)}'s features; a photo that is not a flower can pass it.")
                said = "not flagged"
            for r, probs in zip(current, probs_all):
                if probs is None:
                    continue
                best = r.classes[int(np.argmax(probs[i]))]
                how = "fine-tune" if r.mode == "finetune" else "linear probe"
                if v is not None and v.flagged:
                    c_text.markdown(f"{md_escape(r.encoder)} ({how}) would guess: {top_classes(r.classes, probs[i])}")
                else:
                    c_text.markdown(f"**{md_escape(r.encoder)}** ({how}): **{best}** — {top_classes(r.classes, probs[i])}")
            if v is not None and lay is not None:
                near = str(lay.files[lay.train_idx[v.nearest]])
                c_near.image(ui.thumbnail(str(index.root), near, 150), width=150,
                             caption=f"nearest training photo ({near.split('/')[0]}, distance {v.distance:.2f})")
        rows["photo"].append(photo.name)
        rows["like the training photos?"].append(said)
        for r, probs in zip(current, probs_all):
            rows[r.encoder].append("—" if probs is None else f"{r.classes[int(np.argmax(probs[i]))]} ({np.max(probs[i]):.0%})"
                                   + (" ?" if v is not None and v.flagged else ""))
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    if all(p is not None for p in probs_all):
        ups = [(p.name, [probs[i] for probs in probs_all]) for i, p in enumerate(uploads)]
        st.download_button("⬇ Predictions for these photos (CSV)", fewshot.predictions_csv(current, ups), file_name="pretext-lab-upload-predictions.csv",
                           mime="text/csv", key="fewshot.upload_csv")


st.title("Few-shot lab")
st.markdown(
    "Train a flower classifier with only a **fraction of the training labels**, starting from a pretrained encoder or "
    "from **scratch** (random weights), and score both on the same test photos. A pretext task pays off where the "
    "pretrained bar beats scratch — usually most at the smallest fractions."
)
entries = ui.usable_models()
index = ui.photo_index()
if not entries or index is None:
    st.stop()

names = [e.name for e in entries]
pretext = [e.name for e in entries if not e.is_reference] or names
if st.session_state.get(state.FEW_ENCODER) not in pretext:
    best = ui.featured_model(entries)
    st.session_state[state.FEW_ENCODER] = best if best in pretext else pretext[0]
c1, c2, c3 = st.columns([3, 2, 2])
picks = [*fewshot.PROTOCOL_PERCENTS, fewshot.OTHER]
if st.session_state.get(state.FEW_FRACTION) not in picks:  # a percent from elsewhere (an older session): keep it as "other"
    st.session_state[state.FEW_FRACTION_OTHER] = fewshot.chosen_percent(st.session_state.get(state.FEW_FRACTION), None)
    st.session_state[state.FEW_FRACTION] = fewshot.OTHER
c1.segmented_control("Labelled training photos", picks, key=state.FEW_FRACTION, required=True,
                     format_func=lambda v: "other…" if v == fewshot.OTHER else f"{v}%",
                     help="The protocol's fractions first (the reference curve has a point at each); *other…* takes any percent. "
                          "A stratified, seeded subset of the training split — the same photos the protocol uses for this seed.")
if st.session_state[state.FEW_FRACTION] == fewshot.OTHER:
    c1.number_input("Any percent of the training labels (1–100)", 1, 100, step=1, key=state.FEW_FRACTION_OTHER)
pct = fewshot.chosen_percent(st.session_state[state.FEW_FRACTION], st.session_state.get(state.FEW_FRACTION_OTHER))
enc_name = c2.selectbox("Pretrained encoder", pretext, key=state.FEW_ENCODER, format_func=lambda n: ui.model_by_name(entries, n).label())
mode = c3.radio("Method", list(MODES), key=state.FEW_MODE, format_func=MODES.get)
with st.expander("Settings"):
    seed = st.number_input("Seed (which labelled photos, initialisation, batch order)", 0, 99, key=state.FEW_SEED)
    quick = st.toggle("Quick fine-tune schedule (at most 150 steps)", key=state.FEW_QUICK,
                      help="The protocol's schedule is 30 passes over the labelled photos, at least 100 steps. Quick clamps to 60–150 steps: "
                           "the same as the protocol up to about 10% of the labels, shorter above.")
fraction = pct / 100.0
entry = ui.model_by_name(entries, enc_name)
scratch_entry = ui.model_by_name(entries, RANDOM_INIT)
n_train = int((~index.is_test).sum())
sub = fewshot.labelled(np.nonzero(~index.is_test)[0], index.labels, fraction, int(seed))
per_class = np.bincount(index.labels[sub], minlength=len(index.classes))
st.caption(f"{len(sub)} of {n_train} training photos are labelled ({', '.join(f'{c} {n}' for c, n in zip(index.classes, per_class))}); "
           f"scores use all {int(index.is_test.sum())} test photos.")

job = st.session_state[state.FEW_JOB]
if job is not None and not job.running:  # a finished fine-tune: keep its models, say how it ended
    if job.results:
        keep(job.results)
    if job.error:
        st.error(f"Fine-tuning failed: {md_escape(job.error)}")
    elif job.state == "stopped":
        st.warning(f"Fine-tuning stopped after {job.results[-1].info['steps'] if job.results else 0} steps"
                   + "; the partial model is scored below.")
    st.session_state[state.FEW_JOB] = job = None

if job is not None:
    job_panel()

current: list = []
if mode == "linear":
    try:
        lay = ui.layout(entry, index)
        mine = find("linear", enc_name, fraction, int(seed)) or fewshot.linear_probe(lay, fraction, int(seed), enc_name)
        if mine not in st.session_state[state.FEW_RESULTS]:
            keep([mine])
        current.append(mine)
        if scratch_entry is not None and scratch_entry.name != enc_name:
            lay0 = ui.layout(scratch_entry, index)
            base = find("linear", "scratch", fraction, int(seed)) or fewshot.linear_probe(lay0, fraction, int(seed), "scratch")
            if base not in st.session_state[state.FEW_RESULTS]:
                keep([base])
            current.append(base)
        elif scratch_entry is None:
            st.info("Export the reference encoder (`python -m ssl_train export --random-init`) to compare with scratch.")
    except ModelFileError as e:
        st.error(str(e))
    sized = ui.feature_size_words(entry.card)
    st.caption(f"Logistic regression on standardised features{' (' + sized + ')' if sized else ''}, C = {fewshot.PROBE_C:g} fixed in "
               "advance (the protocol picks C by 3-fold cross-validation, which takes tens of seconds; its numbers are the reference curve).")
else:
    cfg = fewshot.finetune_config(bool(quick))
    steps = cfg.steps_for(len(sub))
    trained = find("finetune", enc_name, fraction, int(seed)) and find("finetune", "scratch", fraction, int(seed))
    if job is None and trained:
        st.caption("Both fine-tunes for these settings are below (seeded: the same settings give the same "
                   "result). Change the fraction, seed or encoder to train others.")
    elif job is None:
        own_lr, scratch_lr = (fewshot.arm_config(cfg, entry.card, arm).lr for arm in ("encoder", "scratch"))
        rates = (f"learning rate {own_lr:g} for {md_escape(enc_name)} and {scratch_lr:g} for scratch"
                 + (", each chosen on validation photos (`reports/finetune-lr.md`)" if all(fewshot.card_learning_rates(entry.card)) else ""))
        st.markdown(f"Fine-tunes **{md_escape(enc_name)}**, then the same network from **scratch**, on {fewshot.finetune_image_size(entry.card)}-px photos: {steps} steps each "
                    f"({'quick' if quick else 'protocol'} schedule, batch {min(cfg.batch_size, len(sub))}, SGD, crops and flips; {rates}).")
        if st.button("▶ Start fine-tuning", type="primary"):
            try:
                data = ui.decoded(str(index.root), fewshot.finetune_image_size(entry.card), index.key)
                st.session_state[state.FEW_JOB] = fewshot.FinetuneJob(
                    model_dir=entry.path, card=entry.card, data=data, fraction=fraction, seed=int(seed), cfg=cfg, encoder_name=enc_name,
                    session_alive=fewshot.session_probe(),  # stops within ~10 s of this tab closing
                ).start()
            except Exception as e:  # noqa: BLE001
                st.error(f"Could not start: {type(e).__name__}: {md_escape(str(e)[:200])}")
            else:
                st.rerun()
    current = [r for r in (find("finetune", enc_name, fraction, int(seed)), find("finetune", "scratch", fraction, int(seed))) if r]

if current:
    st.subheader("Test accuracy")
    cols = st.columns(len(current))
    for col, r in zip(cols, current):
        delta = None
        if r is current[0] and len(current) > 1:
            delta = f"{100 * (r.accuracy - current[1].accuracy):+.1f} points vs scratch"
        col.metric(f"{r.encoder} · {r.n_labelled} labels", ui.percent(r.accuracy), delta=delta)
    cols = st.columns(len(current))
    for col, r in zip(cols, current):
        col.plotly_chart(confusion_figure(r.scores["confusion"], r.classes, f"{r.encoder}: confusion", arm_colour(r.encoder)), key=f"cm.{r.encoder}")
        if r.mode == "finetune":
            col.caption(f"{r.info.get('steps')} of {r.info.get('planned_steps')} steps in {r.info.get('train_seconds')} s, "
                        f"learning rate {(r.info.get('schedule') or {}).get('lr', '?')}"
                        + (" (stopped early)" if r.info.get("stopped_early") else ""))

summ, note = reference.load(reports_dir() / "protocol.json")
st.plotly_chart(reference_figure(summ, mode, current), key="reference")
st.caption(f"Reference: {note}. Diamonds: this session's models.")

st.subheader("Classify your photos")
st.markdown("These classifiers know **five flowers** — daisy, dandelion, rose, sunflower, tulip — and name one of them for "
            "*any* photo, a building included. Each photo is checked first: one flat colour, or further from every training "
            "photo than 99 in 100 test flowers, is flagged and its label shown as a guess. The check cannot tell every "
            "non-flower: no shipped encoder sets a pagoda or a portrait apart from flowers (`docs/novelty.md`).")
uploads = ui.photo_input(state.FEW_UPLOADER, "Few-shot lab", label=f"Upload photos to classify with the models just trained (up to {MAX_UPLOAD_MB} MB each)")
st.caption(size_limit_text())
if uploads and current:
    classify_uploads(uploads, current, entry, entries, index)
elif uploads:
    st.caption("Train a model above first.")

if st.session_state[state.FEW_RESULTS]:
    st.subheader("This session's models")
    res = st.session_state[state.FEW_RESULTS]
    st.dataframe(pd.DataFrame([{"model": r.title, "labelled photos": r.n_labelled, "test accuracy": ui.percent(r.accuracy)} for r in res]), hide_index=True)
    d1, d2 = st.columns(2)
    d1.download_button("⬇ Results (CSV)", fewshot.results_csv(res), file_name="pretext-lab-results.csv", mime="text/csv")
    if current:
        d2.download_button("⬇ Test-photo predictions of the models above (CSV)", fewshot.predictions_csv(current),
                           file_name="pretext-lab-predictions.csv", mime="text/csv")

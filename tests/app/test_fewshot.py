"""app.fewshot / app.reference: probes, background fine-tuning with a stop, CSVs, reference curves."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from app import embedding, fewshot, photos, reference
from app.inference import OnnxModel
from app.uploads import open_upload
from ssl_train.data import labelled_subset
from ssl_train.evaluate import FinetuneConfig

from .conftest import photo_bytes

TINY = FinetuneConfig(min_steps=4, max_steps=4, batch_size=8, device="cpu")


@pytest.fixture
def layout(models, app_env):
    return embedding.build(OnnxModel(models / "rotation"), app_env["data"])


def test_linear_probe__uses_the_protocols_labelled_subset_and_scores_the_test_split(layout):
    r = fewshot.linear_probe(layout, 0.5, seed=1)
    sub = labelled_subset(layout.train_idx, layout.labels, 0.5, 1)
    assert r.n_labelled == len(sub) and len(r.test_pred) == int(layout.is_test.sum())
    assert 0 <= r.accuracy <= 1 and np.asarray(r.scores["confusion"]).sum() == len(r.test_pred)
    assert r.info["C"] == fewshot.PROBE_C and r.mode == "linear" and r.feature_model == "rotation"


def test_linear_probe__classifies_uploads_with_the_encoders_features(layout, models):
    r = fewshot.linear_probe(layout, 1.0, seed=0)
    img = open_upload(*photo_bytes()).image
    probs = fewshot.classify(r, [img, img], OnnxModel(models / "rotation"))
    assert probs.shape == (2, len(r.classes)) and np.allclose(probs.sum(1), 1)


def _data(app_env):
    return photos.decoded(app_env["data"], 32)


def test_finetune_job__trains_encoder_then_scratch_and_scores_both(models, app_env):
    from ssl_train.model_files import read_card

    job = fewshot.FinetuneJob(model_dir=models / "rotation", card=read_card(models / "rotation"), data=_data(app_env),
                              fraction=0.5, seed=0, cfg=TINY, encoder_name="rotation").start()
    job.join(120)
    assert job.state == "done", job.error
    assert [r.encoder for r in job.results] == ["rotation", "scratch"]
    assert all(r.info["steps"] == 4 and len(r.test_pred) == len(_data(app_env).test_idx) for r in job.results)
    assert [len(v) for v in job.snapshot()["losses"].values()] == [4, 4]
    probs = fewshot.classify(job.results[0], [open_upload(*photo_bytes()).image])
    assert probs.shape == (1, 5) and np.isclose(probs.sum(), 1, atol=1e-5)


def test_finetune_job__each_arm_uses_the_rate_its_card_records_for_it(models, app_env):
    from ssl_train.model_files import read_card

    card = read_card(models / "rotation")
    card = {**card, "metrics": {**(card.get("metrics") or {}), "finetune_lr": {"lr": 0.05, "scratch_lr": 0.2}}}
    assert fewshot.card_learning_rates(card) == (0.05, 0.2)
    assert fewshot.card_learning_rates({"metrics": {"finetune_lr": {"lr": "fast"}}}) == (None, None)  # unreadable: the schedule's own
    job = fewshot.FinetuneJob(model_dir=models / "rotation", card=card, data=_data(app_env), fraction=0.5, seed=0, cfg=TINY,
                              encoder_name="rotation").start()
    job.join(120)
    assert job.state == "done", job.error
    assert [(r.encoder, r.info["schedule"]["lr"]) for r in job.results] == [("rotation", 0.05), ("scratch", 0.2)]


def test_finetune_image_size__the_protocols_downstream_size_where_the_card_gives_one(models, app_env):
    from ssl_train.model_files import read_card

    card = read_card(models / "rotation")
    own = card["input"]["image_size"]
    assert fewshot.finetune_image_size(card) == own  # no protocol metrics: its own input size
    pretrained_larger = {**card, "input": {**card["input"], "image_size": 2 * own}, "metrics": {"downstream_image_size": own}}
    assert fewshot.finetune_image_size(pretrained_larger) == own
    assert fewshot.finetune_image_size({**card, "metrics": {"downstream_image_size": "big"}}) == own  # unreadable: its own
    # an encoder fine-tunes (and scratch with it) on photos of another size than it was pretrained on
    job = fewshot.FinetuneJob(model_dir=models / "rotation", card=card, data=photos.decoded(app_env["data"], 48), fraction=0.5, seed=0,
                              cfg=TINY, encoder_name="rotation").start()
    job.join(120)
    assert job.state == "done", job.error
    assert [r.image_size for r in job.results] == [48, 48]
    assert fewshot.classify(job.results[0], [open_upload(*photo_bytes()).image]).shape == (1, 5)


def test_finetune_job__stop_keeps_the_partial_model_and_skips_scratch(models, app_env):
    from ssl_train.model_files import read_card

    cfg = FinetuneConfig(min_steps=400, max_steps=400, batch_size=8, device="cpu")
    job = fewshot.FinetuneJob(model_dir=models / "rotation", card=read_card(models / "rotation"), data=_data(app_env),
                              fraction=0.5, seed=0, cfg=cfg, encoder_name="rotation")
    progress = job._on_step

    def press_stop_at_step_3(step, total, loss):  # what the page's Stop button does, mid-run
        if step == 3:
            job.stop()
        return progress(step, total, loss)

    job._on_step = press_stop_at_step_3
    job.start().join(120)
    assert job.state == "stopped" and len(job.results) == 1
    r = job.results[0]
    assert r.info["stopped_early"] and r.info["steps"] == 3 and r.info["planned_steps"] == 400


def test_csv__results_and_predictions_parse(layout):
    rs = [fewshot.linear_probe(layout, f, 0) for f in (0.2, 1.0)]
    res = pd.read_csv(io.BytesIO(fewshot.results_csv(rs)))
    assert list(res["labelled_fraction"]) == [0.2, 1.0] and "accuracy_daisy" in res
    pred = pd.read_csv(io.BytesIO(fewshot.predictions_csv(rs)))
    assert len(pred) == 2 * int(layout.is_test.sum()) and set(pred["split"]) == {"test"}


def test_reference__summary_mean_std_and_progress_note(app_env):
    summ, note = reference.load(app_env["reports"] / "protocol.json")
    row = summ[(summ.task == "rotation") & (summ["mode"] == "linear") & (summ.fraction == 0.1)].iloc[0]
    # sample std (ddof 1) over the seeds, as in the report's tables
    assert row["mean"] == pytest.approx(0.505) and row["std"] == pytest.approx(0.005 * 2**0.5) and row["seeds"] == 2
    assert "16 runs" in note and "still running" not in note


@pytest.mark.parametrize("content, words", [
    (None, "not found"), ("{not json", "could not be read"), (json.dumps({"runs": []}), "no runs yet"),
    (json.dumps({"config": {"protocol": {"tasks": ["rotation"], "fractions": [0.1], "seeds": [0, 1], "modes": ["knn"]}},
                 "runs": [{"task": "scratch", "mode": "knn", "fraction": 0.1, "seed": 0, "test_accuracy": 0.3}]}), "still running"),
])
def test_reference__missing_corrupt_empty_or_incomplete_report_never_raises(tmp_path, content, words):
    p = tmp_path / "protocol.json"
    if content is not None:
        p.write_text(content)
    summ, note = reference.load(p)
    assert words in note


def test_reference__every_shipped_task_has_its_own_colour_and_scratch_is_grey():
    from ssl_train.tasks import load_all, task_names

    load_all()
    colours = [reference.task_colour(t) for t in task_names()]
    assert len(colours) >= 10
    assert len(set(colours)) == len(colours)  # no two lines of the reference chart alike
    assert reference.SCRATCH_COLOUR not in colours and reference.task_colour("random_init") == reference.SCRATCH_COLOUR
    assert reference.task_colour("a_new_task") == reference.task_colour("a_new_task") in colours  # unknown names: stable


# -- a fine-tune of a closed tab stops; time from the start of training ----------------------------------
def _long_job(models, app_env, **kw):
    from ssl_train.model_files import read_card

    cfg = FinetuneConfig(min_steps=100_000, max_steps=100_000, batch_size=8, device="cpu")  # would run for hours
    return fewshot.FinetuneJob(model_dir=models / "rotation", card=read_card(models / "rotation"), data=_data(app_env),
                               fraction=0.5, seed=0, cfg=cfg, encoder_name="rotation", **kw)


def test_finetune_job__stops_within_seconds_when_the_page_stops_polling(models, app_env):
    import time

    job = _long_job(models, app_env, heartbeat_timeout=2.0).start()
    for _ in range(4):  # the page's fragment polls while the tab is open: the job keeps training
        time.sleep(0.5)
        job.snapshot()
    assert job.running and not job.abandoned
    t_closed = time.time()  # the tab closes: no more polls
    job.join(30)
    assert not job._thread.is_alive() and job.state == "stopped" and job.abandoned
    assert time.time() - t_closed < 15  # 2 s without a heartbeat, then at most one step
    assert "has not asked for progress" in job.abandon_reason
    assert job.results == []  # nobody is looking: not scored


def test_finetune_job__stops_when_the_runtime_says_the_session_ended_and_survives_a_blip(models, app_env):
    import time

    connected = {"now": True}
    job = _long_job(models, app_env, session_alive=lambda: connected["now"], session_grace=1.5).start()
    while job.state != "running":
        time.sleep(0.05)
    connected["now"] = False  # a dropped connection that comes back within the grace period
    time.sleep(0.5)
    connected["now"] = True
    time.sleep(2.0)
    assert job.running and not job.abandoned
    connected["now"] = False  # the tab closed for good (heartbeats still fresh: the runtime decides first)
    t_closed = time.time()
    while job.running and time.time() - t_closed < 30:
        job.heartbeat()
        time.sleep(0.1)
    assert job.state == "stopped" and job.abandoned and "browser session ended" in job.abandon_reason
    assert time.time() - t_closed < 10


def test_finetune_job__queued_job_of_a_closed_tab_leaves_the_queue_and_eta_counts_from_its_start(models, app_env):
    import time

    first = _long_job(models, app_env).start()
    second = _long_job(models, app_env, heartbeat_timeout=60.0).start()
    time.sleep(1.5)
    snap = second.snapshot()
    assert snap["state"] == "waiting" and snap["elapsed"] is None and snap["eta"] is None and snap["waited"] >= 1.0
    first.stop()
    first.join(30)
    while second.snapshot()["state"] == "waiting":
        time.sleep(0.05)
    time.sleep(1.5)
    snap = second.snapshot()
    assert second.train_started - second.started >= 1.5  # it waited in the queue ...
    assert snap["elapsed"] < time.time() - second.train_started + 0.01 < 3  # ... and elapsed counts from its start only
    second.stop()
    second.join(30)
    # a queued job whose tab closes leaves the queue without ever training
    blocker = _long_job(models, app_env).start()
    queued = _long_job(models, app_env, heartbeat_timeout=1.0).start()
    queued.join(10)
    assert queued.state == "stopped" and queued.train_started is None and queued.abandoned
    blocker.stop()
    blocker.join(30)


def test_eta_seconds__none_while_queued_or_starting_then_from_the_rate_of_training():
    assert fewshot.eta_seconds(None, 0, 2, 50, 100) is None  # queued
    assert fewshot.eta_seconds(3.0, 0, 2, 2, 100) is None  # too early to say
    assert fewshot.eta_seconds(10.0, 0, 2, 50, 100) == pytest.approx(30.0)  # 5 steps/s, 150 of 200 steps left
    assert fewshot.eta_seconds(40.0, 1, 2, 100, 100) == pytest.approx(0.0)


def test_session_probe__none_outside_a_streamlit_server():
    assert fewshot.session_probe() is None


def test_chosen_percent__protocol_pick_or_the_other_value_clamped():
    assert fewshot.PROTOCOL_PERCENTS == tuple(round(100 * f) for f in __import__("ssl_train.data", fromlist=["FRACTIONS"]).FRACTIONS)
    assert fewshot.chosen_percent(25, 7) == 25
    assert fewshot.chosen_percent(fewshot.OTHER, 7) == 7
    assert fewshot.chosen_percent(fewshot.OTHER, 500) == 100 and fewshot.chosen_percent(fewshot.OTHER, 0) == 1
    assert fewshot.chosen_percent(None, None) == 10

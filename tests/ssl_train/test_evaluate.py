"""Downstream methods and the protocol, on tiny real data."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ssl_train.errors import UserError
from ssl_train.evaluate import FinetuneConfig, finetune, knn_eval, linear_probe, predict, scores
from ssl_train.protocol import ProtocolConfig, run_protocol, summarize
from ssl_train.train import TrainConfig


def _blobs(n_per=20, classes=3, dim=8, seed=0):
    centres = np.random.default_rng(123).normal(0, 5, (classes, dim))  # same classes for every seed
    rng = np.random.default_rng(seed)
    x = np.concatenate([centres[c] + rng.normal(0, 1, (n_per, dim)) for c in range(classes)])
    y = np.repeat(np.arange(classes), n_per)
    return x.astype(np.float32), y


def test_scores__confusion_rows_are_truth():
    s = scores(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)
    assert s["test_accuracy"] == 0.75
    assert s["confusion"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert s["per_class_accuracy"] == [1.0, 1.0, 0.5]


def test_knn_and_linear__separable_features_score_high_and_c_from_cv():
    x, y = _blobs()
    xt, yt = _blobs(seed=1)
    assert knn_eval(x, y, xt, yt, 3)["test_accuracy"] > 0.9
    lp = linear_probe(x, y, xt, yt, 3, seed=0)
    assert lp["test_accuracy"] > 0.9 and lp["c_chosen_by"] == "cv" and lp["cv_accuracy"] > 0.9


def test_knn_and_linear__one_photo_per_class_still_works():
    x, y = _blobs(n_per=1)
    xt, yt = _blobs(seed=1)
    assert knn_eval(x, y, xt, yt, 3)["k"] == 3
    assert linear_probe(x, y, xt, yt, 3, seed=0)["c_chosen_by"].startswith("fixed")


def test_finetune__learns_and_stop_callback_ends_early(tiny_data, small_encoder):
    imgs, y = tiny_data.ds.images, tiny_data.ds.labels
    tr = tiny_data.train_idx
    cfg = FinetuneConfig(epochs=1, min_steps=6, max_steps=6, batch_size=8, device="cpu")
    seen = []
    model, log = finetune(None, small_encoder, imgs[torch.as_tensor(tr)], y[tr], 3, cfg, seed=0, on_step=lambda s, t, l: seen.append((s, t, l)) or s == 3)
    assert log["stopped_early"] and log["steps"] == 3 and [s for s, _, _ in seen] == [1, 2, 3] and seen[0][1] == 6
    p = predict(model, imgs[:5], torch.device("cpu"))
    assert p.shape == (5, 3) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_finetune__same_seed_same_model(tiny_data, small_encoder):
    imgs, y, tr = tiny_data.ds.images, tiny_data.ds.labels, tiny_data.train_idx
    cfg = FinetuneConfig(epochs=1, min_steps=3, max_steps=3, batch_size=8, device="cpu")
    a, _ = finetune(None, small_encoder, imgs[torch.as_tensor(tr)], y[tr], 3, cfg, seed=5)
    b, _ = finetune(None, small_encoder, imgs[torch.as_tensor(tr)], y[tr], 3, cfg, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_finetune_config__steps_clamped():
    cfg = FinetuneConfig(epochs=30, min_steps=100, max_steps=500, batch_size=64)
    assert cfg.steps_for(28) == 100 and cfg.steps_for(278) == 150 and cfg.steps_for(2783) == 500


def test_finetune_config__default_gives_every_flowers_fraction_its_full_epochs():
    # the 500-step cap gave the full split (2783 labels) 11 epochs and half of it 23: more labels, less training
    cfg = FinetuneConfig()
    for n in (696, 1392, 2783):
        assert cfg.steps_for(n) == cfg.epochs * -(-n // cfg.batch_size)
    assert cfg.steps_for(2783) == 1320 and cfg.steps_for(10**6) == cfg.max_steps


def test_protocol__tiny_end_to_end_writes_report_and_reuses_runs(tiny_data, small_encoder, tmp_path):
    pcfg = ProtocolConfig(tasks=("rotation",), fractions=(0.1, 1.0), seeds=(0, 1), modes=("finetune", "linear", "knn"))
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, device="cpu")
    out = tmp_path / "reports" / "protocol.json"
    rep = run_protocol(tiny_data, pcfg, small_encoder, tcfg, ft, out, tmp_path / "runs", progress=False)
    saved = json.loads(out.read_text())
    assert len(saved["runs"]) == 2 * 2 * 2 * 3  # (scratch, rotation) × seeds × fractions × modes
    r = saved["runs"][0]
    for key in ("task", "mode", "fraction", "seed", "test_accuracy", "per_class_accuracy", "confusion", "wall_seconds", "device", "n_labelled"):
        assert key in r
    assert {x["task"] for x in saved["runs"]} == {"scratch", "rotation"}
    assert all(0.0 <= x["test_accuracy"] <= 1.0 for x in saved["runs"])
    assert saved["config"]["pretrain"]["epochs"] == 1 and "torch" in saved["versions"] and saved["split_sha256"]
    assert saved["pretraining"]["rotation"]["pretext_test"]["acc"] >= 0
    lin10 = [x for x in saved["runs"] if x["mode"] == "linear" and x["fraction"] == 0.1]
    assert all(len(x["stage_test_accuracy"]) == 4 for x in lin10)
    assert len(summarize(saved["runs"])) == 2 * 2 * 3
    # a second call with the same settings reuses every run and the pretraining
    mtime = max(p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*"))
    rep2 = run_protocol(tiny_data, pcfg, small_encoder, tcfg, ft, out, tmp_path / "runs", progress=False)
    assert [x["test_accuracy"] for x in rep2["runs"]] == [x["test_accuracy"] for x in rep["runs"]]
    assert max(p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*")) == mtime


def test_protocol__reuse_takes_scratch_across_pretraining_budgets_but_not_the_pretrained_runs(tiny_data, small_encoder, tmp_path):
    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, device="cpu")
    pcfg = ProtocolConfig(tasks=("rotation",), fractions=(1.0,), seeds=(0,), modes=("finetune", "knn"))
    first, second = tmp_path / "one-epoch.json", tmp_path / "two-epochs.json"
    run_protocol(tiny_data, pcfg, small_encoder, TrainConfig(epochs=1, batch_size=8, device="cpu"), ft, first, tmp_path / "runs", progress=False)
    old = {(r["task"], r["mode"]): r for r in json.loads(first.read_text())["runs"]}
    again = ProtocolConfig(tasks=("rotation",), fractions=(1.0,), seeds=(0,), modes=("finetune", "knn"), reuse=(str(first),))
    rep = run_protocol(tiny_data, again, small_encoder, TrainConfig(epochs=2, batch_size=8, device="cpu"), ft, second, tmp_path / "runs", progress=False)
    new = {(r["task"], r["mode"]): r for r in rep["runs"]}
    assert new[("scratch", "finetune")] == old[("scratch", "finetune")]  # the very entry, wall time included
    assert new[("rotation", "finetune")]["wall_seconds"] != old[("rotation", "finetune")]["wall_seconds"]  # pretrained anew: rerun
    assert json.loads(second.read_text())["config"]["protocol"]["reuse"] == [str(first)]
    # another fine-tuning schedule changes what scratch depends on: nothing is reused
    other = FinetuneConfig(epochs=1, min_steps=3, max_steps=3, batch_size=8, device="cpu")
    rep = run_protocol(tiny_data, again, small_encoder, TrainConfig(epochs=2, batch_size=8, device="cpu"), other, tmp_path / "three.json", tmp_path / "runs", progress=False)
    assert [r for r in rep["runs"] if r["task"] == "scratch" and r["mode"] == "finetune"][0]["steps"] == 3
    with pytest.raises(UserError, match="--reuse .*no such report"):
        run_protocol(tiny_data, ProtocolConfig(tasks=("rotation",), reuse=(str(tmp_path / "nope.json"),)), small_encoder,
                     TrainConfig(epochs=1, batch_size=8, device="cpu"), ft, tmp_path / "x.json", tmp_path / "runs", progress=False)


def test_protocol__raising_the_step_cap_reruns_only_the_fine_tunes_it_reached(tiny_data, small_encoder, tmp_path):
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    pcfg = ProtocolConfig(tasks=("rotation",), fractions=(0.1, 1.0), seeds=(0,), modes=("finetune", "knn"))
    capped = FinetuneConfig(epochs=1, min_steps=1, max_steps=2, batch_size=8, device="cpu")
    first = tmp_path / "capped.json"
    old = {(r["task"], r["mode"], r["fraction"]): r for r in run_protocol(tiny_data, pcfg, small_encoder, tcfg, capped, first, tmp_path / "runs", progress=False)["runs"]}
    assert old[("scratch", "finetune", 1.0)]["steps"] == 2 < capped.epochs * -(-old[("scratch", "finetune", 1.0)]["n_labelled"] // 8)
    assert old[("scratch", "finetune", 0.1)]["steps"] == 1  # a subset of ≤ 8 photos: one batch, below the cap
    again = ProtocolConfig(tasks=("rotation",), fractions=(0.1, 1.0), seeds=(0,), modes=("finetune", "knn"), reuse=(str(first),))
    raised = FinetuneConfig(epochs=1, min_steps=1, max_steps=50, batch_size=8, device="cpu")
    new = {(r["task"], r["mode"], r["fraction"]): r for r in run_protocol(tiny_data, again, small_encoder, tcfg, raised, tmp_path / "raised.json", tmp_path / "runs", progress=False)["runs"]}
    for arm in ("scratch", "rotation"):
        assert new[(arm, "finetune", 0.1)] == old[(arm, "finetune", 0.1)]  # the cap never reached it: the very entry
        assert new[(arm, "finetune", 1.0)]["steps"] == -(-new[(arm, "finetune", 1.0)]["n_labelled"] // 8) > 2  # reran with every batch
        assert new[(arm, "knn", 1.0)] == old[(arm, "knn", 1.0)]


def test_protocol__per_arm_rates_rerun_only_the_fine_tunes_whose_rate_changed(tiny_data, small_encoder, tmp_path):
    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, lr=0.03, device="cpu")
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    pcfg = ProtocolConfig(tasks=("rotation",), fractions=(1.0,), seeds=(0,), modes=("finetune", "knn"))
    first = tmp_path / "fixed.json"
    run_protocol(tiny_data, pcfg, small_encoder, tcfg, ft, first, tmp_path / "runs", progress=False)
    old = {(r["task"], r["mode"]): r for r in json.loads(first.read_text())["runs"]}
    again = ProtocolConfig(tasks=("rotation",), fractions=(1.0,), seeds=(0,), modes=("finetune", "knn"), reuse=(str(first),))
    rep = run_protocol(tiny_data, again, small_encoder, tcfg, ft, tmp_path / "per-arm.json", tmp_path / "runs", progress=False,
                       ft_lrs={"scratch": 0.1, "rotation": 0.03})
    new = {(r["task"], r["mode"]): r for r in rep["runs"]}
    assert rep["config"]["finetune_lr"] == {"scratch": 0.1, "rotation": 0.03}
    assert new[("scratch", "finetune")]["lr"] == 0.1 and new[("scratch", "finetune")] != old[("scratch", "finetune")]  # new rate: rerun
    assert new[("rotation", "finetune")] == old[("rotation", "finetune")]  # same rate as before: the very entry
    assert new[("scratch", "knn")] == old[("scratch", "knn")] and new[("rotation", "knn")] == old[("rotation", "knn")]  # probes fine-tune nothing
    with pytest.raises(UserError, match="no learning rate for rotation"):
        run_protocol(tiny_data, pcfg, small_encoder, tcfg, ft, tmp_path / "y.json", tmp_path / "runs", progress=False, ft_lrs={"scratch": 0.1})


def test_protocol__entries_of_another_encoder_with_the_same_settings_are_not_reused(tiny_data, small_encoder, tmp_path, monkeypatch):
    import ssl_train.protocol as protocol

    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, device="cpu")
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    pcfg = ProtocolConfig(tasks=("rotation",), fractions=(1.0,), seeds=(0,), modes=("finetune", "knn"))
    out = tmp_path / "p.json"
    first = run_protocol(tiny_data, pcfg, small_encoder, tcfg, ft, out, tmp_path / "runs", progress=False)
    assert len(first["pretraining"]["rotation"]["checkpoint_sha256"]) == 64
    old = {(r["task"], r["mode"]): r for r in first["runs"]}
    # the run retrained (e.g. on a GPU) with the same settings: same hashes of settings, another checkpoint
    monkeypatch.setattr(protocol, "sha256_file", lambda path: "0" * 64)
    again = {(r["task"], r["mode"]): r for r in run_protocol(tiny_data, pcfg, small_encoder, tcfg, ft, out, tmp_path / "runs", progress=False)["runs"]}
    assert again[("scratch", "finetune")] == old[("scratch", "finetune")] and again[("scratch", "knn")] == old[("scratch", "knn")]
    assert again[("rotation", "finetune")]["wall_seconds"] != old[("rotation", "finetune")]["wall_seconds"]
    assert again[("rotation", "knn")]["wall_seconds"] != old[("rotation", "knn")]["wall_seconds"]


@pytest.mark.parametrize("kw,msg", [({"fractions": (0.0,)}, "outside"), ({"modes": ("svm",)}, "unknown mode"), ({"seeds": (1, 1)}, "repeats"),
                                    ({"task_epochs": (("simclr", 60),)}, "not among --tasks"), ({"task_epochs": (("rotation", 0),)}, "≥ 1"),
                                    ({"task_epochs": (("rotation", 5), ("rotation", 6))}, "twice"),
                                    ({"task_batch_sizes": (("simclr", 32),)}, "--task-batch-sizes simclr: not among --tasks"),
                                    ({"task_batch_sizes": (("rotation", 1),)}, "photos per step must be whole numbers ≥ 2")])
def test_protocol_config__bad_values(kw, msg):
    with pytest.raises(UserError, match=msg):
        ProtocolConfig(**kw)


def test_protocol__keep_adds_a_task_to_a_report_whose_other_runs_are_gone(tiny_data, small_encoder, tmp_path):
    import shutil

    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, device="cpu")
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    out = tmp_path / "p.json"
    first = run_protocol(tiny_data, ProtocolConfig(tasks=("rotation",), fractions=(1.0,), seeds=(0,), modes=("finetune", "knn")),
                         small_encoder, tcfg, ft, out, tmp_path / "runs", progress=False)
    old = {(r["task"], r["mode"]): r for r in first["runs"]}
    shutil.rmtree(tmp_path / "runs")  # the report came from another machine: rotation's checkpoint is not here
    both = ProtocolConfig(tasks=("rotation", "simclr"), fractions=(1.0,), seeds=(0,), modes=("finetune", "knn"), keep=("rotation",))
    rep = run_protocol(tiny_data, both, small_encoder, tcfg, ft, out, tmp_path / "runs", progress=False)
    new = {(r["task"], r["mode"]): r for r in rep["runs"]}
    assert new[("rotation", "finetune")] == old[("rotation", "finetune")] and new[("rotation", "knn")] == old[("rotation", "knn")]
    assert new[("scratch", "finetune")] == old[("scratch", "finetune")]
    assert ("simclr", "finetune") in new and rep["pretraining"]["rotation"] == first["pretraining"]["rotation"]
    assert not any(p.name.startswith("rotation-") for p in (tmp_path / "runs").iterdir())  # rotation was not pretrained again
    assert {r["task"] for r in rep["summary"]} == {"scratch", "rotation", "simclr"}
    # an entry the kept task lacks (another fraction) cannot be made without its checkpoint: refused before any run
    more = ProtocolConfig(tasks=("rotation", "simclr"), fractions=(0.5, 1.0), seeds=(0,), modes=("finetune", "knn"), keep=("rotation",))
    with pytest.raises(UserError, match="--keep rotation: 2 of its entries are not finished"):
        run_protocol(tiny_data, more, small_encoder, tcfg, ft, out, tmp_path / "runs", progress=False)
    assert json.loads(out.read_text())["runs"] == rep["runs"]  # the report is untouched
    with pytest.raises(UserError, match="not among --tasks"):
        ProtocolConfig(tasks=("simclr",), keep=("rotation",))


def test_protocol__a_task_with_its_own_budget_is_pretrained_for_it_and_reuses_a_report_made_at_that_budget(tiny_data, small_encoder, tmp_path):
    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, device="cpu")
    small = dict(fractions=(1.0,), seeds=(0,), modes=("finetune", "knn"))
    # made elsewhere: rotation alone, the whole report at 2 epochs (as reports/protocol-simclr-60ep.json was)
    at2 = run_protocol(tiny_data, ProtocolConfig(tasks=("rotation",), **small), small_encoder, TrainConfig(epochs=2, batch_size=8, device="cpu"), ft,
                       tmp_path / "at2.json", tmp_path / "runs", progress=False)
    old = {(r["task"], r["mode"]): r for r in at2["runs"]}
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    pcfg = ProtocolConfig(tasks=("rotation", "jigsaw"), task_epochs=(("rotation", 2),), reuse=(str(tmp_path / "at2.json"),), **small)
    rep = run_protocol(tiny_data, pcfg, small_encoder, tcfg, ft, tmp_path / "p.json", tmp_path / "runs", progress=False)
    new = {(r["task"], r["mode"]): r for r in rep["runs"]}
    assert rep["pretraining"]["rotation"]["epochs"] == 2 and rep["pretraining"]["jigsaw"]["epochs"] == 1
    assert rep["config"]["pretrain_epochs"] == {"rotation": 2} and rep["config"]["pretrain"]["epochs"] == 1
    # same encoder (checkpoint), same settings: the 2-epoch report's entries are taken, not rerun
    assert new[("rotation", "finetune")] == old[("rotation", "finetune")] and new[("rotation", "knn")] == old[("rotation", "knn")]
    assert new[("scratch", "finetune")] == old[("scratch", "finetune")]
    # a task's own budget is part of its entries' settings: at 1 epoch, rotation's entries are another encoder's
    from ssl_train.protocol import entry_hash

    assert entry_hash(rep["config"], "s", "rotation", "knn") == entry_hash(at2["config"], "s", "rotation", "knn")
    assert entry_hash(rep["config"], "s", "jigsaw", "knn") != entry_hash(at2["config"], "s", "jigsaw", "knn")
    plain = {k: v for k, v in rep["config"].items() if k != "pretrain_epochs"}
    assert entry_hash(plain, "s", "rotation", "knn") != entry_hash(rep["config"], "s", "rotation", "knn")
    assert entry_hash(plain, "s", "jigsaw", "finetune") == entry_hash(rep["config"], "s", "jigsaw", "finetune")  # the others unchanged


def test_protocol__a_task_with_its_own_batch_size_is_pretrained_in_it_and_its_entries_hash_as_at_that_batch_size(tiny_data, small_encoder, tmp_path):
    from ssl_train.protocol import entry_hash

    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, device="cpu")
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    pcfg = ProtocolConfig(tasks=("rotation", "jigsaw"), task_batch_sizes=(("rotation", 4),), fractions=(1.0,), seeds=(0,), modes=("knn",))
    rep = run_protocol(tiny_data, pcfg, small_encoder, tcfg, ft, tmp_path / "p.json", tmp_path / "runs", progress=False)
    assert rep["pretraining"]["rotation"]["config"]["train"]["batch_size"] == 4
    assert rep["pretraining"]["jigsaw"]["config"]["train"]["batch_size"] == 8
    assert rep["config"]["pretrain_batch_size"] == {"rotation": 4} and rep["config"]["pretrain"]["batch_size"] == 8
    plain = {k: v for k, v in rep["config"].items() if k != "pretrain_batch_size"}
    at4 = {**plain, "pretrain": {**plain["pretrain"], "batch_size": 4}}  # a report made with --batch-size 4 for every task
    assert entry_hash(rep["config"], "s", "rotation", "knn") == entry_hash(at4, "s", "rotation", "knn")
    assert entry_hash(rep["config"], "s", "rotation", "knn") != entry_hash(plain, "s", "rotation", "knn")
    assert entry_hash(rep["config"], "s", "jigsaw", "knn") == entry_hash(plain, "s", "jigsaw", "knn")  # the others unchanged
    # the same batch size as the common one is no batch size of its own: the report's config is unchanged
    same = ProtocolConfig(tasks=("rotation",), task_batch_sizes=(("rotation", 8),), fractions=(1.0,), seeds=(0,), modes=("knn",))
    assert "pretrain_batch_size" not in run_protocol(tiny_data, same, small_encoder, tcfg, ft, tmp_path / "q.json", tmp_path / "runs", progress=False)["config"]


def test_protocol__a_task_with_its_own_image_size_is_pretrained_on_those_photos_and_compared_on_the_common_ones(tiny_data, small_encoder, tmp_path):
    from ssl_train.protocol import entry_hash

    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, device="cpu")
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    small = dict(fractions=(1.0,), seeds=(0,), modes=("knn",))
    plain = run_protocol(tiny_data, ProtocolConfig(tasks=("rotation", "jigsaw"), **small), small_encoder, tcfg, ft, tmp_path / "a.json", tmp_path / "runs", progress=False)
    pcfg = ProtocolConfig(tasks=("rotation", "jigsaw"), task_image_sizes=(("rotation", 48),), reuse=(str(tmp_path / "a.json"),), **small)
    rep = run_protocol(tiny_data, pcfg, small_encoder, tcfg, ft, tmp_path / "b.json", tmp_path / "runs", progress=False)
    assert rep["config"]["pretrain_image_size"] == {"rotation": 48} and rep["config"]["data"]["image_size"] == 32
    assert rep["pretraining"]["rotation"]["config"]["data"]["image_size"] == 48 and rep["pretraining"]["jigsaw"]["config"]["data"]["image_size"] == 32
    assert len(list((tmp_path / "runs").glob("rotation-*"))) == 2  # another encoder, its own run folder
    old = {(r["task"], r["mode"]): r for r in plain["runs"]}
    new = {(r["task"], r["mode"]): r for r in rep["runs"]}
    assert new[("jigsaw", "knn")] == old[("jigsaw", "knn")] and new[("scratch", "knn")] == old[("scratch", "knn")]  # reused as they were
    # judged downstream on the same labelled and test photos as every arm
    assert new[("rotation", "knn")]["n_labelled"] == old[("rotation", "knn")]["n_labelled"] and 0 <= new[("rotation", "knn")]["test_accuracy"] <= 1
    assert entry_hash(rep["config"], "s", "rotation", "knn") != entry_hash(plain["config"], "s", "rotation", "knn")
    # the common size named as a task's own is no size of its own: the report's config is unchanged
    same = ProtocolConfig(tasks=("rotation",), task_image_sizes=(("rotation", 32),), **small)
    assert "pretrain_image_size" not in run_protocol(tiny_data, same, small_encoder, tcfg, ft, tmp_path / "c.json", tmp_path / "runs", progress=False)["config"]


def test_protocol__task_options_pretrain_that_task_with_them_and_leave_the_others_entries_alone(tiny_data, small_encoder, tmp_path):
    from ssl_train.protocol import entry_hash

    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, device="cpu")
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    small = dict(fractions=(1.0,), seeds=(0,), modes=("knn",))
    plain = run_protocol(tiny_data, ProtocolConfig(tasks=("rotation", "jigsaw"), **small), small_encoder, tcfg, ft, tmp_path / "a.json", tmp_path / "runs", progress=False)
    pcfg = ProtocolConfig(tasks=("rotation", "jigsaw"), task_options=(("rotation", (("grid", "2"),)),), reuse=(str(tmp_path / "a.json"),), **small)
    rep = run_protocol(tiny_data, pcfg, small_encoder, tcfg, ft, tmp_path / "b.json", tmp_path / "runs", progress=False)
    assert rep["config"]["task_options"] == {"rotation": {"grid": "2"}}
    assert rep["pretraining"]["rotation"]["config"]["task"]["grid"] == 2 and plain["pretraining"]["rotation"]["config"]["task"]["grid"] == 1
    assert len(list((tmp_path / "runs").glob("rotation-*"))) == 2  # another encoder, its own run folder
    old = {(r["task"], r["mode"]): r for r in plain["runs"]}
    new = {(r["task"], r["mode"]): r for r in rep["runs"]}
    assert new[("jigsaw", "knn")] == old[("jigsaw", "knn")] and new[("scratch", "knn")] == old[("scratch", "knn")]  # reused as they were
    assert new[("rotation", "knn")]["wall_seconds"] != old[("rotation", "knn")]["wall_seconds"]  # made again, from the grid encoder
    assert entry_hash(rep["config"], "s", "rotation", "knn") != entry_hash(plain["config"], "s", "rotation", "knn")
    assert entry_hash(rep["config"], "s", "jigsaw", "knn") == entry_hash(plain["config"], "s", "jigsaw", "knn")
    with pytest.raises(UserError, match="--task-options jigsaw: not among --tasks"):
        ProtocolConfig(tasks=("rotation",), task_options=(("jigsaw", (("n_permutations", "10"),)),))
    with pytest.raises(UserError, match="unknown option"):
        ProtocolConfig(tasks=("rotation",), task_options=(("rotation", (("grdi", "2"),)),))


def test_protocol__entries_keep_six_significant_digits_and_settings_stay_exact(tiny_data, small_encoder, tmp_path):
    from ssl_train.protocol import _round_floats

    rounded = _round_floats({"runs": [{"test_accuracy": 0.5901639344262295, "n_labelled": 27}], "summary": [{"mean": 0.12345678912}]})
    assert rounded == {"runs": [{"test_accuracy": 0.590164, "n_labelled": 27}], "summary": [{"mean": 0.123457}]}
    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, lr=0.123456789, device="cpu")
    pcfg = ProtocolConfig(tasks=("rotation",), fractions=(1.0,), seeds=(0,), modes=("finetune", "knn"))
    rep = run_protocol(tiny_data, pcfg, small_encoder, TrainConfig(epochs=1, batch_size=8, device="cpu"), ft, tmp_path / "p.json", tmp_path / "runs", progress=False)
    back = json.loads((tmp_path / "p.json").read_text())
    assert back["runs"] == rep["runs"] == _round_floats(rep["runs"]) and back["summary"] == rep["summary"] == _round_floats(rep["summary"])
    assert any(isinstance(v, float) and v != round(v) for r in back["runs"] for v in r.values())  # measured floats are there
    assert back["config"]["finetune"]["lr"] == 0.123456789  # settings exact

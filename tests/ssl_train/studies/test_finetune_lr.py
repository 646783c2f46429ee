"""finetune-lr: each arm's fine-tuning learning rate, chosen on validation photos only."""
from __future__ import annotations

import json

import pytest

from ssl_train.studies import finetune_lr
from ssl_train.__main__ import main
from ssl_train.errors import UserError
from ssl_train.evaluate import FinetuneConfig
from ssl_train.train import TrainConfig


def test_choose__highest_mean_wins_and_a_tie_goes_to_the_smaller_rate():
    assert finetune_lr.choose({0.03: [0.5, 0.6], 0.1: [0.6, 0.7], 0.3: [0.7, 0.4]}) == 0.1
    assert finetune_lr.choose({0.3: [0.6], 0.1: [0.6]}) == 0.1


def test_at_edge__a_rate_at_either_end_of_the_grid_is_flagged_an_inner_one_is_not():
    grid = [0.01, 0.03, 0.1]
    assert finetune_lr.at_edge(0.01, grid) and finetune_lr.at_edge(0.1, grid)
    assert not finetune_lr.at_edge(0.03, grid)
    assert not finetune_lr.at_edge(0.1, [0.1])  # one rate: nothing was searched
    assert finetune_lr.DEFAULT_LRS[0] < 0.03  # rotation chose 0.03, the old grid's lower edge


def test_markdown__names_the_arms_whose_rate_sits_on_the_grid_edge():
    r = {"fraction": 0.1, "n_fit": 10, "n_val": 5, "seeds": [0], "pretrain_epochs": 1, "device": "cpu", "command": "x", "steps": 100,
         "finetune": {"epochs": 30, "min_steps": 100, "max_steps": 2000, "batch_size": 64, "weight_decay": 5e-4}, "lrs": [0.01, 0.1, 1.0],
         "arms": {"scratch": {"val_accuracy": {"0.01": [0.5], "0.1": [0.7], "1": [0.6]}, "chosen_lr": 0.1},
                  "rotation": {"val_accuracy": {"0.01": [0.8], "0.1": [0.7], "1": [0.6]}, "chosen_lr": 0.01}}}
    md = finetune_lr.to_markdown(r)
    assert "On the edge of the grid (rotation)" in md
    r["arms"].pop("rotation")
    assert "edge of the grid" not in finetune_lr.to_markdown(r)


def test_search__scores_every_arm_and_rate_on_validation_and_keeps_finished_arms(tiny_data, small_encoder, tmp_path, monkeypatch):
    calls = []
    real = finetune_lr.finetune

    def counting(*a, **k):
        calls.append(a[5].lr)
        return real(*a, **k)

    monkeypatch.setattr(finetune_lr, "finetune", counting)
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, device="cpu")
    out = tmp_path / "finetune-lr.json"
    r = finetune_lr.run(["scratch", "rotation"], [0.1, 0.01], tiny_data, small_encoder, tcfg, ft, tmp_path / "runs", 0.5, [0, 1], out)
    assert sorted(calls) == [0.01] * 4 + [0.1] * 4  # 2 arms × 2 seeds per rate
    saved = json.loads(out.read_text())
    assert saved["lrs"] == [0.01, 0.1] and saved["n_val"] > 0
    assert set(saved["arms"]) == {"scratch", "rotation"}
    for v in saved["arms"].values():
        assert set(v["val_accuracy"]) == {"0.01", "0.1"} and all(len(a) == 2 for a in v["val_accuracy"].values())
        assert v["chosen_lr"] == finetune_lr.choose({float(k): a for k, a in v["val_accuracy"].items()})
        assert v["at_edge"] is True  # two rates: either choice is an edge
    assert finetune_lr.chosen_lrs(out) == {a: v["chosen_lr"] for a, v in r["arms"].items()}
    # run again with one more rate: only the new rate is fine-tuned
    calls.clear()
    finetune_lr.run(["scratch", "rotation"], [0.01, 0.1, 0.3], tiny_data, small_encoder, tcfg, ft, tmp_path / "runs", 0.5, [0, 1], out)
    assert calls == [0.3] * 4
    md = finetune_lr.write_markdown(json.loads(out.read_text()), out).read_text()
    assert "| scratch |" in md and "| rotation |" in md and "lr 0.3" in md


def test_search__a_step_cap_the_subset_never_reaches_changes_nothing_but_one_it_reaches_reruns(tiny_data, small_encoder, tmp_path, monkeypatch):
    calls = []
    real = finetune_lr.finetune
    monkeypatch.setattr(finetune_lr, "finetune", lambda *a, **k: calls.append(a[5].max_steps) or real(*a, **k))
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    out = tmp_path / "finetune-lr.json"

    def search(max_steps: int) -> dict:
        ft = FinetuneConfig(epochs=1, min_steps=1, max_steps=max_steps, batch_size=8, device="cpu")
        return finetune_lr.run(["scratch"], [0.1], tiny_data, small_encoder, tcfg, ft, tmp_path / "runs", 0.5, [0], out, progress=False)

    steps = search(1000)["steps"]
    assert steps >= 2 and calls == [1000]
    search(500)  # still above what the subset needs: kept
    assert calls == [1000] and json.loads(out.read_text())["steps"] == steps
    search(steps - 1)  # now the cap cuts the schedule: scored again
    assert calls == [1000, steps - 1] and json.loads(out.read_text())["steps"] == steps - 1


def test_search__a_retrained_encoder_under_the_same_settings_is_scored_again(tiny_data, small_encoder, tmp_path, monkeypatch):
    calls = []
    real = finetune_lr.finetune
    monkeypatch.setattr(finetune_lr, "finetune", lambda *a, **k: calls.append("scratch" if a[0] is None else "rotation") or real(*a, **k))
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, device="cpu")
    out = tmp_path / "finetune-lr.json"

    def search() -> dict:
        return finetune_lr.run(["scratch", "rotation"], [0.1], tiny_data, small_encoder, tcfg, ft, tmp_path / "runs", 0.5, [0], out, progress=False)

    first = search()["arms"]
    assert calls == ["scratch", "rotation"] and len(first["rotation"]["checkpoint_sha256"]) == 64
    assert first["scratch"]["checkpoint_sha256"] is None
    calls.clear()
    search()  # the same encoder: nothing is fine-tuned again
    assert calls == []
    # the task's code changed and its run was remade: the same settings, another checkpoint
    monkeypatch.setattr(finetune_lr, "sha256_file", lambda path: "0" * 64)
    again = search()["arms"]
    assert calls == ["rotation"] and again["rotation"]["checkpoint_sha256"] == "0" * 64


def test_search__keep_takes_an_arms_scores_without_its_run_and_refuses_what_is_missing(tiny_data, small_encoder, tmp_path):
    import shutil

    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, device="cpu")
    out = tmp_path / "finetune-lr.json"
    first = finetune_lr.run(["scratch", "rotation"], [0.1], tiny_data, small_encoder, tcfg, ft, tmp_path / "runs", 0.5, [0], out, progress=False)
    shutil.rmtree(tmp_path / "runs")  # made on another machine: rotation's checkpoint is not here
    r = finetune_lr.run(["scratch", "rotation", "simclr"], [0.1], tiny_data, small_encoder, tcfg, ft, tmp_path / "runs", 0.5, [0], out,
                        progress=False, keep=("rotation",))
    assert r["arms"]["rotation"] == first["arms"]["rotation"] and set(r["arms"]) == {"scratch", "rotation", "simclr"}
    assert not any(p.name.startswith("rotation-") for p in (tmp_path / "runs").iterdir())
    with pytest.raises(UserError, match="--keep rotation: .* no finished scores"):
        finetune_lr.run(["rotation"], [0.1, 0.3], tiny_data, small_encoder, tcfg, ft, tmp_path / "runs", 0.5, [0], out, progress=False, keep=("rotation",))
    with pytest.raises(UserError, match="--keep rotation: not among --arms"):
        finetune_lr.run(["simclr"], [0.1], tiny_data, small_encoder, tcfg, ft, tmp_path / "runs", 0.5, [0], out, progress=False, keep=("rotation",))


@pytest.mark.parametrize("content,msg", [(None, "no such file"), ("{}", "not a finetune-lr report"), ('{"arms": {"scratch": {"chosen_lr": 0}}}', "no positive")])
def test_chosen_lrs__missing_or_wrong_file_is_one_clear_error(tmp_path, content, msg):
    path = tmp_path / "lr.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=msg):
        finetune_lr.chosen_lrs(path)


def test_protocol_cli__ft_lrs_without_an_arm_is_refused_before_any_run(tiny_folder, tmp_path, capsys):
    lrs = tmp_path / "lr.json"
    lrs.write_text(json.dumps({"arms": {"scratch": {"chosen_lr": 0.1}}}))
    args = ["protocol", "--tasks", "rotation", "--data", str(tiny_folder), "--split", str(tmp_path / "split.csv"), "--image-size", "32",
            "--widths", "8,16,16,32", "--blocks", "1,1,1,1", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "p.json"),
            "--runs", str(tmp_path / "runs"), "--no-readme", "--ft-lrs", str(lrs)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no learning rate for rotation" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "p.json").exists()


def test_search__an_arm_with_its_own_budget_is_pretrained_for_it_and_the_report_says_so(tiny_data, small_encoder, tmp_path):
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, device="cpu")
    out = tmp_path / "finetune-lr.json"
    r = finetune_lr.run(["scratch", "rotation", "jigsaw"], [0.1], tiny_data, small_encoder, tcfg, ft, tmp_path / "runs", 0.5, [0], out,
                        task_epochs=(("rotation", 2),))
    assert r["arms"]["rotation"]["pretrain_epochs"] == 2 and r["arms"]["jigsaw"]["pretrain_epochs"] == 1
    assert r["pretrain_epochs_of"] == {"rotation": 2}
    assert "pretrained arms after 1 (rotation 2) epochs" in finetune_lr.to_markdown(r)
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("rotation-*/summary.json")]
    assert [s["completed_epochs"] for s in summaries] == [2]
    # the same arm at the common budget is another encoder: its scores are not taken for it
    h1 = finetune_lr.settings_hash("rotation", tiny_data, small_encoder, tcfg, ft, 0.5, r["steps"])
    assert h1 != r["arms"]["rotation"]["settings_hash"]
    with pytest.raises(UserError, match="--task-epochs simclr: not among the pretrained --arms"):
        finetune_lr.run(["scratch", "rotation"], [0.1], tiny_data, small_encoder, tcfg, ft, tmp_path / "runs", 0.5, [0], out,
                        task_epochs=(("simclr", 2),))


def test_search__an_arm_with_its_own_batch_size_is_pretrained_in_it_and_the_report_says_so(tiny_data, small_encoder, tmp_path):
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, device="cpu")
    r = finetune_lr.run(["scratch", "rotation"], [0.1], tiny_data, small_encoder, tcfg, ft, tmp_path / "runs", 0.5, [0], tmp_path / "f.json",
                        task_batch_sizes=(("rotation", 4),))
    assert r["pretrain_batch_size_of"] == {"rotation": 4} and "rotation in batches of 4 photos" in finetune_lr.to_markdown(r)
    [summary] = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("rotation-*/summary.json")]
    assert summary["config"]["train"]["batch_size"] == 4
    plain = finetune_lr.settings_hash("rotation", tiny_data, small_encoder, tcfg, ft, 0.5, r["steps"])
    assert plain != r["arms"]["rotation"]["settings_hash"]  # the common batch size's scores are not taken for it
    with pytest.raises(UserError, match="--task-batch-sizes rotation=1: photos per step"):
        finetune_lr.run(["scratch", "rotation"], [0.1], tiny_data, small_encoder, tcfg, ft, tmp_path / "runs", 0.5, [0], tmp_path / "f.json",
                        task_batch_sizes=(("rotation", 1),))


def test_search__an_arm_with_its_own_image_size_is_pretrained_on_those_photos_and_validated_on_the_common_ones(tiny_data, small_encoder, tmp_path):
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, device="cpu")
    r = finetune_lr.run(["scratch", "rotation"], [0.1], tiny_data, small_encoder, tcfg, ft, tmp_path / "runs", 0.5, [0], tmp_path / "f.json",
                        task_image_sizes=(("rotation", 48),))
    assert r["pretrain_image_size_of"] == {"rotation": 48} and "rotation on 48-px photos" in finetune_lr.to_markdown(r)
    [summary] = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("rotation-*/summary.json")]
    assert summary["config"]["data"]["image_size"] == 48 and tiny_data.cfg.image_size == 32
    assert 0 <= r["arms"]["rotation"]["val_accuracy"]["0.1"][0] <= 1
    plain = finetune_lr.settings_hash("rotation", tiny_data, small_encoder, tcfg, ft, 0.5, r["steps"])
    assert plain != r["arms"]["rotation"]["settings_hash"]  # the common size's scores are not taken for it
    with pytest.raises(UserError, match="--task-image-sizes rotation=4: pixels"):
        finetune_lr.run(["scratch", "rotation"], [0.1], tiny_data, small_encoder, tcfg, ft, tmp_path / "runs", 0.5, [0], tmp_path / "f.json",
                        task_image_sizes=(("rotation", 4),))


def test_search__an_arm_with_task_options_is_pretrained_with_them_and_the_report_says_so(tiny_data, small_encoder, tmp_path):
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    ft = FinetuneConfig(epochs=1, min_steps=2, max_steps=2, batch_size=8, device="cpu")
    r = finetune_lr.run(["scratch", "rotation"], [0.1], tiny_data, small_encoder, tcfg, ft, tmp_path / "runs", 0.5, [0], tmp_path / "f.json",
                        task_options=(("rotation", (("grid", "2"),)),))
    assert r["task_options"] == {"rotation": {"grid": "2"}} and "rotation with grid=2" in finetune_lr.to_markdown(r)
    [summary] = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("rotation-*/summary.json")]
    assert summary["config"]["task"]["grid"] == 2
    plain = finetune_lr.settings_hash("rotation", tiny_data, small_encoder, tcfg, ft, 0.5, r["steps"])
    assert plain != r["arms"]["rotation"]["settings_hash"]  # the default rotation's scores are not taken for it
    with pytest.raises(UserError, match="--task-options simclr: not among the pretrained --arms"):
        finetune_lr.run(["scratch", "rotation"], [0.1], tiny_data, small_encoder, tcfg, ft, tmp_path / "runs", 0.5, [0], tmp_path / "f.json",
                        task_options=(("simclr", (("temperature", "0.2"),)),))

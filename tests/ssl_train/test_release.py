"""``python -m ssl_train release``: pretrain → export → protocol → metrics in every model.json."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ssl_train.__main__ import main
from ssl_train.model_files import verify_model_dir
from ssl_train.release import card_metrics


# slow: pretrains, exports and scores every task (~19 s); CI runs it
@pytest.mark.slow
def test_release__tiny_run_exports_every_task_and_the_reference_with_protocol_metrics(tiny_folder, tmp_path, capsys):
    models, report = tmp_path / "models", tmp_path / "reports" / "protocol.json"
    args = [
        "release", "--tasks", "rotation,inpainting", "--data", str(tiny_folder), "--split", str(tmp_path / "split.csv"),
        "--image-size", "32", "--widths", "8,16,16,32", "--blocks", "1,1,1,1", "--epochs", "1", "--batch-size", "8",
        "--device", "cpu", "--fractions", "0.1,1", "--seeds", "0,1", "--modes", "knn,finetune",
        "--ft-min-steps", "2", "--ft-max-steps", "2", "--models", str(models), "--out", str(report),
        "--runs", str(tmp_path / "runs"), "--no-precompute", "--no-readme", "--ft-lr-search", str(tmp_path / "reports" / "finetune-lr.json"),
        "--task-epochs", "inpainting=2",  # a budget of its own, as the shipped SimCLR has
        "--task-image-sizes", "rotation=48",  # pretrained on larger photos, as the shipped rotation is
    ]
    assert main(args) == 0
    search = json.loads((tmp_path / "reports" / "finetune-lr.json").read_text())
    chosen = {arm: v["chosen_lr"] for arm, v in search["arms"].items()}
    assert set(chosen) == {"scratch", "rotation", "inpainting"} and (tmp_path / "reports" / "finetune-lr.md").is_file()
    # a release with options of its own: the search names that command, not a finetune-lr line lacking them
    assert search["command"].startswith("python -m ssl_train release ") and search["command"].endswith("(its learning-rate step)")
    assert sorted(p.name for p in models.iterdir()) == ["inpainting", "random_init", "rotation"]
    rep = json.loads(report.read_text())
    assert {r["task"] for r in rep["runs"]} == {"scratch", "rotation", "inpainting"}
    for name, enc in (("rotation", "rotation"), ("inpainting", "inpainting"), ("random_init", "scratch")):
        card = verify_model_dir(models / name)  # hashes still match after the metrics were written
        m = card["metrics"]
        assert set(m) >= {"knn", "finetune", "budget", "test_split"}
        assert set(m["knn"]) == {"10%", "100%"} and m["knn"]["10%"]["n_seeds"] == 2
        mine = [r["test_accuracy"] for r in rep["runs"] if r["task"] == enc and r["mode"] == "finetune" and r["fraction"] == 1.0]
        assert m["finetune"]["100%"]["mean"] == pytest.approx(sum(mine) / len(mine), abs=1e-4)
        # every fine-tune ran with the rate chosen for its arm on validation, and the card says which
        assert {r["lr"] for r in rep["runs"] if r["task"] == enc and r["mode"] == "finetune"} == {chosen[enc]}
        assert m["finetune_lr"]["lr"] == chosen[enc] and m["finetune_lr"]["scratch_lr"] == chosen["scratch"]
        assert m["finetune_schedule"]["max_steps"] == rep["config"]["finetune"]["max_steps"] and m["finetune_schedule"]["epochs"] >= 1
        if name == "random_init":  # never pretrained, and its card says so rather than quoting a budget
            assert m["budget"]["epochs"] == 0 and m["budget"]["pretrained_on"] == [] and m["budget"]["note"].startswith("not pretrained")
        elif name == "inpainting":  # pretrained, searched and scored at its own budget, and its card says so
            assert m["budget"]["epochs"] == 2 == rep["pretraining"]["inpainting"]["epochs"] == search["arms"]["inpainting"]["pretrain_epochs"]
            assert "2 epochs, this task's own budget" in m["budget"]["note"] and "budget-inpainting.md" in m["budget"]["note"]
        else:
            assert m["budget"]["epochs"] == 1 == rep["pretraining"]["rotation"]["epochs"] and m["budget"]["pretrained_on"] == [rep["device"]]
            assert "pretrained on a CPU" in m["budget"]["note"] and "1 epochs per task on 48-px photos" in m["budget"]["note"]
            # its ONNX graph reads the photos it was pretrained on; downstream it saw the protocol's, like every arm
            assert card["input"]["image_size"] == 48 == rep["pretraining"]["rotation"]["config"]["data"]["image_size"]
            assert rep["config"]["pretrain_image_size"] == {"rotation": 48} and search["pretrain_image_size_of"] == {"rotation": 48}
        assert m["downstream_image_size"] == 32
        assert card["weights"]["storage_dtype"] == ["float16", "int8"]
        if name != "random_init":
            chk = m["stored_weights_check"]
            assert 0 <= chk["knn_test_accuracy_stored"] <= 1 and chk["max_relative_feature_difference"] < 0.1
    # every pretrained model carries its "watch it learn" map from the run's feature snapshots
    z = np.load(models / "rotation" / "learning.npz", allow_pickle=False)
    assert z["epochs"][0] == 0 and z["xy"].shape[1] == len(z["labels"]) and "random_init" not in [p.parent.name for p in models.glob("*/learning.npz")]
    # a second release reuses the finished pretraining runs and the protocol's results
    runs_before = sorted(p.name for p in (tmp_path / "runs").iterdir())
    # --no-protocol takes the metrics from the existing report; exports made from the same
    # checkpoints are kept byte for byte, an altered one is exported again
    binaries = {p: p.read_bytes() for p in models.rglob("*") if p.is_file() and p.name != "model.json"}
    with open(models / "inpainting" / "model.onnx", "ab") as f:
        f.write(b"tampered")
    capsys.readouterr()
    assert main([*args, "--no-protocol"]) == 0
    out = capsys.readouterr().out
    assert "kept" in out and f"exported {models / 'inpainting'}" in out
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == runs_before
    assert verify_model_dir(models / "rotation")["metrics"]["knn"]["10%"]["n_seeds"] == 2
    verify_model_dir(models / "inpainting")  # whole again
    assert all(p.read_bytes() == b for p, b in binaries.items() if p.parent.name != "inpainting")
    # the dry check finds every run, model, search entry and protocol entry of this release finished
    capsys.readouterr()
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "found finished" in out and "checkpoints here: 2 of 2" in out and out.count("protocol entries reusable: 8/8") == 3
    assert main([*args, "--dry-run", "--seeds", "0,1,2"]) == 1  # a seed more: entries to run


def test_card_metrics__picks_the_encoder_and_the_card_fractions():
    rows = [
        {"task": "rotation", "mode": "knn", "fraction": 0.1, "mean": 0.51234, "std": 0.01, "n_seeds": 3},
        {"task": "rotation", "mode": "knn", "fraction": 0.25, "mean": 0.6, "std": 0.0, "n_seeds": 3},
        {"task": "scratch", "mode": "knn", "fraction": 0.1, "mean": 0.4, "std": 0.0, "n_seeds": 3},
    ]
    assert card_metrics(rows, "rotation") == {"knn": {"10%": {"mean": 0.5123, "std": 0.01, "n_seeds": 3}}}


def test_release__unknown_task_is_one_line_exit_2(capsys):
    assert main(["release", "--tasks", "rotation,nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown task 'nope'" in err and "jigsaw" in err


def test_budget_note__says_cpu_and_how_to_retrain_unless_every_run_was_on_a_gpu():
    from ssl_train.release import budget_note

    cpu = budget_note(50, {"cpu (2 cores, x86_64)"})
    assert "pretrained on a CPU (cpu (2 cores, x86_64))" in cpu and "50 epochs" in cpu and "release --epochs" in cpu
    assert budget_note(50, {"cuda:0 (NVIDIA H200)"}) == "50 pretraining epochs per task on cuda:0 (NVIDIA H200)"
    assert "pretrained on a CPU" in budget_note(50, {"cuda:0 (NVIDIA H200)", "cpu (2 cores, x86_64)"})  # mixed: not all GPU
    own = budget_note(60, {"cpu (2 cores, x86_64)"}, own_budget_of="simclr")
    assert "60 epochs, this task's own budget" in own and "reports/budget-simclr.md" in own and "--task-epochs simclr=N" in own
    assert budget_note(60, {"cuda:0 (NVIDIA H200)"}, own_budget_of="simclr").startswith("60 pretraining epochs, this task's own budget")
    # the retrain command keeps the other tasks' own budgets (a bare --task-epochs simclr=N would drop them)
    kept = budget_note(200, {"cpu (2 cores, x86_64)"}, own_budget_of="simclr", task_epochs={"pirl": 60, "simclr": 200, "colorization": 60})
    assert "`python -m ssl_train release --task-epochs colorization=60,pirl=60,simclr=N`, N larger" in kept
    # rotation's budget was chosen with its batch size, in its own study, and its card says both
    rot = budget_note(60, {"cpu (2 cores, x86_64)"}, own_budget_of="rotation", batch_size=16)
    assert "60 epochs in batches of 16 photos, this task's own budget" in rot and "reports/rotation-batch.md" in rot
    # and on photos of its own size, while every arm is compared downstream on the protocol's
    big = budget_note(60, {"cpu (2 cores, x86_64)"}, own_budget_of="rotation", batch_size=16, image_size=128, downstream_size=96)
    assert "in batches of 16 128-px photos (downstream, like every arm, on 96-px photos)" in big and "its photo size: reports/rotation-seeds.md" in big


def test_release_cli__the_shipped_per_task_budgets_are_its_default_and_other_budgets_are_refused_clearly(capsys):
    from ssl_train.__main__ import build_parser
    from ssl_train.release import shipped_tables

    RELEASE_TASK_EPOCHS = shipped_tables()["task_epochs"]  # every task's recipe, as one table

    a = build_parser().parse_args(["release"])
    assert a.task_epochs == RELEASE_TASK_EPOCHS and dict(RELEASE_TASK_EPOCHS)["simclr"] > a.epochs
    assert build_parser().parse_args(["release", "--task-epochs", ""]).task_epochs == ()
    assert main(["protocol", "--tasks", "rotation", "--task-epochs", "simclr=60"]) == 2  # a task the run does not pretrain
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--task-epochs simclr: not among --tasks" in err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["protocol", "--task-epochs", "simclr=many"])
    assert "is not TASK=EPOCHS" in capsys.readouterr().err


def test_release_cli__the_shipped_per_task_batch_sizes_are_its_default_and_bad_ones_are_refused_clearly(capsys):
    from ssl_train.__main__ import build_parser
    from ssl_train.release import shipped_tables

    RELEASE_TASK_BATCH_SIZES = shipped_tables()["task_batch_sizes"]  # every task's recipe, as one table

    assert build_parser().parse_args(["release"]).task_batch_sizes == RELEASE_TASK_BATCH_SIZES
    assert build_parser().parse_args(["release", "--task-batch-sizes", ""]).task_batch_sizes == ()
    assert build_parser().parse_args(["finetune-lr", "--task-batch-sizes", "rotation=32"]).task_batch_sizes == (("rotation", 32),)
    assert main(["protocol", "--tasks", "rotation", "--task-batch-sizes", "simclr=32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--task-batch-sizes simclr: not among --tasks" in err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["protocol", "--task-batch-sizes", "rotation=few"])
    assert "is not TASK=PHOTOS" in capsys.readouterr().err


def test_release_cli__the_shipped_per_task_image_sizes_are_its_default_and_bad_ones_are_refused_clearly(capsys):
    from ssl_train.__main__ import build_parser
    from ssl_train.release import shipped_tables

    RELEASE_TASK_IMAGE_SIZES = shipped_tables()["task_image_sizes"]  # every task's recipe, as one table

    assert build_parser().parse_args(["release"]).task_image_sizes == RELEASE_TASK_IMAGE_SIZES == (("rotation", 128),)
    assert build_parser().parse_args(["release", "--task-image-sizes", ""]).task_image_sizes == ()
    assert build_parser().parse_args(["finetune-lr", "--task-image-sizes", "rotation=112"]).task_image_sizes == (("rotation", 112),)
    for flags, msg in ((["--tasks", "rotation", "--task-image-sizes", "jigsaw=128"], "--task-image-sizes jigsaw: not among --tasks"),
                       (["--tasks", "rotation", "--task-image-sizes", "rotation=8"], "--task-image-sizes rotation=8: pixels must be whole numbers ≥ 16")):
        assert main(["protocol", *flags]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and msg in err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["protocol", "--task-image-sizes", "rotation=big"])
    assert "is not TASK=PIXELS" in capsys.readouterr().err


def test_cli__task_options_parse_per_task_and_a_malformed_one_is_one_line(capsys):
    from ssl_train.__main__ import build_parser
    from ssl_train.release import shipped_tables

    RELEASE_TASK_OPTIONS = shipped_tables()["task_options"]  # every task's recipe, as one table

    a = build_parser().parse_args(["protocol", "--task-options", "rotation.grid=2, rotation.hidden=0,jigsaw.n_permutations=30"])
    assert a.task_options == (("jigsaw", (("n_permutations", "30"),)), ("rotation", (("grid", "2"), ("hidden", "0"))))
    assert build_parser().parse_args(["release"]).task_options == RELEASE_TASK_OPTIONS
    assert build_parser().parse_args(["finetune-lr", "--task-options", ""]).task_options == ()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["protocol", "--task-options", "grid=2"])
    assert "is not TASK.OPTION=VALUE" in capsys.readouterr().err


def test_release_cli__its_defaults_are_the_tasks_recipes_as_the_shipped_release_had_them(capsys):
    """The recipes (ssl_train/tasks/<task>.py) give what release.py's tables gave, so the shipped runs and entries are found."""
    from ssl_train.__main__ import build_parser
    from ssl_train.cli_options import _per_task_tables
    from ssl_train.release import shipped_recipes, shipped_tables

    shipped = ("colorization", "context", "deepcluster", "inpainting", "jigsaw", "multitask", "pirl", "rotation", "simclr", "superres")
    assert shipped_tables(shipped) == {
        "task_epochs": (("colorization", 60), ("deepcluster", 60), ("pirl", 60), ("rotation", 60), ("simclr", 200)),
        "task_batch_sizes": (("rotation", 16),), "task_image_sizes": (("rotation", 128),), "task_options": ()}
    assert shipped_recipes(shipped)["rotation"].epochs_chosen_in == "reports/rotation-batch.md"
    # a smaller release takes its own tasks' recipes; a flag given replaces that table
    a = build_parser().parse_args(["release", "--tasks", "rotation,jigsaw", "--task-epochs", "jigsaw=5"])
    assert _per_task_tables(a, ["rotation", "jigsaw"], shipped_default=True) == {
        "task_epochs": (("jigsaw", 5),), "task_batch_sizes": (("rotation", 16),), "task_image_sizes": (("rotation", 128),), "task_options": ()}
    # protocol and finetune-lr: the common settings unless --recipes (their shipped reports' commands make what they made)
    a = build_parser().parse_args(["protocol", "--tasks", "simclr,rotation"])
    assert _per_task_tables(a, a.tasks) == {"task_epochs": (), "task_batch_sizes": (), "task_image_sizes": (), "task_options": ()}
    a = build_parser().parse_args(["finetune-lr", "--recipes", "--task-image-sizes", ""])
    assert _per_task_tables(a, ["simclr", "rotation"]) == {"task_epochs": (("rotation", 60), ("simclr", 200)), "task_batch_sizes": (("rotation", 16),),
                                                          "task_image_sizes": (), "task_options": ()}


def test_release__the_shipped_release_settings_give_the_shipped_run_keys_config_hash_and_entry_hashes():
    """Recipes replaced release.py's tables without moving a hash: the CLI's release defaults, with each
    task's recipe, name the very runs reports/protocol.json and models/*/model.json were made from, and
    every entry of the report hashes as it did (so a release finds and reuses them: release --dry-run)."""
    from pathlib import Path
    from types import SimpleNamespace

    from ssl_train.__main__ import build_parser
    from ssl_train.cli_options import _data_cfg, _enc_cfg, _ft_cfg, _per_task_tables, _train_cfg
    from ssl_train.data import DataConfig
    from ssl_train.model_files import sha256_file
    from ssl_train.paths import REPO
    from ssl_train.protocol import ProtocolConfig, config_hash, entry_hash, own_recipes, protocol_config, run_dir
    from ssl_train.tasks import Recipe

    rep = json.loads((REPO / "reports" / "protocol.json").read_text())
    tasks = tuple(rep["config"]["protocol"]["tasks"])
    a = build_parser().parse_args(["release", "--tasks", ",".join(tasks)])
    tables = _per_task_tables(a, tasks, shipped_default=True)
    assert {k: [list(x) for x in v] for k, v in tables.items()} == {k: rep["config"]["protocol"][k] for k in tables}
    enc, tcfg, ft, data_cfg = _enc_cfg(a), _train_cfg(a), _ft_cfg(a), _data_cfg(a)
    split = sha256_file(REPO / "data" / "flowers" / "split.csv")
    assert split == rep["split_sha256"]
    # a run key holds the data folder's absolute path (DataConfig.root as given): the shipped runs were made in /work/main
    data = SimpleNamespace(cfg=DataConfig(root="/work/main/data/flowers"), split_sha256=split)
    own = own_recipes(tables, tcfg, data_cfg.image_size)
    for t in tasks:
        run = run_dir(t, data, enc, tcfg, REPO / "runs", own.get(t, Recipe())).name
        assert run == Path(rep["pretraining"][t]["checkpoint"]).parent.name
        assert run == Path(json.loads((REPO / "models" / t / "model.json").read_text())["source_checkpoint"]["path"]).parent.name
    pcfg = ProtocolConfig(tasks=tasks, fractions=a.fractions, seeds=a.seeds, modes=a.modes, **tables)
    config = protocol_config(pcfg, enc, tcfg, ft, data_cfg, rep["config"]["finetune_lr"])
    assert config_hash(config, split) == rep["config_hash"]
    for t, m in {(r["task"], r["mode"]) for r in rep["runs"]}:
        assert entry_hash(config, split, t, m) == entry_hash(rep["config"], rep["split_sha256"], t, m), (t, m)

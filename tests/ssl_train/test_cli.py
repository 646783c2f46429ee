"""The command line: tasks list, help texts, one-line errors with exit code 2."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ssl_train.__main__ import build_parser, main

from ..conftest import REPO


def _run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli__tasks_lists_registered_names_one_per_line(capsys):
    from ssl_train.tasks import load_all, task_names

    load_all()
    code, out, _ = _run(["tasks"], capsys)
    assert code == 0 and out.split() == task_names() and "rotation" in out.split()


@pytest.mark.parametrize("cmd", ["pretrain", "finetune", "evaluate", "protocol", "report", "tasks", "export", "bench", "release", "replay"])
def test_cli__every_command_has_help_with_defaults(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out
    if cmd in ("pretrain", "protocol", "release"):
        assert "--data" in out and "(default: " in out and "--epochs" in out


@pytest.mark.parametrize(
    "args,msg",
    [
        (["pretrain", "--data", "/nonexistent/photos"], "does not exist"),
        (["pretrain", "--task", "nosuchtask"], "unknown task 'nosuchtask'; registered tasks: "),
        (["finetune", "--fraction", "1.5"], "outside (0, 1]"),
        (["protocol", "--fractions", "0,0.1"], "outside (0, 1]"),
        (["finetune", "--checkpoint", "/nonexistent/ck.safetensors"], "does not exist"),
        (["pretrain", "--epochs", "0"], "--epochs 0 must be at least 1"),
        (["pretrain", "--device", "cuda:7"] if not __import__("torch").cuda.is_available() else ["pretrain", "--device", "tpu"], "--device"),
    ],
)
def test_cli__bad_input_is_one_line_exit_2(args, msg, capsys):
    code, _, err = _run(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], err


def test_cli__empty_data_dir_and_photo_less_class(tmp_path, capsys):
    code, _, err = _run(["evaluate", "--data", str(tmp_path)], capsys)
    assert code == 2 and "no class folders" in err
    (tmp_path / "daisy").mkdir()
    code, _, err = _run(["evaluate", "--data", str(tmp_path)], capsys)
    assert code == 2 and "daisy has no photos" in err


def test_cli__checkpoint_of_another_task_refused(tiny_data, small_encoder, tmp_path, capsys):
    from ssl_train.tasks import get_task
    from ssl_train.train import TrainConfig, pretrain

    pretrain(get_task("rotation"), tiny_data, tmp_path / "r", small_encoder, TrainConfig(epochs=1, batch_size=8, device="cpu"), progress=False)
    ck = str(tmp_path / "r" / "checkpoint.safetensors")
    code, _, err = _run(["finetune", "--checkpoint", ck, "--task", "jigsaw", "--data", str(tiny_data.cfg.root), "--split", str(tiny_data.cfg.split_path)], capsys)
    assert code == 2 and "was trained for task 'rotation', not 'jigsaw'" in err


def test_cli__error_has_no_traceback_in_a_real_process(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ssl_train", "pretrain", "--data", str(tmp_path / "missing")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stderr.strip().startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


def _pretrain_args(tiny_folder, tmp_path, out, *extra):
    return ["pretrain", "--data", str(tiny_folder), "--split", str(tmp_path / "split.csv"), "--image-size", "32", "--epochs", "1",
            "--batch-size", "8", "--widths", "8,16,16,32", "--blocks", "1,1,1,1", "--device", "cpu", "--quiet", "--out", str(out), *extra]


@pytest.mark.parametrize("case", ["under_a_file", "unwritable", "resume_nothing"])
def test_pretrain_cli__bad_out_or_resume_is_one_line_exit_2_before_any_work(tiny_folder, tmp_path, capsys, case):
    (tmp_path / "afile").write_text("x")
    out, extra = {"under_a_file": (tmp_path / "afile" / "run", ()), "unwritable": (Path("/sys/pretext-run"), ()),
                  "resume_nothing": (tmp_path / "nothing", ("--resume",))}[case]
    rc = main(_pretrain_args(tiny_folder, tmp_path, out, *extra))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert {"under_a_file": "is a file, not a folder", "unwritable": "not writable", "resume_nothing": "holds no run"}[case] in err[0]
    assert not (tmp_path / "split.csv").exists()  # refused before the photos were even read


def test_pretrain_cli__resume_with_another_photo_size_is_refused_and_the_run_kept(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_pretrain_args(tiny_folder, tmp_path, out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    args = _pretrain_args(tiny_folder, tmp_path, out, "--resume")
    args[args.index("--image-size") + 1] = "48"
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "other settings (image_size: the run has 32, now 48)" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_finetune_cli__out_under_a_file_is_refused_before_training(tiny_folder, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    rc = main(["finetune", "--data", str(tiny_folder), "--split", str(tmp_path / "split.csv"), "--image-size", "32", "--out", str(tmp_path / "afile" / "clf.safetensors")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "is a file, not a folder" in err[0]
    assert not (tmp_path / "split.csv").exists()


def test_pretrain_and_finetune_cli__end_by_naming_the_next_command(tiny_folder, tmp_path, capsys):
    import json

    out = tmp_path / "run"
    assert main(_pretrain_args(tiny_folder, tmp_path, out)) == 0
    io = capsys.readouterr()
    assert json.loads(io.out)["completed_epochs"] == 1  # stdout stays the JSON
    assert f"next: python -m ssl_train finetune --checkpoint {out / 'checkpoint.safetensors'}" in io.err and "ssl_train export" in io.err
    rc = main(["finetune", "--data", str(tiny_folder), "--split", str(tmp_path / "split.csv"), "--image-size", "32", "--widths", "8,16,16,32",
               "--blocks", "1,1,1,1", "--checkpoint", str(out / "checkpoint.safetensors"), "--fraction", "0.5", "--ft-epochs", "1", "--ft-min-steps", "2", "--device", "cpu"])
    io = capsys.readouterr()
    assert rc == 0 and 0 <= json.loads(io.out)["test_accuracy"] <= 1
    assert "next: python -m ssl_train finetune --fraction 0.5 --seed 0" in io.err

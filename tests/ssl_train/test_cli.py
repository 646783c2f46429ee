"""The command line: tasks list, help texts, one-line errors with exit code 2."""
from __future__ import annotations

import subprocess
import sys

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

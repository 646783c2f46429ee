"""rotation-limits: angle confusion, per-class accuracy and rotational self-similarity."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl_train.__main__ import main
from ssl_train.data import DataConfig, load_split_data
from ssl_train.encoders import EncoderConfig
from ssl_train.export import export_model
from ssl_train.studies.rotation_limits import analyse, self_similarity
from ssl_train.tasks import get_task
from ssl_train.train import CHECKPOINT_NAME, TrainConfig, pretrain

SIZE = 32
SMALL = EncoderConfig(widths=(8, 16, 16, 32), blocks=(1, 1, 1, 1))


def test_self_similarity__quarter_turn_symmetric_photo_is_one_noise_near_zero():
    g = torch.Generator().manual_seed(0)
    quarter = torch.randint(0, 256, (1, 3, 8, 8), generator=g, dtype=torch.uint8)
    # a 16×16 photo made of one 8×8 quadrant turned four times is exactly 90°-symmetric
    top = torch.cat([quarter, torch.rot90(quarter, -1, dims=(2, 3))], 3)
    bottom = torch.cat([torch.rot90(quarter, 1, dims=(2, 3)), torch.rot90(quarter, 2, dims=(2, 3))], 3)
    sym = torch.cat([top, bottom], 2)
    assert torch.equal(torch.rot90(sym, 1, dims=(2, 3)), sym)
    noise = torch.randint(0, 256, (4, 3, 64, 64), generator=g, dtype=torch.uint8)
    s = self_similarity(torch.cat([sym.expand(1, 3, 16, 16), noise[:, :, :16, :16]]))
    assert s[0].item() == pytest.approx(1.0, abs=1e-5)
    assert (s[1:].abs() < 0.35).all()


def test_analyse__confusion_error_kinds_and_groups_follow_the_predictions():
    # photo 0 all right; photo 1 reads every angle a quarter turn too far; photo 2 upside down at 0°
    pred = np.array([[0, 1, 2, 3], [1, 2, 3, 0], [2, 1, 2, 3]])
    labels = np.array([0, 1, 1])
    r = analyse(pred, labels, ["a", "b"], similarity=np.array([0.0, 0.9, 0.5]))
    conf = np.array(r["confusion_true_by_predicted"])
    assert conf.sum() == 12 and np.trace(conf) == 7
    assert conf[0, 1] == 1 and conf[0, 2] == 1 and conf[3, 0] == 1
    assert r["accuracy"] == pytest.approx(7 / 12)
    assert r["errors_quarter_turn"] == pytest.approx(4 / 5) and r["errors_half_turn"] == pytest.approx(1 / 5)
    assert r["photos_all_four_right"] == pytest.approx(1 / 3)
    assert r["per_class"]["a"]["accuracy"] == 1.0 and r["per_class"]["b"]["accuracy"] == pytest.approx(3 / 8)
    assert sum(q["n"] for q in r["by_self_similarity_quartile"]) == 3
    assert r["correlation_similarity_vs_photo_accuracy"] < 0  # the more self-similar photos fared worse here
    assert r["accuracy_four_view"] is None  # not given, not invented


def test_analyse__four_view_accuracy_is_the_share_of_photos_put_upright_overall_and_per_group():
    pred = np.array([[0, 1, 2, 3], [1, 2, 3, 0], [2, 1, 2, 3]])
    r = analyse(pred, np.array([0, 1, 1]), ["a", "b"], similarity=np.array([0.0, 0.9, 0.5]), four_view=np.array([0, 0, 3]))
    assert r["accuracy_four_view"] == pytest.approx(2 / 3)
    assert r["per_class"]["a"]["accuracy_four_view"] == 1.0 and r["per_class"]["b"]["accuracy_four_view"] == 0.5
    assert sum(q["accuracy_four_view"] * q["n"] for q in r["by_self_similarity_quartile"] if q["n"]) == pytest.approx(2)


@pytest.fixture(scope="module")
def tiny_rotation_model(tiny_folder, tmp_path_factory) -> tuple[Path, Path]:
    """A real 1-epoch rotation model exported from 3 classes × 10 photos at 32 px, and its split file."""
    tmp = tmp_path_factory.mktemp("limits")
    data = load_split_data(DataConfig(root=str(tiny_folder), image_size=SIZE, split_file=str(tmp / "split.csv")))
    pretrain(get_task("rotation"), data, tmp / "run", SMALL, TrainConfig(epochs=1, batch_size=8, device="cpu"), progress=False)
    return export_model(tmp / "run" / CHECKPOINT_NAME, tmp / "models", "rotation"), tmp / "split.csv"


def _args(model: Path, split: Path, tiny_folder: Path, out: Path) -> list[str]:
    return ["rotation-limits", "--model", str(model), "--data", str(tiny_folder), "--split", str(split), "--image-size", str(SIZE), "--out", str(out)]


def test_rotation_limits_cli__writes_json_and_markdown_over_the_test_split(tiny_rotation_model, tiny_folder, tmp_path, capsys):
    model, split = tiny_rotation_model
    assert main(_args(model, split, tiny_folder, tmp_path)) == 0
    r = json.loads((tmp_path / "rotation-limits.json").read_text())
    n_test = sum(1 for line in split.read_text().splitlines() if line.split(",")[2:3] == ["test"])
    assert r["n_photos"] == n_test > 0
    assert np.array(r["confusion_true_by_predicted"]).sum() == 4 * n_test
    assert np.array(r["confusion_true_by_predicted"]).sum(1).tolist() == [n_test] * 4  # each angle once per photo
    assert 0 <= r["accuracy_four_view"] <= 1
    md = (tmp_path / "rotation-limits.md").read_text()
    assert "Judged from all four turns" in md
    assert "| true \\ predicted |" in md and "Made by `python -m ssl_train rotation-limits" in md


def test_rotation_limits_cli__other_task_or_other_split_refused_in_one_line(tiny_rotation_model, tiny_folder, tmp_path, capsys):
    model, split = tiny_rotation_model
    card = json.loads((model / "model.json").read_text())
    card["task"] = "jigsaw"
    other = tmp_path / "other"
    other.mkdir()
    for f in model.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    (other / "model.json").write_text(json.dumps(card))
    assert main(_args(other, split, tiny_folder, tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert "'jigsaw' model" in err and "\n" not in err

    resplit = tmp_path / "resplit.csv"  # a new split of the same photos (other test fraction): another hash
    assert main(_args(model, resplit, tiny_folder, tmp_path / "out") + ["--test-fraction", "0.4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "another split" in err and "\n" not in err
    assert not (tmp_path / "out" / "rotation-limits.json").exists()


def test_analyse__with_mirror_accuracy_counts_views_and_eight_views_counts_photos():
    pred = np.array([[0, 1, 2, 3], [1, 2, 3, 0], [2, 1, 2, 3]])
    mirror_pred = np.array([[0, 1, 2, 3], [0, 1, 2, 0], [0, 1, 2, 3]])  # the mirror look fixes four of the five wrong views
    r = analyse(pred, np.array([0, 1, 1]), ["a", "b"], similarity=np.array([0.0, 0.9, 0.5]), four_view=np.array([0, 1, 0]),
                mirror_pred=mirror_pred, eight_view=np.array([0, 0, 0]))
    assert r["accuracy"] == pytest.approx(7 / 12) and r["accuracy_with_mirror"] == pytest.approx(11 / 12)
    assert r["per_class"]["b"]["accuracy_with_mirror"] == pytest.approx(7 / 8)
    assert r["accuracy_eight_view"] == 1.0 and r["accuracy_four_view"] == pytest.approx(2 / 3)
    assert analyse(pred, np.array([0, 1, 1]), ["a", "b"], similarity=np.array([0.0, 0.9, 0.5]))["accuracy_with_mirror"] is None


def test_rotation_limits_cli__a_validation_run_is_scored_on_its_validation_photos_only(tiny_folder, tmp_path, capsys):
    from ssl_train.data import validation_split

    data = load_split_data(DataConfig(root=str(tiny_folder), image_size=SIZE, split_file=str(tmp_path / "split.csv")))
    pretrain(get_task("rotation"), data, tmp_path / "rotval", SMALL, TrainConfig(epochs=1, batch_size=8, device="cpu"), progress=False,
             holdout="validation")
    args = ["rotation-limits", "--run", str(tmp_path / "rotval"), "--data", str(tiny_folder), "--split", str(tmp_path / "split.csv"),
            "--image-size", str(SIZE), "--out", str(tmp_path / "out")]
    assert main(args) == 0
    r = json.loads((tmp_path / "out" / "rotation-limits-rotval.json").read_text())
    assert r["holdout"] == "validation" and r["n_photos"] == len(validation_split(data)[1]) > 0
    assert 0 <= r["accuracy_with_mirror"] <= 1 and 0 <= r["accuracy_eight_view"] <= 1
    assert "validation photos × 4 angles" in (tmp_path / "out" / "rotation-limits-rotval.md").read_text()
    assert not (tmp_path / "out" / "rotation-limits.json").exists()  # the shipped model's report is left alone

    jig = tmp_path / "jig"
    pretrain(get_task("jigsaw"), data, jig, SMALL, TrainConfig(epochs=1, batch_size=8, device="cpu"), progress=False)
    capsys.readouterr()
    assert main(args[:2] + [str(jig)] + args[3:]) == 2
    err = capsys.readouterr().err.strip()
    assert "'jigsaw' run" in err and "\n" not in err


def test_rotation_limits_cli__a_run_is_scored_at_its_own_size_and_another_image_size_is_refused(tiny_folder, tmp_path, capsys):
    from ssl_train.errors import UserError
    from ssl_train.studies.rotation_limits import load_run_model

    split = str(tmp_path / "split.csv")
    data = load_split_data(DataConfig(root=str(tiny_folder), image_size=SIZE, split_file=split))
    pretrain(get_task("rotation"), data, tmp_path / "rot", SMALL, TrainConfig(epochs=1, batch_size=8, device="cpu"), progress=False,
             holdout="validation")
    # no --image-size: the default (96) is not what this run saw
    assert main(["rotation-limits", "--run", str(tmp_path / "rot"), "--data", str(tiny_folder), "--split", split,
                 "--out", str(tmp_path / "out")]) == 0
    r = json.loads((tmp_path / "out" / "rotation-limits-rot.json").read_text())
    assert r["image_size"] == SIZE
    assert f"{SIZE} px" in (tmp_path / "out" / "rotation-limits-rot.md").read_text()
    # asked for another size: refused in one line, nothing written
    capsys.readouterr()
    assert main(["rotation-limits", "--run", str(tmp_path / "rot"), "--data", str(tiny_folder), "--split", split,
                 "--image-size", str(SIZE * 2), "--out", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"trained on {SIZE}-px photos" in err and "\n" not in err and not (tmp_path / "out2").exists()
    # called directly with photos of another size: refused, not silently scored
    other = load_split_data(DataConfig(root=str(tiny_folder), image_size=SIZE * 2, split_file=split))
    with pytest.raises(UserError, match=f"trained on {SIZE}-px photos"):
        load_run_model(tmp_path / "rot", other)


def test_rotation_limits_cli__a_missing_model_folder_is_one_line_not_a_traceback(tmp_path, capsys):
    assert main(["rotation-limits", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: model folder") and "does not exist" in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_rotation_limits_judge_sizes__one_row_per_size_and_the_trained_size_equals_the_full_report(tiny_folder, tmp_path, capsys):
    split = str(tmp_path / "split.csv")
    data = load_split_data(DataConfig(root=str(tiny_folder), image_size=SIZE, split_file=split))
    pretrain(get_task("rotation"), data, tmp_path / "rot", SMALL, TrainConfig(epochs=1, batch_size=8, device="cpu"), progress=False,
             holdout="validation")
    base = ["rotation-limits", "--run", str(tmp_path / "rot"), "--data", str(tiny_folder), "--split", split, "--out", str(tmp_path / "out")]
    assert main(base) == 0
    full = json.loads((tmp_path / "out" / "rotation-limits-rot.json").read_text())
    assert main(base + ["--judge-sizes", f"{SIZE},48"]) == 0
    r = json.loads((tmp_path / "out" / "rotation-judge-sizes-rot.json").read_text())
    assert [row["judge_size"] for row in r["sizes"]] == [SIZE, 48] and r["image_size"] == SIZE
    assert r["n_photos"] == full["n_photos"] and r["holdout"] == "validation"
    at_trained = r["sizes"][0]  # the same photos, model and judgement as the full report
    for key in ("accuracy", "accuracy_with_mirror", "accuracy_four_view"):
        assert at_trained[key] == pytest.approx(full[key])
        assert 0 <= r["sizes"][1][key] <= 1
    md = (tmp_path / "out" / "rotation-judge-sizes-rot.md").read_text()
    assert f"| {SIZE} px (trained) |" in md and "| 48 px |" in md
    # nonsense sizes: one line before any photo is decoded, nothing written
    capsys.readouterr()
    assert main(base[:-1] + [str(tmp_path / "out2"), "--judge-sizes", "96,8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--judge-sizes" in err and "\n" not in err and not (tmp_path / "out2").exists()


def test_judge_sizes__decodes_each_size_and_refuses_photos_of_another_split(tiny_folder, tmp_path):
    from ssl_train.errors import UserError
    from ssl_train.studies.rotation_limits import judge_sizes, load_run_model

    split = str(tmp_path / "split.csv")
    data = load_split_data(DataConfig(root=str(tiny_folder), image_size=SIZE, split_file=split))
    pretrain(get_task("rotation"), data, tmp_path / "rot", SMALL, TrainConfig(epochs=1, batch_size=8, device="cpu"), progress=False)
    encoder, head, idx, _ = load_run_model(tmp_path / "rot", data)
    asked: list[int] = []

    def load(size: int):
        asked.append(size)
        return load_split_data(DataConfig(root=str(tiny_folder), image_size=size, split_file=split))

    rows = judge_sizes(encoder, head, idx, [48, SIZE], load, data)
    assert asked == [48, SIZE] and [r["judge_size"] for r in rows] == [48, SIZE]
    other = load_split_data(DataConfig(root=str(tiny_folder), image_size=48, split_file=str(tmp_path / "s2.csv"), test_fraction=0.4))
    with pytest.raises(UserError, match="not those at"):
        judge_sizes(encoder, head, idx, [48], lambda s: other, data)


def test_rotation_limits_judge_sizes__a_model_folder_is_judged_on_its_test_split_and_its_own_report_left_alone(tiny_rotation_model, tiny_folder, tmp_path):
    model, split = tiny_rotation_model
    assert main(_args(model, split, tiny_folder, tmp_path) + ["--judge-sizes", f"{SIZE},40"]) == 0
    r = json.loads((tmp_path / "rotation-judge-sizes.json").read_text())
    n_test = sum(1 for line in split.read_text().splitlines() if line.split(",")[2:3] == ["test"])
    assert r["n_photos"] == n_test and [row["judge_size"] for row in r["sizes"]] == [SIZE, 40]
    assert r["weights_sha256"] and "trained at 32 px" in (tmp_path / "rotation-judge-sizes.md").read_text()
    assert not (tmp_path / "rotation-limits.json").exists()

"""app.scores: the plain-words pretext scores of every model on the test photos.

Models: ``made_models`` (a 1-epoch rotation model and the random-init reference, 32 px; 5 test
photos) and, for one test, ``made_task_models`` (one tiny model per task). Everything runs in the
fixture folders: the repository's models/ and reports/ are never read or written.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from app import inference, photos, pretext, scores
from app.inference import OnnxModel, list_models
from app.panels import deepcluster, jigsaw, rotation

from .conftest import REPO, SIZE, fake_task


@pytest.fixture(autouse=True)
def _own_cache(app_env, monkeypatch):
    """Decoded photos go to the fixture's cache, never the user's."""
    monkeypatch.setenv("PRETEXT_LAB_CACHE", str(app_env["base"] / "cache"))


def _entry(models_dir, name):
    return next(e for e in list_models(models_dir) if e.name == name)


def _test_photos(app_env, size=SIZE) -> np.ndarray:
    return pretext.test_gallery(photos.decoded(app_env["data"], size), None)["images"]


# -- rotation ------------------------------------------------------------------------------------------
def test_rotation_score_is_a_share_and_equals_a_hand_recount_with_rotation_grid_on_two_photos(made_models, app_env):
    model = OnnxModel(made_models / "rotation")
    images = _test_photos(app_env)
    assert len(images) >= 2
    got = rotation.score_photos(model, images[:2])
    right = 0
    for img in images[:2]:  # the panel's own per-photo function: row k = the photo turned k·90°
        _, probs = inference.rotation_grid(model, img)
        right += int((probs.argmax(1) == np.arange(4)).sum())
    assert got["answers"] == 8 and got["photos"] == 2
    assert got["share"] == pytest.approx(right / 8)
    assert 0.0 <= got["share"] <= 1.0 and got["chance"] == 0.25
    # batching across photos changes nothing: photo by photo gives the same count
    one_by_one = [rotation.score_photos(model, images[i : i + 1], batch=1)["share"] for i in range(2)]
    assert np.mean(one_by_one) == pytest.approx(got["share"])


def test_rotation_model_entry_records_weights_size_and_photo_count(made_models, app_env):
    e = _entry(made_models, "rotation")
    got = scores.score_model(e, app_env["data"], seed=0)
    assert got["skipped"] is None, got["skipped"]
    assert got["weights_sha256"] == e.card["files"]["weights.safetensors"]
    assert got["image_size"] == SIZE
    assert got["test_photos"] == len(_test_photos(app_env))
    (s,) = got["scores"]
    assert s["kind"] == "rotation" and 0.0 <= s["share"] <= 1.0
    assert s["answers"] == 4 * got["test_photos"]


def test_random_init_and_an_unknown_task_are_skipped_with_a_note(models, app_env):
    fake_task(models, "mystery")
    got = {e.name: scores.score_model(e, app_env["data"]) for e in list_models(models)}
    assert "random init" in got["random_init"]["skipped"] and got["random_init"]["scores"] == []
    assert "unknown task 'mystery'" in got["mystery"]["skipped"] and got["mystery"]["scores"] == []
    assert scores.sentence(got["random_init"]) == ""


# -- the command line ------------------------------------------------------------------------------------
def test_cli_writes_both_reports_and_load_gives_back_this_models_entry(made_models, app_env, tmp_path, capsys):
    out = tmp_path / "reports"
    rc = scores.main(["--models", str(made_models), "--data", str(app_env["data"]), "--out", str(out)])
    assert rc == 0
    report = json.loads((out / scores.REPORT_JSON).read_text())
    assert report["format"] == scores.FORMAT and report["command"].startswith("python -m app.scores --models ")
    assert set(report["models"]) == {"rotation", "random_init"}
    sha = _entry(made_models, "rotation").card["files"]["weights.safetensors"]
    entry = scores.load(out / scores.REPORT_JSON, "rotation", sha)
    assert entry is not None and entry["scores"][0]["kind"] == "rotation"
    words = scores.sentence(entry)
    assert "names the turn right" in words and "times in 100" in words and "guessing: 25" in words
    md = (out / scores.REPORT_MD).read_text()
    assert "| rotation | rotation | 32 px |" in md and words in md
    assert sha in md and "not scored:* random init" in md


def test_load_refuses_a_report_about_other_weights_a_missing_model_or_an_unreadable_file(tmp_path):
    path = tmp_path / scores.REPORT_JSON
    entry = {"model": "rotation", "weights_sha256": "a" * 64, "scores": [{"kind": "rotation", "share": 0.8, "chance": 0.25}]}
    path.write_text(json.dumps({"format": scores.FORMAT, "models": {"rotation": entry}}))
    assert scores.load(path, "rotation", "a" * 64) == entry
    assert scores.load(path, "rotation", "b" * 64) is None  # other weights
    assert scores.load(path, "rotation", None) is None  # the app does not know its weights
    assert scores.load(path, "jigsaw", "a" * 64) is None  # not in the report
    assert scores.load(tmp_path / "absent.json", "rotation", "a" * 64) is None
    path.write_text("{not json")
    assert scores.load(path, "rotation", "a" * 64) is None
    path.write_text(json.dumps({"format": "something-else/9", "models": {"rotation": entry}}))
    assert scores.load(path, "rotation", "a" * 64) is None


def _no_work(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("work started")

    monkeypatch.setattr(scores, "build", boom)
    monkeypatch.setattr(scores, "score_model", boom)
    monkeypatch.setattr(photos, "decoded", boom)


def test_cli_with_a_missing_models_folder_prints_one_line_and_exits_2_before_any_work(app_env, tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch)
    out = tmp_path / "out"
    rc = scores.main(["--models", str(tmp_path / "no-such-models"), "--data", str(app_env["data"]), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "no-such-models" in err
    assert not (out / scores.REPORT_JSON).exists()


def test_cli_as_a_module_with_a_missing_models_folder_exits_2_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "app.scores", "--models", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "does not exist" in r.stderr
    assert not (tmp_path / "o" / scores.REPORT_JSON).exists()


def test_cli_with_an_unwritable_out_exits_2_before_any_work(made_models, app_env, tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    rc = scores.main(["--models", str(made_models), "--data", str(app_env["data"]), "--out", str(blocker / "reports")])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "cannot write the report" in err


def test_cli_with_missing_photos_exits_2_before_any_work(made_models, tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch)
    rc = scores.main(["--models", str(made_models), "--data", str(tmp_path / "no-photos"), "--out", str(tmp_path / "o")])
    assert rc == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


# -- words and helpers -------------------------------------------------------------------------------------
def test_sentences_name_the_baseline_and_say_when_a_reconstruction_loses_to_it():
    sr = {"kind": "superres", "visible_db": 0.5, "model_psnr_db": 24.6, "baseline_psnr_db": 24.6, "share_beats_baseline": 0.0}
    assert "no visible gain over bicubic" in scores.sentence({"scores": [sr]})
    sr_good = dict(sr, model_psnr_db=25.6, share_beats_baseline=0.9)
    assert "no visible gain" not in scores.sentence({"scores": [sr_good]}) and "90 times in 100" in scores.sentence({"scores": [sr_good]})
    inp = {"kind": "inpainting", "model_rms_levels": 60.1, "baseline_rms_levels": 59.9, "share_beats_baseline": 0.49}
    assert "no better than the flat fill" in scores.sentence({"scores": [inp]})
    col = {"kind": "colorization", "model_rmse": 32.4, "baseline_rmse": 35.4, "share_beats_baseline": 0.58}
    assert "no better" not in scores.sentence({"scores": [col]}) and "58 times in 100" in scores.sentence({"scores": [col]})
    two = {"scores": [{"kind": "rotation", "head": "rotation_logits", "share": 0.69, "chance": 0.25},
                      {"kind": "jigsaw", "head": "jigsaw", "share": 0.5, "chance": 0.01, "tiles_in_place": 5.0, "tiles_in_place_chance": 1.0}]}
    assert scores.sentence(two).count("head:") == 2
    assert scores.times_in_100(0.804) == "80 times in 100" and scores.times_in_100(0.01) == "1 time in 100"
    assert scores.times_in_100(0.125) == "12.5 times in 100"


def test_puzzles_are_fixed_by_seed_and_photo_and_group_purity_counts_majorities():
    assert jigsaw.puzzle_permutation(0, 7, 100) == jigsaw.puzzle_permutation(0, 7, 100)
    assert len({jigsaw.puzzle_permutation(0, i, 100) for i in range(50)}) > 10
    groups = np.array([0, 0, 0, 1, 1])
    labels = np.array([2, 2, 1, 0, 1])
    assert deepcluster.group_purity(groups, labels) == pytest.approx(3 / 5)
    assert deepcluster.same_flower_rate(groups, labels) == pytest.approx(1 / 4)  # 1 same-flower pair of the 3 + 1 pairs


# -- every task ---------------------------------------------------------------------------------------------
def test_every_fixture_task_model_gets_a_score_with_its_baseline(made_task_models, app_env):
    got = {e.name: scores.score_model(e, app_env["data"], seed=0, limit=4) for e in list_models(made_task_models)}
    for name, e in got.items():
        if name == "random_init":
            continue
        assert e["skipped"] is None, (name, e["skipped"])
        assert scores.sentence(e), name
        for s in e["scores"]:
            for k in ("share", "share_beats_baseline", "purity"):
                if k in s:
                    assert 0.0 <= s[k] <= 1.0, (name, k, s[k])
    assert got["pirl"]["scores"][0]["gallery"] == 4 and got["pirl"]["scores"][0]["chance"] == pytest.approx(1 / 4)
    assert got["deepcluster"]["scores"][0]["chance"] == pytest.approx(1 / 5)
    assert [s["kind"] for s in got["multitask"]["scores"]][0] == "rotation"

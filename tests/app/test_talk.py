"""Talk mode through AppTest: every slide, with and without each optional model and report; the URL;
presenter mode; and the offline export."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app import state
from app.talk import story

from .conftest import page, texts

N = len(story.SLIDES)


def visuals(at) -> int:
    """Pictures and charts on the page."""
    return len(at.get("image")) + len(at.get("plotly_chart"))


def notes_shown(at) -> list[str]:
    return [w.value for w in at.warning if "Make it with" in w.value]


def step_all(at) -> list[dict]:
    """Press ▶ until the last slide; per slide its title, visuals, missing-notes and the URL's step."""
    seen = []
    for _ in range(N + 2):
        assert not at.exception, at.exception
        title = next(m.value for m in at.markdown if "talk-title" in m.value)
        seen.append({"title": title, "visuals": visuals(at), "missing": notes_shown(at), "step": at.query_params.get("step")})
        if at.button(key=state.TALK_NEXT).disabled:
            break
        at.button(key=state.TALK_NEXT).click().run()
    return seen


def learning_file(models: Path, name: str = "rotation", frames: int = 3) -> Path:
    """A learning.npz in the format ``ssl_train learning-map`` writes (coordinates of the fixture's test photos)."""
    from app import photos
    from app.config import data_dir

    idx = photos.index(data_dir())
    test = [i for i, t in enumerate(idx.is_test) if t]
    rng = np.random.default_rng(0)
    xy = rng.uniform(-1, 1, (frames, len(test), 2)).astype(np.float16)
    path = models / name / "learning.npz"
    np.savez_compressed(path, epochs=np.arange(frames, dtype=np.int16), xy=xy, labels=idx.labels[test].astype(np.int16),
                        classes=np.asarray(idx.classes), files=np.asarray([idx.files[i] for i in test]), meta=np.asarray(json.dumps({"format": "pretext-lab-learning/1"})))
    return path


def replay_file(reports: Path) -> Path:
    pts = lambda a: [{"step": s, "epoch": s / 10, "train_loss": None if s == 0 else 1.5 - a * s / 100, "test_accuracy": 0.2 + a * s / 200} for s in range(0, 101, 10)]
    doc = {"format": "pretext-lab-replay/1", "made_by": "test", "fraction": 0.1, "seed": 0, "n_labelled": 3, "n_test": 5, "image_size": 32,
           "encoder": "rotation", "seconds": 1.0, "device": "cpu",
           "arms": [{"name": "scratch", "label": "from scratch", "lr": 0.3, "final_test_accuracy": 0.45, "points": pts(0.5)},
                    {"name": "rotation", "label": "pretrained with rotation (no labels)", "lr": 0.3, "final_test_accuracy": 0.6, "points": pts(0.8)}]}
    path = reports / story.REPLAY_FILE
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def reports(app_env, tmp_path, monkeypatch) -> Path:
    """A private copy of the fixture reports (a test may add or remove files)."""
    dst = tmp_path / "reports"
    shutil.copytree(app_env["reports"], dst)
    monkeypatch.setenv("PRETEXT_LAB_REPORTS", str(dst))
    return dst


def test_talk__every_slide_steps_and_says_what_is_missing_with_only_rotation(app, reports):
    at = page(app, "talk")
    seen = step_all(at)
    assert all(sl.title in s["title"] for sl, s in zip(story.SLIDES, seen))
    assert len(seen) == N and [s["step"] for s in seen] == [str(k) for k in range(1, N + 1)]
    by_key = dict(zip([s.key for s in story.SLIDES], seen))
    # the fixture has rotation and random_init only, no learning map and no recorded fine-tune
    for key in ("questions", "learning", "replay"):
        assert by_key[key]["visuals"] == 0 and len(by_key[key]["missing"]) == 1, key
    assert "learning-map" in by_key["learning"]["missing"][0] and "ssl_train replay" in by_key["replay"]["missing"][0]
    for key in ("idea", "fraction", "headline", "caveats"):
        assert by_key[key]["visuals"] >= 1 and not by_key[key]["missing"], key
    at.button(key=state.TALK_PREV).click().run()
    assert at.query_params.get("step") == str(N - 1) and not at.exception


def test_talk__with_every_task_a_learning_map_and_a_recorded_fine_tune_every_slide_has_its_picture(task_app, task_models, reports):
    learning_file(task_models)
    replay_file(reports)
    at = page(task_app, "talk")
    seen = step_all(at)
    assert len(seen) == N
    assert all(s["visuals"] >= 1 and not s["missing"] for s in seen), [(s["title"][:40], s["visuals"], s["missing"]) for s in seen]


def test_talk__a_missing_report_is_one_line_and_the_talk_still_steps(app, reports):
    (reports / "protocol.json").unlink()
    at = page(app, "talk")
    seen = step_all(at)
    assert len(seen) == N
    by_key = dict(zip([s.key for s in story.SLIDES], seen))
    for key in ("headline", "caveats"):
        assert len(by_key[key]["missing"]) == 1 and "protocol.json" in by_key[key]["missing"][0]


@pytest.mark.parametrize("step, opened", [("3", 2), ("1", 0), (str(N), N - 1), ("99", 0), ("0", 0), ("abc", 0), ("-2", 0)])
def test_talk__step_in_the_url_opens_that_slide_and_an_unknown_one_the_first(app, step, opened):
    app.query_params["step"] = step
    at = page(app, "talk")
    assert not at.exception
    assert story.SLIDES[opened].title in next(m.value for m in at.markdown if "talk-title" in m.value)
    assert at.query_params.get("step") == str(opened + 1)


def test_talk__presenter_mode_from_the_url_hides_the_app_chrome_and_the_toggle_turns_it_off(app):
    app.query_params["present"] = "1"
    at = page(app, "talk")
    css = "\n".join(h.proto.body for h in at.get("html"))
    assert '[data-testid="stSidebar"]' in css and "display: none" in css
    assert at.toggle(key=state.TALK_PRESENT).value is True and at.query_params.get("present") == "1"
    at.toggle(key=state.TALK_PRESENT).set_value(False).run()
    css = "\n".join(h.proto.body for h in at.get("html"))
    assert '[data-testid="stSidebar"]' not in css and "present" not in at.query_params


def test_talk__speaker_notes_are_off_by_default_and_shown_by_the_toggle(app):
    at = page(app, "talk")
    assert not any("talk-notes" in m.value for m in at.markdown)
    at.toggle(key=state.TALK_NOTES).set_value(True).run()
    assert any("talk-notes" in m.value and "pretext task" in m.value for m in at.markdown)


def test_talk__slide_choices_redraw_the_picture(app):
    at = page(app, "talk")
    ck = f"{state.TALK_CHOICE}.idea"
    first = at.get("image")[0].proto.imgs[0].url
    at.segmented_control(key=ck).set_value(at.segmented_control(key=ck).options[2]).run()
    assert not at.exception and at.get("image")[0].proto.imgs[0].url != first


def test_talk_export__one_html_file_with_every_slide_and_no_server(models, reports, tmp_path, capsys):
    from app import talk_export

    out = tmp_path / "talk.html"
    assert talk_export.main(["--out", str(out)]) == 0
    doc = out.read_text()
    assert doc.count("<section ") == N and "data:image/jpeg;base64," in doc
    assert "Plotly.newPlot" in doc and doc.count("plotly.js v") <= 2  # plotly.js inline, once
    assert "http://" not in doc.split("<script")[0]  # nothing to fetch before the scripts
    assert talk_export.main(["--out", str(out)]) == 2  # exists: refused, kept
    assert "already exists" in capsys.readouterr().err and out.read_text() == doc


@pytest.mark.parametrize("where, message", [("missing-dir/talk.html", "does not exist"), (".", "is a folder")])
def test_talk_export__bad_out_is_refused_before_any_work(tmp_path, where, message, capsys):
    from app import talk_export

    rc = talk_export.main(["--out", str(tmp_path / where)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0]

"""Every page through Streamlit's AppTest: loads, reacts to widgets and uploads, degrades clearly."""
from __future__ import annotations

import dataclasses
import shutil
import time

import pytest

from app import state

from .conftest import break_file, fake_task, page, photo_bytes, texts

JPEG = "image/jpeg"


def image_captions(at) -> list[str]:
    """Captions of every st.image on the page."""
    return [i.caption for e in at.get("image") for i in e.proto.imgs]


# -- Pretext explorer ------------------------------------------------------------------------------
def choose(at, name: str):
    """Pick the model folder ``name`` in the explorer's task picker and rerun."""
    return at.segmented_control(key=state.EXPLORER_TASK).set_value(name).run()


def test_explorer__loads_with_bundled_photos_and_rotation_guesses_in_plain_words(app):
    at = app.run()
    assert not at.exception
    t = texts(at)
    assert "Pretext explorer" in t and "Which way is up?" in t and "turns right" in t and "auto-upright" in "\n".join(image_captions(at))
    assert "(guessing: 25)" in t  # the score, measured or the card's, with its chance level
    assert len(at.multiselect(key=state.EXPLORER_PICKS).value) == 2
    assert at.segmented_control(key=state.EXPLORER_TASK).options == ["Rotation", "No pretraining"]
    assert at.segmented_control(key=state.EXPLORER_TASK).value == "rotation"
    assert at.query_params["task"] in ("rotation", ["rotation"])


def test_explorer__rotation_limits_report_shown_only_beside_the_weights_it_measured(app, models, app_env, tmp_path, monkeypatch):
    import json

    card = json.loads((models / "rotation" / "model.json").read_text())
    reports = tmp_path / "reports"
    shutil.copytree(app_env["reports"], reports)
    monkeypatch.setenv("PRETEXT_LAB_REPORTS", str(reports))
    report = {"accuracy": 0.7, "errors_half_turn": 0.3, "weights_sha256": card["files"]["weights.safetensors"],
              "per_class": {"tulip": {"accuracy": 0.857}, "daisy": {"accuracy": 0.643}}, "accuracy_with_mirror": 0.723}
    (reports / "rotation-limits.json").write_text(json.dumps(report))
    at = app.run()
    assert not at.exception
    assert "Best on tulip (86%), worst on daisy (64%)" in texts(at)
    assert "judged with each view's mirror image too: 72.3%" in texts(at)
    (reports / "rotation-limits.json").write_text(json.dumps(report | {"weights_sha256": "0" * 64}))  # made from other weights
    at = app.run()
    assert not at.exception and "Why it errs" not in texts(at) and "72.3%" not in texts(at)


def test_explorer__upload_real_photo_and_bad_file_gives_one_error_and_a_prediction(app):
    at = app.run()
    name, data = photo_bytes("tulip")
    at.file_uploader(key=state.EXPLORER_UPLOADER).set_value([(name, data, JPEG), ("broken.jpg", b"this is not a photo", JPEG)]).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["broken.jpg\\: not an image \\(no photo format Pillow can read\\); upload a photo \\(JPEG, PNG, WebP, …\\)"]
    heads = [m.value for m in at.markdown if m.value.startswith("##### ")]
    assert heads[0].replace("\\", "").startswith(f"##### {name} — the model names") and len(heads) == 3  # the upload + the two bundled picks
    assert sum(" says " in m.value for m in at.markdown) == 4 * len(heads)


def test_explorer__turn_control_and_picks_change_the_page(app):
    at = app.run()
    at.segmented_control(key=state.EXPLORER_TURN).set_value(180).run()
    assert not at.exception and "auto-upright: turned 180°, then back by" in "\n".join(image_captions(at))
    at.multiselect(key=state.EXPLORER_PICKS).set_value([]).run()
    assert "Upload a photo or pick a bundled one" in texts(at)


def test_explorer__unknown_task_gets_the_generic_panel_and_broken_model_names_its_file(app, models):
    fake_task(models, "newtask")
    fake_task(models, "jigsaw")  # a jigsaw card without head.onnx
    shutil.copytree(models / "random_init", models / "broken")
    break_file(models / "broken", "weights.safetensors")
    at = app.run()
    assert not at.exception
    err = " ".join(e.value for e in at.error)
    assert "broken" in err and "weights.safetensors" in err and "regenerate" in err
    assert "Look-alikes" in at.segmented_control(key=state.EXPLORER_TASK).options
    choose(at, "newtask")
    assert not at.exception
    t = texts(at)
    assert "Which photos look alike to this model?" in t and "its closest photos are mostly" in t
    choose(at, "jigsaw")
    assert not at.exception
    assert any("jigsaw has no head.onnx" in w.value and "ssl\\_train export" in w.value for w in at.warning)


def test_explorer__only_the_chosen_task_is_computed(task_app, monkeypatch):
    from app import panels

    called: list[str] = []
    for task, panel in list(panels.load_all().items()):
        monkeypatch.setitem(panels.PANELS, task, dataclasses.replace(panel, show=lambda e, i, c, _t=task: called.append(_t)))
    at = task_app.run()
    assert not at.exception and called == ["rotation"]
    called.clear()
    choose(at, "superres")
    assert called == ["superres"]


@pytest.mark.parametrize("task", ["rotation", "jigsaw", "colorization", "context", "inpainting", "superres", "pirl", "simclr",
                                  "deepcluster", "multitask", "random_init"])
def test_explorer__every_task_shows_its_panel_in_plain_words(task_app, task):
    at = task_app.run()
    choose(at, task)
    assert not at.exception, at.exception
    assert not at.error and not at.warning, [e.value for e in [*at.error, *at.warning]]
    t = texts(at) + "\n".join(image_captions(at))
    expected = {
        "rotation": ["Which way is up?", " says "], "jigsaw": ["Put the puzzle back together", "the tiles in their true places"],
        "colorization": ["the model's colours", "than leaving the photo grey"], "context": ["Where does this piece go?", "(truth:"],
        "inpainting": ["the hole filled by the model", "the plain answer: one flat colour"],
        "superres": ["smooth enlargement (bicubic)", "what it changed"], "pirl": ["its shuffled version", "picks out its own photo"],
        "simclr": ["view 2", "picks out its own photo"], "deepcluster": ["Goes in **group", "two photos picked at random"],
        "multitask": ["Several questions at once", "**rotation** ×1", "Which way is up?"],
        "random_init": ["Random network", "pretrained without labels"],
    }[task]
    for words in expected:
        assert words in t, words
    in_expanders = "\n".join(str(e.value) for x in at.expander for kind in ("markdown", "caption") for e in getattr(x, kind))
    for jargon in ("ab_rmse", "hole_mse", "psnr", "PSNR", "RMSE", "permutation #", "RuntimeError", "Traceback"):
        assert t.count(jargon) == in_expanders.count(jargon), f"{jargon} outside the experts' details"


def test_explorer__multitask_runs_its_jigsaw_head_too(task_app):
    at = task_app.run()
    choose(at, "multitask")
    at.segmented_control(key=state.EXPLORER_SUBTASK).set_value("jigsaw").run()
    assert not at.exception and not at.error and not at.warning, [e.value for e in [*at.error, *at.warning]]
    t = texts(at) + "\n".join(image_captions(at))
    assert "Put the puzzle back together" in t and "the tiles in their true places" in t


def test_explorer__a_link_with_task_opens_that_panel(task_app):
    task_app.query_params["task"] = "colorization"
    at = task_app.run()
    assert not at.exception and "Colour this black-and-white photo" in texts(at)
    task_app.query_params["task"] = "no-such-model"
    at2 = task_app.run()
    assert not at2.exception


def test_explorer__header_reads_the_measured_score_only_for_the_weights_it_measured(task_app, task_models, app_env, tmp_path, monkeypatch):
    import json

    from app import scores

    reports = tmp_path / "reports"
    shutil.copytree(app_env["reports"], reports)
    monkeypatch.setenv("PRETEXT_LAB_REPORTS", str(reports))
    scores.write(scores.build(task_models, app_env["data"], only=["superres"]), reports)
    at = task_app.run()
    choose(at, "superres")
    t = texts(at)
    assert not at.exception and "on the test photos, which it never trained on: beats plain enlargement" in t
    in_expanders = "\n".join(str(e.value) for x in at.expander for e in x.markdown)
    assert "`python -m app.scores`" in in_expanders
    report = json.loads((reports / scores.REPORT_JSON).read_text())
    for m in report["models"].values():
        m["weights_sha256"] = "0" * 64  # as if measured on other weights
    (reports / scores.REPORT_JSON).write_text(json.dumps(report))
    at = task_app.run()
    choose(at, "superres")
    assert not at.exception and "beats plain enlargement" not in texts(at)


def test_explorer__puzzle_and_neighbour_controls_change_the_panels(task_app):
    at = task_app.run()
    choose(at, "context")
    at.segmented_control(key=state.EXPLORER_NEIGHBOUR).set_value("bottom").run()
    assert not at.exception and "(truth: bottom)" in texts(at)
    choose(at, "jigsaw")
    shuffles = set()
    for n in (1, 2, 3):
        at.number_input(key=state.EXPLORER_PUZZLE).set_value(n).run()
        assert not at.exception
        shuffles.add(" ".join(m.value for m in at.markdown if "Shuffle #" in m.value) + " ".join(c.value for c in at.caption if "Shuffle #" in c.value))
    assert len(shuffles) > 1


@pytest.mark.parametrize("name", ["explorer", "embeddings", "fewshot", "talk"])
def test_every_page__empty_models_folder_says_how_to_make_models(app, models, name):
    for d in list(models.iterdir()):
        shutil.rmtree(d)
    at = page(app, name)
    assert not at.exception
    if name != "talk":
        assert "No models to show" in at.warning[0].value and "ssl_train export" in texts(at)


# -- Embedding map ---------------------------------------------------------------------------------
def test_map__two_encoders_side_by_side_with_knn_accuracy(app):
    at = page(app, "embeddings")
    assert not at.exception, at.exception
    assert [m.label for m in at.metric if m.label == "kNN accuracy"] == ["kNN accuracy"] * 2
    assert at.selectbox(key=state.MAP_LEFT).value == "random_init" and at.selectbox(key=state.MAP_RIGHT).value == "rotation"
    at.selectbox(key=state.MAP_LEFT).set_value("rotation").run()
    assert not at.exception and len(at.get("plotly_chart")) == 2


def test_map__upload_is_placed_with_its_neighbours_and_bad_upload_is_one_error(app):
    at = page(app, "embeddings")
    name, data = photo_bytes("daisy")
    at.file_uploader(key=state.MAP_UPLOADER).set_value([(name, data, JPEG), ("half.jpg", data[:2000], JPEG)]).run()
    assert not at.exception
    assert len(at.error) == 1 and "half.jpg" in at.error[0].value and "truncated" in at.error[0].value
    assert sum("kNN vote" in m.value for m in at.markdown) == 2  # one per map


def test_map__uploads_from_the_explorer_are_reused_and_can_be_forgotten(app):
    at = app.run()
    at.file_uploader(key=state.EXPLORER_UPLOADER).set_value(photo_bytes("rose") + (JPEG,)).run()
    at.switch_page("views/embeddings.py").run()
    assert "you uploaded on *Pretext explorer*" in texts(at) and sum("kNN vote" in m.value for m in at.markdown) == 2
    at.button(key=f"{state.MAP_UPLOADER}.forget").click().run()
    assert not any("kNN vote" in m.value for m in at.markdown)


def test_map__stacked_view_draws_each_map_full_width_and_taller(app):
    import json

    at = page(app, "embeddings")
    side_by_side = [json.loads(c.proto.spec)["layout"]["height"] for c in at.get("plotly_chart")]
    at.segmented_control(key=state.MAP_VIEW).set_value("Stacked").run()
    stacked = [json.loads(c.proto.spec)["layout"]["height"] for c in at.get("plotly_chart")]
    assert not at.exception and len(stacked) == 2 and min(stacked) > max(side_by_side) >= 600


def test_map__selection_fills_the_gallery_with_class_counts_is_highlighted_on_both_maps_and_clears(app, app_env):
    import json

    from app import photos

    at = page(app, "embeddings")
    idx = photos.index(app_env["data"])
    test_files = {idx.classes[y]: f for f, y, t in zip(idx.files, idx.labels, idx.is_test) if t}  # one test photo per class here
    picked = [test_files["rose"], test_files["daisy"], test_files["tulip"]]
    at.session_state[state.MAP_SELECTION] = picked
    at.run()
    assert not at.exception, at.exception
    t = texts(at)
    assert "3 photos selected" in t
    for cls, word in (("daisy", "daisy"), ("rose", "rose"), ("tulip", "tulip")):
        assert f"1 of 3 selected is a {word}" in t
    assert "sunflower" not in "\n".join(m.value for m in at.markdown if "selected" in m.value)
    gallery = [e.proto.body for e in at.get("html") if "map-gallery" in e.proto.body]
    assert len(gallery) == 1 and gallery[0].count("<img ") == 3 and "more" not in gallery[0]
    assert all(f"rose · {picked[0].rsplit('/', 1)[-1]}" in g for g in gallery)
    # the same three photos are highlighted on both maps (their rim trace), whichever encoder draws them
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(specs) == 2 and all(any(tr.get("name") == "selected (3)" for tr in sp["data"]) for sp in specs)
    at.button(key=state.MAP_CLEAR).click().run()
    assert at.session_state[state.MAP_SELECTION] == [] and "selected" not in "".join(e.proto.body for e in at.get("html"))
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert not any(str(tr.get("name", "")).startswith("selected") for sp in specs for tr in sp["data"])


# -- Few-shot lab ----------------------------------------------------------------------------------
def test_fewshot__linear_probe_beside_scratch_follows_the_fraction_picker(app):
    at = page(app, "fewshot")
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert labels[0].startswith("rotation · ") and labels[1].startswith("scratch · ")
    n10 = int(labels[0].split("· ")[1].split()[0])
    picker = at.segmented_control(key=state.FEW_FRACTION)
    assert list(picker.options)[:6] == ["1%", "5%", "10%", "25%", "50%", "100%"] and picker.value == 10  # the protocol's six first
    picker.set_value(100).run()
    n100 = int(at.metric[0].label.split("· ")[1].split()[0])
    assert not at.exception and n100 > n10
    assert len(at.get("plotly_chart")) == 3  # two confusion matrices + the reference curve
    assert len(at.session_state[state.FEW_RESULTS]) == 4 and len(at.get("download_button")) == 2


def test_fewshot__finetune_runs_in_background_and_shows_both_scores(app, monkeypatch):
    from app import fewshot
    from ssl_train.evaluate import FinetuneConfig

    monkeypatch.setattr(fewshot, "finetune_config", lambda quick: FinetuneConfig(min_steps=5, max_steps=5, batch_size=8, device="cpu"))
    at = page(app, "fewshot")
    at.radio(key=state.FEW_MODE).set_value("finetune").run()
    assert "5 steps each" in texts(at)
    next(b for b in at.button if "Start fine-tuning" in b.label).click().run()
    job = at.session_state[state.FEW_JOB]
    assert job is not None
    job.join(120)
    at.run()
    assert not at.exception and job.state == "done", job.error
    assert [m.label.split(" · ")[0] for m in at.metric] == ["rotation", "scratch"]
    assert at.session_state[state.FEW_JOB] is None and "5 of 5 steps" in texts(at)


def test_fewshot__any_other_percent_through_other(app):
    at = page(app, "fewshot")
    at.segmented_control(key=state.FEW_FRACTION).set_value(fewshot_other()).run()
    at.number_input(key=state.FEW_FRACTION_OTHER).set_value(37).run()
    assert not at.exception
    n37 = int(at.metric[0].label.split("· ")[1].split()[0])
    assert any(abs(r.fraction - 0.37) < 1e-9 for r in at.session_state[state.FEW_RESULTS])  # a probe at 37 % was trained
    at.segmented_control(key=state.FEW_FRACTION).set_value(100).run()
    assert int(at.metric[0].label.split("· ")[1].split()[0]) > n37
    assert state.FEW_FRACTION_OTHER not in [n.key for n in at.number_input]  # the number input only with "other…"


def fewshot_other():
    from app.fewshot import OTHER

    return OTHER


def test_fewshot__classifies_an_uploaded_photo_and_refuses_a_bad_one(app):
    at = page(app, "fewshot")
    assert "MB per photo" in texts(at)  # the size limit is on the page, not only in a tooltip
    name, data = photo_bytes("sunflower")
    at.file_uploader(key=state.FEW_UPLOADER).set_value([(name, data, JPEG), ("empty.png", b"", "image/png")]).run()
    assert not at.exception
    assert len(at.error) == 1 and "empty.png" in at.error[0].value and "empty" in at.error[0].value
    df = at.dataframe[0].value  # replaced: the table now says whether each photo is like the training photos
    assert list(df.columns) == ["photo", "like the training photos?", "rotation", "scratch"] and df["photo"][0] == name
    captions = [i.caption for e in at.get("image") for i in e.proto.imgs]
    assert name in captions and any(c.startswith("nearest training photo") for c in captions)  # thumbnail, and the photo it is nearest


def test_fewshot__a_black_photo_gets_a_warning_not_a_label(app):
    import io

    from PIL import Image

    at = page(app, "fewshot")
    bio = io.BytesIO()
    Image.new("RGB", (120, 120)).save(bio, "PNG")
    at.file_uploader(key=state.FEW_UPLOADER).set_value([("black.png", bio.getvalue(), "image/png")]).run()
    assert not at.exception
    assert any("One flat colour" in w.value for w in at.warning)
    assert at.dataframe[0].value["like the training photos?"][0] == "no: one flat colour"
    assert any("would guess" in m.value for m in at.markdown)


# -- Talk mode: tests/app/test_talk.py ------------------------------------------------------------


def test_app__choices_survive_a_visit_to_another_page(app):
    at = page(app, "fewshot")
    at.segmented_control(key=state.FEW_FRACTION).set_value(50).run()
    at.radio(key=state.FEW_MODE).set_value("finetune").run()
    at.switch_page("views/explorer.py").run()
    at.segmented_control(key=state.EXPLORER_TURN).set_value(270).run()
    at.switch_page("views/fewshot.py").run()
    assert at.segmented_control(key=state.FEW_FRACTION).value == 50 and at.radio(key=state.FEW_MODE).value == "finetune"
    at.switch_page("views/explorer.py").run()
    assert at.segmented_control(key=state.EXPLORER_TURN).value == 270 and not at.exception


def test_featured_model__best_recorded_fine_tune_at_10pct_else_rotation():
    from pathlib import Path

    from app.inference import ModelEntry
    from app.ui import featured_model

    def entry(name, task, ft10=None):
        metrics = {"finetune": {"10%": {"mean": ft10}}} if ft10 is not None else {}
        return ModelEntry(name, Path(name), {"task": task, "metrics": metrics}, None)

    ref = entry("random_init", "random_init", 0.9)  # the reference is never featured
    assert featured_model([ref, entry("jigsaw", "jigsaw", 0.56), entry("rotation", "rotation", 0.63)]) == "rotation"
    assert featured_model([ref, entry("jigsaw", "jigsaw", 0.70), entry("rotation", "rotation", 0.63)]) == "jigsaw"
    assert featured_model([ref, entry("colorization", "colorization"), entry("rotation", "rotation")]) == "rotation"
    assert featured_model([entry("colorization", "colorization"), ModelEntry("broken", Path("b"), None, "bad")]) == "colorization"
    assert featured_model([ref]) is None


def test_featured_model__map_features_best_knn_not_best_fine_tune():
    from pathlib import Path

    from app.inference import ModelEntry
    from app.ui import featured_model

    def entry(name, ft10, knn10):
        return ModelEntry(name, Path(name), {"task": name, "metrics": {"finetune": {"10%": {"mean": ft10}}, "knn": {"10%": {"mean": knn10}}}}, None)

    models = [entry("rotation", 0.63, 0.44), entry("pirl", 0.61, 0.53)]
    assert featured_model(models) == "rotation" and featured_model(models, method="knn") == "pirl"

"""The shipped results agree with each other: docs/results.md's results block and the README's
headline block are what ``reports/protocol.json`` writes, and every model card's metrics are that
report's numbers."""
from __future__ import annotations

import json

import pytest

from ssl_train.protocol import SCRATCH, summarize
from ssl_train.release import card_metrics
from ssl_train.report import HEADLINE_START, START, headline_block, results_block

from ..conftest import REPO
from .test_shipped_models import MODELS, SHIPPED

REPORT = REPO / "reports" / "protocol.json"


def _report() -> dict:
    return json.loads(REPORT.read_text())


def test_results_page__results_block_is_what_the_report_writes():
    block = results_block(_report(), "../reports/protocol.png")
    text = (REPO / "docs" / "results.md").read_text()
    assert block in text, "docs/results.md's results block is stale: run `python -m ssl_train report`"
    assert text.count(START) == 1
    assert (REPO / "reports" / "protocol.png").stat().st_size > 10_000


def test_readme__headline_block_is_what_the_report_writes():
    block = headline_block(_report(), "reports/protocol.png", "docs/results.md")
    text = (REPO / "README.md").read_text()
    assert block in text, "README's headline block is stale: run `python -m ssl_train report`"
    assert text.count(HEADLINE_START) == 1 and START not in text  # one table in the README; the rest in docs/results.md


def test_report__summary_is_the_summary_of_its_runs():
    from ssl_train.protocol import _round_floats

    rep = _report()
    assert rep["summary"] == _round_floats(summarize(rep["runs"]))  # stored with the entries' 6 significant digits


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model__card_metrics_are_the_reports(name):
    card = json.loads((MODELS / name / "model.json").read_text())
    rep = _report()
    expected = card_metrics(rep["summary"], SCRATCH if name == "random_init" else name)
    assert expected, f"{name} has no rows in {REPORT.name}"
    for mode, by_fraction in expected.items():
        assert card["metrics"][mode] == by_fraction, (name, mode)
    if name != "random_init":  # the untrained reference saw no photo
        assert card["split_sha256"] == rep["split_sha256"]  # trained on the split the report tests on


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model__card_says_the_photo_size_of_each_metric(name):
    card = json.loads((MODELS / name / "model.json").read_text())
    m = card["metrics"]
    down = _report()["config"]["data"]["image_size"]
    assert m["downstream_image_size"] == down
    assert m["measured_at_px"] == {"finetune": down, "linear": down, "knn": down, "stored_weights_check": down,
                                   "pretext_test": card["input"]["image_size"]}

"""reports/protocol.json → figure, tables, docs/results.md's results block and the README's headline block (all read from the JSON)."""
from __future__ import annotations

import json
from pathlib import Path

from ssl_train.report import (
    END, HEADLINE_END, HEADLINE_START, START, at_fraction_markdown, gains_markdown, headline_markdown, paired_gain, pretext_metric,
    table_markdown, write_reports,
)


def _report() -> dict:
    runs = [
        {"task": t, "mode": m, "fraction": f, "seed": s, "test_accuracy": base + 0.1 * f + 0.01 * s}
        for t, base in (("scratch", 0.40), ("rotation", 0.50), ("jigsaw", 0.55))
        for m in ("finetune", "knn") for f in (0.1, 1.0) for s in (0, 1, 2)
    ]
    return {
        "runs": runs, "n_test": 696, "n_train": 2783, "device": "cpu (2 cores, x86_64)", "wall_seconds": 120.0,
        "command": "python -m ssl_train release --epochs 15",
        "pretraining": {
            "rotation": {"epochs": 15, "train_seconds_total": 450.0, "pretext_test": {"loss": 0.9, "acc": 0.655}},
            "jigsaw": {"epochs": 15, "train_seconds_total": 90.0, "pretext_test": {"loss": 2.0, "acc": 0.4}},
        },
    }


def test_table__cells_are_mean_and_sample_std_of_the_seeds():
    md = table_markdown(_report())
    # rotation fine-tune at 10%: 0.51, 0.52, 0.53 → 52.0 ± 1.0
    assert "| rotation | fine-tune | 52.0 ± 1.0 | 61.0 ± 1.0 |" in md
    assert "mean ± std over seeds [0, 1, 2]" in md


def test_at_fraction__best_fine_tune_first_with_gain_over_scratch():
    lines = at_fraction_markdown(_report(), 0.1).splitlines()[2:]
    assert [ln.split("|")[1].strip() for ln in lines] == ["jigsaw", "rotation", "scratch (random init)"]
    assert lines[0].rstrip().endswith("| +15.0 ± 0.0 |") and "40.0% acc" in lines[0]
    assert lines[2].rstrip().endswith("| – |")


def test_paired_gain__differences_taken_seed_by_seed():
    runs = [
        {"task": "scratch", "mode": "finetune", "fraction": 0.1, "seed": s, "test_accuracy": a} for s, a in enumerate((0.40, 0.50, 0.60))
    ] + [
        {"task": "rotation", "mode": "finetune", "fraction": 0.1, "seed": s, "test_accuracy": a} for s, a in enumerate((0.45, 0.56, 0.67))
    ] + [{"task": "rotation", "mode": "finetune", "fraction": 1.0, "seed": 0, "test_accuracy": 0.9}]  # no scratch to pair with
    ((f, mean, std, n),) = paired_gain(runs, "rotation")
    # unpaired the seeds' spread (std 10 points) would swamp the gain; paired it is 5, 6, 7 points
    assert f == 0.1 and n == 3 and abs(mean - 0.06) < 1e-9 and abs(std - 0.01) < 1e-9


def test_gains__every_encoder_minus_scratch_per_fraction_and_method_paired_by_seed():
    md = gains_markdown(_report())
    assert md.splitlines()[0] == "| encoder | method | 10% | 100% |"
    # jigsaw − scratch = 0.15 at every seed and fraction; rotation 0.10; kNN rows too, no scratch row
    assert "| jigsaw | fine-tune | +15.0 ± 0.0 | +15.0 ± 0.0 |" in md and "| rotation | kNN (k=20) | +10.0 ± 0.0 | +10.0 ± 0.0 |" in md
    assert "| scratch |" not in md and len(md.splitlines()) == 2 + 2 * 2


def test_pretext_metric__accuracy_else_other_metric_else_loss():
    assert pretext_metric({"loss": 1.0, "acc": 0.5}) == "50.0% acc"
    assert pretext_metric({"loss": 0.01, "psnr": 24.13}) == "24.1 psnr"
    assert pretext_metric({"loss": 0.25}) == "0.250 loss"
    assert pretext_metric(None) == "–"


def test_headline__fine_tune_gain_and_knn_at_ten_percent_best_fine_tune_first():
    md = headline_markdown(_report()).splitlines()
    assert md[0] == "| encoder | fine-tune | gain over scratch | kNN |"
    # jigsaw fine-tune at 10%: 0.56, 0.57, 0.58 → 57.0 ± 1.0, 15 points over scratch at every seed; kNN the same numbers
    assert md[2:] == ["| jigsaw | 57.0 ± 1.0 | +15.0 ± 0.0 | 57.0 ± 1.0 |", "| rotation | 52.0 ± 1.0 | +10.0 ± 0.0 | 52.0 ± 1.0 |",
                      "| scratch (random init) | 42.0 ± 1.0 | – | 42.0 ± 1.0 |"]


def test_write_reports__replaces_only_the_blocks_of_the_readme_and_the_results_page(tmp_path):
    path = tmp_path / "reports" / "protocol.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_report()))
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nintro\n\n{HEADLINE_START}\nold headline\n{HEADLINE_END}\n\n## After\nkept\n")
    page = tmp_path / "docs" / "results.md"
    page.parent.mkdir()
    page.write_text(f"# Results\n\nabove\n\n{START}\nold numbers\n{END}\n\n## Reading it\nkept too\n")
    written = write_reports(path, readme)
    assert written["readme"] == readme and written["results"] == page
    text = readme.read_text()
    assert text.startswith("# Title\n\nintro\n\n") and text.endswith("## After\nkept\n") and "old headline" not in text
    assert "![test accuracy vs labelled fraction](reports/protocol.png)" in text
    assert "| jigsaw | 57.0 ± 1.0 | +15.0 ± 0.0 | 57.0 ± 1.0 |" in text and "[docs/results.md](docs/results.md)" in text
    assert "the protocol's 36 runs" in text and "Every fraction:" not in text  # one table in the README
    page_text = page.read_text()
    assert page_text.startswith("# Results\n\nabove\n\n") and page_text.endswith("## Reading it\nkept too\n") and "old numbers" not in page_text
    assert "![test accuracy vs labelled fraction](../reports/protocol.png)" in page_text
    assert "Made by `python -m ssl_train release --epochs 15`" in page_text
    assert "the protocol's 36 runs took" in page_text and "Every fraction:" in page_text
    assert written["figure"].stat().st_size > 10_000 and (tmp_path / "reports" / "protocol.md").is_file()


def test_write_reports__without_a_readme_touches_neither_file(tmp_path):
    path = tmp_path / "protocol.json"
    path.write_text(json.dumps(_report()))
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "results.md"
    page.write_text(f"{START}\nold numbers\n{END}\n")
    written = write_reports(path, None)
    assert set(written) == {"figure", "table"} and page.read_text() == f"{START}\nold numbers\n{END}\n"
    assert (tmp_path / "protocol.md").read_text().startswith("![test accuracy vs labelled fraction](protocol.png)")


def test_lr_line__names_each_arms_rate_or_the_shared_one():
    from ssl_train.report import lr_line

    per = _report() | {"config": {"finetune": {"lr": 0.03}, "finetune_lr": {"rotation": 0.03, "scratch": 0.3}}}
    line = lr_line(per)
    assert "scratch 0.3, rotation 0.03" in line and "validation split" in line
    assert "same learning rate (0.03)" in lr_line(_report() | {"config": {"finetune": {"lr": 0.03}}})
    assert lr_line(_report()) == ""  # no config: say nothing rather than guess


def test_signed__a_gain_that_rounds_to_zero_is_plus_zero_whichever_side_noise_fell():
    from ssl_train.report import _signed

    assert [_signed(x) for x in (1.44, -0.8, -1e-9, 0.0, -0.04, 0.04)] == ["+1.4", "-0.8", "+0.0", "+0.0", "+0.0", "+0.0"]


def test_figure__each_task_in_its_palette_colour_scratch_grey_and_dashed():
    """The protocol figure takes its colours from ``ssl_train.palette`` (as the app does), not tab10."""
    from matplotlib import pyplot as plt
    from matplotlib.colors import to_hex

    from ssl_train.palette import SCRATCH, encoder_colour
    from ssl_train.report import draw_figure

    fig = draw_figure(_report())
    try:
        lines = [ln for ax in fig.axes for ln in ax.get_lines() if not ln.get_label().startswith("_")]
        assert {ln.get_label() for ln in lines} == {"scratch", "rotation", "jigsaw"}
        for ln in lines:
            want = SCRATCH if ln.get_label() == "scratch" else encoder_colour(ln.get_label())
            assert to_hex(ln.get_color()).lower() == want.lower(), ln.get_label()
            assert ln.get_linestyle() == ("--" if ln.get_label() == "scratch" else "-")
        # every panel drew its lines: fine-tune and kNN (3 encoders each) and the gain panel (2)
        assert len(lines) == 3 + 3 + 2
    finally:
        plt.close(fig)


def test_save_figure__the_64_colour_png_keeps_each_line_colour_and_the_white_page(tmp_path):
    """A plain median cut merged Tol's red and orange (and tinted the page grey): the lines' colours stay exact."""
    from PIL import Image

    from ssl_train.palette import SCRATCH, encoder_colour
    from ssl_train.report import draw_figure, save_figure

    save_figure(draw_figure(_report()), tmp_path / "f.png")
    with Image.open(tmp_path / "f.png") as im:
        assert im.mode == "P" and len(im.getpalette()) <= 3 * 64
        rgb = im.convert("RGB")
    colours = {c for _, c in rgb.getcolors(64)}
    assert rgb.getpixel((2, 2)) == (255, 255, 255)
    for hexc in (SCRATCH, encoder_colour("rotation"), encoder_colour("jigsaw")):
        assert tuple(int(hexc[i : i + 2], 16) for i in (1, 3, 5)) in colours, hexc


def test_write_reports__a_compressed_study_report_regenerates_its_table_and_figure_beside_it(tmp_path):
    import shutil

    from ssl_train.report import write_reports

    repo_reports = Path(__file__).resolve().parents[2] / "reports"
    src = tmp_path / "protocol-15ep.json.gz"
    shutil.copy(repo_reports / "protocol-15ep.json.gz", src)
    written = write_reports(src)
    assert written["figure"] == tmp_path / "protocol-15ep.png" and written["table"] == tmp_path / "protocol-15ep.md"
    assert written["table"].read_text() == (repo_reports / "protocol-15ep.md").read_text()  # the committed table is this command's output
    assert written["figure"].stat().st_size > 10_000

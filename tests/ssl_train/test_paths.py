"""paths.portable: what lies inside the repository is written relative to it."""
from __future__ import annotations

from pathlib import Path

from ssl_train.paths import REPO, portable


def test_portable__paths_inside_the_repo_become_relative_also_inside_a_command():
    root = Path("/home/alice/lab")
    card = {"data": {"root": "/home/alice/lab/data/flowers", "image_size": 96},
            "regenerate": "python -m ssl_train export --checkpoint /home/alice/lab/runs/r-1/checkpoint.safetensors --out /home/alice/lab/models",
            "runs": ["/home/alice/lab", "/home/alice/lab/"], "n": 3}
    out = portable(card, root)
    assert out["data"] == {"root": "data/flowers", "image_size": 96}
    assert out["regenerate"] == "python -m ssl_train export --checkpoint runs/r-1/checkpoint.safetensors --out models"
    assert out["runs"] == [".", ""] and out["n"] == 3
    assert portable(out, root) == out  # idempotent


def test_portable__paths_outside_or_merely_containing_the_repo_are_kept():
    root = Path("/home/alice/lab")
    kept = ["/home/alice/lab2/data", "/tmp/home/alice/lab/x", "/home/alice/laboratory", "my_photos", "/data/photos"]
    assert portable(kept, root) == kept


def test_portable__the_shipped_cards_name_no_absolute_path_of_the_machine_that_made_them():
    for card in sorted((REPO / "models").glob("*/model.json")):
        text = card.read_text()
        assert '"/' not in text.replace('"/"', ""), f"{card} records an absolute path"


def test_entry_hash__a_report_written_with_relative_paths_still_recognises_its_entries():
    from ssl_train.protocol import entry_hash

    config = {"data": {"root": str(REPO / "data" / "flowers"), "split_file": ""}, "pretrain": {"epochs": 30},
              "finetune": {"lr": 0.1, "epochs": 30, "min_steps": 100, "max_steps": 2000}, "encoder": {"name": "resnet_compact"}}
    written = portable(config)
    assert written["data"]["root"] == "data/flowers"
    for mode in ("finetune", "knn"):
        assert entry_hash(written, "s", "rotation", mode) == entry_hash(config, "s", "rotation", mode)
    elsewhere = {**config, "data": {"root": "/somewhere/else/flowers", "split_file": ""}}
    assert entry_hash(elsewhere, "s", "rotation", "knn") != entry_hash(config, "s", "rotation", "knn")

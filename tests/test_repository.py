"""The tracked repository stays within its clone budget (people clone it; the device tool carries at most 64 MiB)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRACKED_BUDGET_MB = 55.0


def test_repository__tracked_files_within_the_55_mb_budget():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    files = [REPO / f for f in out.decode().split("\0") if f]
    total = sum(p.stat().st_size for p in files if p.is_file())
    assert total / 1e6 < TRACKED_BUDGET_MB, f"tracked files are {total / 1e6:.2f} MB ≥ {TRACKED_BUDGET_MB} MB: shrink reports/ or models/"


def test_pyproject__console_script_exists_and_every_requirement_is_a_dependency():
    import importlib
    import re
    import tomllib

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    module, func = meta["scripts"]["pretext-lab"].split(":")
    assert callable(getattr(importlib.import_module(module), func))
    name = lambda req: re.split(r"[=<>!~\[ ]", req.strip(), maxsplit=1)[0].lower()
    pinned = {name(x) for x in (REPO / "requirements.txt").read_text().splitlines() if x.strip() and not x.startswith("#")}
    assert pinned == {name(d) for d in meta["dependencies"]}
    assert "torch==2.13.0" in meta["dependencies"]  # never a bare torch: it pulls the CUDA wheels

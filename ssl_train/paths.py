"""Where the repository is, and paths written into cards and reports relative to it.

Cards (``models/*/model.json``) and reports are read on other machines: an absolute path such as
``/home/alice/pretext-lab/data/flowers`` says nothing there and leaks where it was made. What lies
inside the repository is therefore recorded relative to its root (``data/flowers``,
``runs/rotation-…/checkpoint.safetensors``) — the form every command in the README is run from.
Paths outside it are kept as they are. In-memory configs stay absolute; only what is written (and
what the protocol hashes to recognise its own entries) goes through ``portable``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def portable(obj: Any, root: Path = REPO) -> Any:
    """``obj`` (JSON-like: dicts, lists, strings, numbers) with every absolute path under ``root``
    written relative to it, also inside longer strings such as a command line; ``root`` itself
    becomes ``.``. Idempotent: a portable object is returned unchanged."""
    base = str(root).rstrip("/")
    # the root only where a path starts: not inside another path that merely contains it
    pattern = re.compile(r"(?<![\w./~-])" + re.escape(base) + r"(?:/|(?![\w.-]))")

    def fix(x: Any) -> Any:
        if isinstance(x, str):
            return pattern.sub(lambda m: "" if m.group(0).endswith("/") else ".", x)
        if isinstance(x, dict):
            return {k: fix(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [fix(v) for v in x]
        return x

    return fix(obj)


def check_output(path: str | Path, what: str = "--out", folder: bool = False, overwrite: bool = True) -> Path:
    """Refuse, before any work, an output that cannot be written: one of its parents is a file, the
    nearest existing parent is not writable (``/sys``, a read-only mount), it is a folder where a
    file is wanted (or the reverse), or it exists and ``overwrite`` is False. Raises UserError with
    one line saying what to do; returns the path."""
    from .errors import UserError

    p = Path(path)
    if p.exists():
        if folder and not p.is_dir():
            raise UserError(f"{what} {p} is a file, not a folder; choose a folder name")
        if not folder and p.is_dir():
            raise UserError(f"{what} {p} is a folder; give a file name inside it")
        if not overwrite:
            raise UserError(f"{what} {p} already exists; pass --overwrite to replace it, or choose another {what}")
    parent = p if folder and p.is_dir() else p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{what} {p}: {parent} is a file, not a folder; choose another {what}")
    import shutil
    import tempfile

    try:  # a real probe: os.access says yes to root even where nothing can be created (/sys, read-only mounts)
        shutil.rmtree(tempfile.mkdtemp(prefix=".pretext-probe-", dir=parent))
    except OSError:
        raise UserError(f"{what} {p}: {parent} is not writable; choose a folder you can write to") from None
    return p


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write the report ``obj`` to ``path`` as compact JSON with repository paths relative
    (``portable``), through a temporary file and ``os.replace``: a killed command never leaves
    half a report. Compact, because the tracked repository has a size budget and a report holds
    hundreds of runs (indenting made it 60% larger)."""
    import json
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(portable(obj), separators=(",", ":")))
    os.replace(tmp, path)

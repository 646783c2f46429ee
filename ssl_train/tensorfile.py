"""Safetensors files written byte for byte the same for the same tensors and metadata.

safetensors serialises its metadata from a Rust ``HashMap``, so a file with two or more metadata
keys comes out with those keys in a random order, a different sha256 each time. Model cards verify
weights by sha256 and a seeded rerun must reproduce a shipped file exactly, so the metadata object
is rewritten with its keys sorted (same bytes, same length: only the order changes)."""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch


def canonical_bytes(data: bytes) -> bytes:
    """``data`` (a whole safetensors file) with its ``__metadata__`` keys in sorted order."""
    (n,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + n]
    meta = json.loads(header).get("__metadata__")
    if not meta or len(meta) < 2:
        return data
    as_written = json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode()
    if header.count(as_written) != 1:  # serde's escaping differs from json.dumps: leave the file as it is
        return data
    ordered = json.dumps(dict(sorted(meta.items())), separators=(",", ":"), ensure_ascii=False).encode()
    return data[:8] + header.replace(as_written, ordered) + data[8 + n :]


def save(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """``safetensors.torch.save_file`` with reproducible bytes (see the module docstring)."""
    from safetensors.torch import save as to_bytes

    Path(path).write_bytes(canonical_bytes(to_bytes(tensors, metadata=metadata)))

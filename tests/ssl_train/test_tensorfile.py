import hashlib
import json
import struct

import torch
from safetensors import safe_open

from ssl_train import tensorfile


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_save__same_tensors_and_metadata_give_the_same_bytes_every_time(tmp_path):
    # safetensors writes metadata from a Rust HashMap: without sorting, the key order (so the sha256) varies
    tensors = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(4, dtype=torch.int8)}
    meta = {"task": "t", "format": "f/1", "image_size": "96", "zeta": "z", "alpha": "α"}
    shas = set()
    for i in range(12):
        tensorfile.save(tensors, tmp_path / f"{i}.safetensors", metadata=meta)
        shas.add(_sha(tmp_path / f"{i}.safetensors"))
    assert len(shas) == 1
    with safe_open(str(tmp_path / "0.safetensors"), "pt") as f:
        assert f.metadata() == meta
        assert torch.equal(f.get_tensor("b"), tensors["b"])
    raw = (tmp_path / "0.safetensors").read_bytes()
    header = json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])
    assert list(header["__metadata__"]) == sorted(meta)  # safe_open's own dict is unordered again

"""Task tests use tiny tensors: one intra-op thread is faster than two (no thread hand-off on
small ops) and leaves a core free; the previous setting is restored after each test."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

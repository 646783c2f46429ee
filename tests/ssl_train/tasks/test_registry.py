"""The task registry: every task module registers, unknown names list the registered ones."""
from __future__ import annotations

import pytest

from ssl_train.errors import UserError
from ssl_train.tasks import TASKS, get_task, load_all, task_names

EXPECTED = {"rotation", "jigsaw", "colorization", "context", "inpainting", "superres", "pirl", "deepcluster", "multitask"}


def test_registry__every_task_module_registers():
    load_all()
    assert EXPECTED <= set(TASKS)
    assert task_names() == sorted(TASKS)
    for name, cls in TASKS.items():
        assert cls.name == name and cls.kind in ("classification", "reconstruction")


def test_registry__unknown_task_error_lists_registered_names():
    with pytest.raises(UserError) as e:
        get_task("jigsaww")
    msg = str(e.value)
    assert "'jigsaww'" in msg and "\n" not in msg
    for name in EXPECTED:
        assert name in msg


def test_registry__unknown_option_names_the_known_ones():
    with pytest.raises(UserError, match="n_permutations"):
        get_task("jigsaw", {"n_perms": "5"})
    with pytest.raises(UserError, match="not a valid int"):
        get_task("jigsaw", {"n_permutations": "many"})

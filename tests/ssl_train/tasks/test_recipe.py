"""Each task declares its recipe: what its shipped encoder is pretrained with and which report chose it."""
from __future__ import annotations

from pathlib import Path

import pytest

from ssl_train.errors import UserError
from ssl_train.tasks import TASKS, Recipe, get_task, load_all, recipe_of

REPO = Path(__file__).resolve().parents[3]


def test_recipe__every_registered_task_has_one_and_its_choices_name_a_shipped_report():
    load_all()
    for name, cls in TASKS.items():
        r = cls.recipe
        assert isinstance(r, Recipe) and recipe_of(name) is r
        for field in ("epochs", "batch_size", "image_size", "options"):
            where = getattr(r, f"{field}_chosen_in")
            if getattr(r, field):
                assert where, f"{name}: its recipe sets {field} without {field}_chosen_in (the report that chose it)"
                assert (REPO / where).is_file(), f"{name}: {field} chosen in {where}, which is not in the repository"
        get_task(name, dict(r.options)).config.validate(r.image_size or 96)  # options and photo size the task accepts


def test_recipe__a_task_without_one_gets_the_common_settings():
    assert Recipe() == Recipe(None, None, None, ())
    with pytest.raises(UserError, match="unknown task 'nope'"):
        recipe_of("nope")


@pytest.mark.parametrize("kw,msg", [({"epochs": 0, "epochs_chosen_in": "r.md"}, "epochs=0"), ({"batch_size": 1, "batch_size_chosen_in": "r.md"}, "≥ 2"),
                                    ({"options": (("grid",),), "options_chosen_in": "r.md"}, "pairs")])
def test_recipe__bad_values_are_refused(kw, msg):
    with pytest.raises(ValueError, match=msg):
        Recipe(**kw)

"""Every explorer panel on every model shipped in models/, through Streamlit's AppTest with the
bundled photos (real models, real photos; nothing is written outside a temporary cache)."""
from __future__ import annotations

import pytest

from app import state

from ..app.conftest import APP
from ..conftest import FLOWERS, REPO

MODELS = REPO / "models"
SHIPPED = sorted(p.name for p in MODELS.iterdir() if (p / "model.json").is_file()) if MODELS.is_dir() else []
JARGON = ("ab_rmse", "hole_mse", "psnr", "PSNR", "RuntimeError", "Traceback")


@pytest.fixture(scope="module")
def shipped_app(tmp_path_factory):
    """One AppTest over models/ and data/flowers (the repository's reports), run once."""
    from streamlit.testing.v1 import AppTest

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRETEXT_LAB_MODELS", str(MODELS))
        mp.setenv("PRETEXT_LAB_DATA", str(FLOWERS))
        mp.setenv("PRETEXT_LAB_REPORTS", str(REPO / "reports"))
        at = AppTest.from_file(str(APP), default_timeout=300)
        at.run()
        yield at, mp


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_panel__runs_on_bundled_photos_with_no_error_and_plain_words_first(shipped_app, name):
    at, _ = shipped_app
    at.segmented_control(key=state.EXPLORER_TASK).set_value(name).run()
    assert not at.exception, at.exception
    assert not at.error and not at.warning, [e.value for e in [*at.error, *at.warning]]
    shown = [str(e.value) for kind in ("markdown", "caption", "info") for e in at.get(kind)]
    in_expanders = [str(e.value) for x in at.expander for kind in ("markdown", "caption") for e in getattr(x, kind)]
    outside = "\n".join(shown)
    for jargon in JARGON:
        assert outside.count(jargon) == "\n".join(in_expanders).count(jargon), f"{jargon} outside the experts' details"
    assert any(m.startswith("### ") for m in shown)  # the panel's question as its heading
    assert sum(m.startswith("##### ") for m in shown) >= 2  # an answer box per bundled photo

"""Pretext Lab app: ``streamlit run app/streamlit_app.py`` from the repository root.

This file only sets the page up and routes; each page is a thin module in ``app/views/``.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run` puts app/ first on sys.path, not the repository
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import state  # noqa: E402
from app.config import data_dir, display, models_dir  # noqa: E402

st.set_page_config(page_title="Pretext Lab", page_icon="🌼", layout="wide", initial_sidebar_state="expanded")
state.init(st.session_state)

PAGES = [
    st.Page("views/explorer.py", title="Pretext explorer", icon=":material/rotate_right:", default=True),
    st.Page("views/embeddings.py", title="Embedding map", icon=":material/scatter_plot:"),
    st.Page("views/fewshot.py", title="Few-shot lab", icon=":material/science:"),
    st.Page("views/talk.py", title="Talk mode", icon=":material/co_present:"),
]
page = st.navigation(PAGES)
with st.sidebar:
    st.caption(
        "Self-supervised pretext tasks on flower photos: what a model learns without labels, and what it buys when labels are few. "
        f"Models from `{display(models_dir())}`, photos from `{display(data_dir())}`."
    )
page.run()

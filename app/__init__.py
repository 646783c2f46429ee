"""Pretext Lab's Streamlit app: ``streamlit run app/streamlit_app.py``.

Pages live in ``app/views/`` (thin: widgets and layout only); compute lives in plain modules that
import no Streamlit (``inference``, ``uploads``, ``embedding``, ``fewshot``, ``reference``), caches
and shared widgets in ``ui``, every session-state key in ``state``, paths in ``config``.
"""

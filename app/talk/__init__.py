"""Talk mode's content: the pictures and charts of each slide, built from the shipped models, the
bundled photos and the reports (pure compute, no Streamlit), for the page and the offline export."""

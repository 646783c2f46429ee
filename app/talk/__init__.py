"""Talk mode's content: the pictures and charts of each slide, built from the shipped models, the
bundled photos and the reports (pure compute, no Streamlit), for the page and the offline export."""


from app.config import PROTAGONIST  # the talk's story follows this task: slide 1's model, the headline's second line, the first learning map

__all__ = ["PROTAGONIST", "Missing"]


class Missing(Exception):
    """A slide's input is missing or unreadable: ``what`` (one line) and ``command``, the command that
    makes or restores it; ``str(e)`` is ``"{what} — {command}"``. The slide shows that line instead."""

    def __init__(self, what: str, command: str):
        super().__init__(f"{what} — {command}")
        self.what, self.command = what, command

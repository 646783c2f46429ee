"""Every ``st.session_state`` key the app uses, with its default, in one place.

Session state is per browser session: what one person uploads or trains is never seen by another
(trained models live here, not in Streamlit's shared caches).
"""
from __future__ import annotations

from typing import Any

# -- shared by all pages ----------------------------------------------------------------------------
UPLOADS = "uploads"  # {"photos": [UploadedPhoto], "page": title of the page they were uploaded on}

# -- Pretext explorer ---------------------------------------------------------------------------------
EXPLORER_UPLOADER = "explorer.uploader"
EXPLORER_TASK = "explorer.task"  # the model folder whose panel is on screen (only that one is computed)
EXPLORER_TASK_FROM_URL = "explorer.task_from_url"  # True once ?task= has opened its task in this session
EXPLORER_SUBTASK = "explorer.subtask"  # a multi-task model: the sub-task shown
EXPLORER_PICKS = "explorer.picks"  # bundled photo files (relative to the data folder)
EXPLORER_TURN = "explorer.turn"  # how far to turn a bundled photo before auto-upright, degrees
EXPLORER_PUZZLE = "explorer.puzzle"  # puzzle number: picks the jigsaw / PIRL shuffles and the SimCLR views (int ≥ 0)
EXPLORER_NEIGHBOUR = "explorer.neighbour"  # context prediction: the neighbour position shown in detail

# -- Embedding map ------------------------------------------------------------------------------------
MAP_UPLOADER = "map.uploader"
MAP_LEFT = "map.left"  # model name of the left map
MAP_RIGHT = "map.right"
MAP_EXACT = "map.exact"  # place uploads with umap's transform (fits UMAP in this server once)
MAP_VIEW = "map.view"  # "Side by side" | "Stacked": the two maps in two columns, or each full width
MAP_SELECTION = "map.selection"  # [photo file] picked on either map (box, lasso or click), highlighted on both
MAP_SELECTED_ON = "map.selected_on"  # "Left" | "Right" | None: the map the selection was made on
MAP_CHART_GEN = "map.chart_gen"  # {"Left": int, "Right": int}: bumped to drop a chart's own selection box
MAP_CHART = "map.chart"  # prefix of the maps' st.plotly_chart keys (+ side, model, generation)
MAP_CLEAR = "map.clear"  # the "Clear selection" button
MAP_HOVER = "map.hover"  # prefix of the hover-thumbnail component keys (+ source)

# -- Few-shot lab -------------------------------------------------------------------------------------
FEW_UPLOADER = "fewshot.uploader"
FEW_FRACTION = "fewshot.fraction"  # the fraction picker: a protocol percent (1, 5, 10, 25, 50, 100) or app.fewshot.OTHER
FEW_FRACTION_OTHER = "fewshot.fraction_other"  # percent 1..100, used when the picker says OTHER
FEW_ENCODER = "fewshot.encoder"
FEW_MODE = "fewshot.mode"  # "linear" | "finetune"
FEW_SEED = "fewshot.seed"
FEW_QUICK = "fewshot.quick"  # quick fine-tune schedule
FEW_RESULTS = "fewshot.results"  # [app.fewshot.Trained], newest last, per session
FEW_JOB = "fewshot.job"  # app.fewshot.FinetuneJob | None

# -- Talk mode ----------------------------------------------------------------------------------------
TALK_STEP = "talk.step"  # index of the slide on screen (the URL's ?step= is this + 1)
TALK_FROM_URL = "talk.from_url"  # True once ?step= / ?present= have opened the talk in this session
TALK_PRESENT = "talk.present"  # presenter mode: no sidebar, header or toolbar
TALK_NOTES = "talk.notes"  # speaker notes beside the slide
TALK_KEYS = "talk.keys"  # the keyboard / window-size component (app/talk/keys.py)
TALK_CHOICE = "talk.choice"  # prefix (+ slide key) of a slide's own picker (turn, encoder, fraction)
TALK_PREV = "talk.prev"
TALK_NEXT = "talk.next"

DEFAULTS: dict[str, Any] = {
    EXPLORER_TURN: 90,
    EXPLORER_PUZZLE: 1,
    EXPLORER_NEIGHBOUR: "top-right",
    MAP_VIEW: "Side by side",
    FEW_FRACTION: 10,
    FEW_FRACTION_OTHER: 2,
    FEW_MODE: "linear",
    FEW_SEED: 0,
    FEW_QUICK: False,
    TALK_STEP: 0,
    TALK_PRESENT: False,
    TALK_NOTES: False,
}
# mutable defaults are built fresh for each session
FACTORIES: dict[str, Any] = {
    UPLOADS: lambda: {"photos": [], "page": ""},
    MAP_SELECTION: list,
    MAP_SELECTED_ON: lambda: None,
    MAP_CHART_GEN: lambda: {"Left": 0, "Right": 0},
    FEW_RESULTS: list,
    FEW_JOB: lambda: None,
}


# widget values kept when the user visits another page (Streamlit drops the state of widgets that
# were not drawn in a run; re-assigning the key at the top of every run makes it plain session state)
PERSISTENT = (
    EXPLORER_TASK, EXPLORER_SUBTASK, EXPLORER_PICKS, EXPLORER_TURN, EXPLORER_PUZZLE, EXPLORER_NEIGHBOUR, MAP_LEFT, MAP_RIGHT, MAP_EXACT, MAP_VIEW,
    FEW_FRACTION, FEW_FRACTION_OTHER, FEW_ENCODER, FEW_MODE, FEW_SEED, FEW_QUICK, TALK_PRESENT, TALK_NOTES,
)


def init(session_state) -> None:
    """Give every key its default once per session (never overwrites a user's choice) and keep
    the choices made on other pages. Called at the top of every run, before any widget."""
    for k, v in DEFAULTS.items():
        if k not in session_state:
            session_state[k] = v
    for k, make in FACTORIES.items():
        if k not in session_state:
            session_state[k] = make()
    for k in PERSISTENT:
        if k in session_state:
            session_state[k] = session_state[k]

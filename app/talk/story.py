"""The talk's story: seven slides, each a title for the room, one sentence, speaker notes and ONE
live picture or chart built from the shipped models, the bundled photos and the reports.

A slide's ``build(sources, choice)`` returns its visual or raises ``Missing`` (what is missing and
the command that makes it): the page then shows that one line and the talk still steps. The
seven-step protocol stays the backbone in the notes (``Protocol step …``), not in the titles.
Pure compute: the Streamlit page (``app/views/talk.py``) and the offline export
(``app/talk_export.py``) draw the same visuals.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union

from . import Missing, charts, pictures

MISSING = Missing
LEARNING_FILE = "learning.npz"
REPLAY_FILE = "finetune-replay.json"
FRACTIONS = ("1 %", "10 %")  # the mosaic's choices: the protocol's two headline fractions


@dataclass(frozen=True)
class Sources:
    """Where a talk's inputs live (the app's configured folders)."""

    models: Path
    data: Path
    reports: Path


@dataclass(frozen=True)
class Picture:
    image: object  # PIL.Image
    caption: str = ""


@dataclass(frozen=True)
class Chart:
    figure: object  # plotly Figure (no fixed height: the page sizes it to the screen)
    caption: str = ""


@dataclass(frozen=True)
class Turns:
    """Slide 1's interactive picture: a photo's four turns and the rotation model's guesses."""

    idea: object  # pictures.Idea
    selected: int = 0  # the turn on screen (index into idea.turns)


Visual = Union[Picture, Chart, Turns]


@dataclass(frozen=True)
class Slide:
    key: str  # stable id (the export's anchors, tests)
    title: str
    subtitle: str
    notes: str  # what to say; the protocol step it stands for
    link_page: str  # the app page where the room can try it live
    link_label: str
    build: Callable[[Sources, Union[str, None]], Visual]
    choices: Callable[[Sources], tuple[str, ...]] = field(default=lambda s: ())
    choice_label: str = ""


# -- builders -----------------------------------------------------------------------------------------
def turn_choices(s: Sources) -> tuple[str, ...]:
    from app.inference import ANGLE_LABELS

    return tuple(f"turned {a}" for a in ANGLE_LABELS)


def _idea(s: Sources, choice: str | None) -> Visual:
    names = turn_choices(s)
    return Turns(pictures.idea(s.models, s.data), names.index(choice) if choice in names else 0)


def _questions(s: Sources, choice: str | None) -> Visual:
    rows = pictures.questions(s.models, s.data)
    if not rows:
        raise Missing("no model in models/ that rebuilds a photo (jigsaw, colouring, filling a hole, sharpening)",
                      "python -m ssl_train release --tasks jigsaw,colorization,inpainting,superres")
    return Picture(pictures.questions_picture(rows), "Left: what the model is given. Right: the shipped model's own answer, on a test photo "
                   "(or a fresh rendered scene) it never trained on.")


def learning_models(s: Sources) -> tuple[str, ...]:
    """Model folders that carry a learning map, the story's protagonist first."""
    if not s.models.is_dir():
        return ()
    names = sorted(p.name for p in s.models.iterdir() if (p / LEARNING_FILE).is_file())
    return tuple(sorted(names, key=lambda n: n != charts.PROTAGONIST))


def _learning(s: Sources, choice: str | None) -> Visual:
    names = learning_models(s)
    name = choice if choice in names else (names[0] if names else charts.PROTAGONIST)
    path = s.models / name / LEARNING_FILE
    if not path.is_file():
        raise Missing(f"{path} is missing (the test photos' map at each stage of pretraining)",
                      f"python -m ssl_train pretrain --task {name} --snapshots auto --out runs/{name}-snapshots (with the model's own settings), "
                      f"then python -m ssl_train learning-map --run runs/{name}-snapshots --model {s.models / name}")
    return Chart(charts.learning(path, title=name), "Each dot is a test photo, coloured by its flower — colours the model never saw. Press ▶.")


def _fraction(s: Sources, choice: str | None) -> Visual:
    pct = float((choice or FRACTIONS[1]).rstrip(" %"))
    m = pictures.fraction_mosaic(s.data, pct / 100)
    return Picture(m.picture, f"{m.n_labelled:,} of {m.n_train:,} training photos get a label ({choice or FRACTIONS[1]}); the rest stay unlabelled.")


def _headline(s: Sources, choice: str | None) -> Visual:
    return Chart(charts.headline(s.reports / "protocol.json"), "")


def _replay(s: Sources, choice: str | None) -> Visual:
    return Chart(charts.replay(s.reports / REPLAY_FILE), "A recorded run, replayed. Press ▶ — or train one live in the Few-shot lab.")


def _caveats(s: Sources, choice: str | None) -> Visual:
    return Chart(charts.caveats(s.reports / "protocol.json"), "")


SLIDES: tuple[Slide, ...] = (
    Slide("idea", "Photos can label themselves", "Turn a photo and ask which way is up: to answer, a network must learn what flowers look like.",
          "Labels are expensive, photos are free. The downstream task — which flower is this? — needs a label per photo. A pretext task "
          "makes its own label: we turned the photo, so we know the answer. Click a turn and read the model's guesses: it was never told what a flower is.",
          "views/explorer.py", "Try it on your own photo", _idea, choices=turn_choices, choice_label="Turn"),
    Slide("questions", "One photo, many questions it answers itself", "Shuffle it, take its colour away, cut a hole, shrink it — the photo holds the answer.",
          "Every row is a shipped model on a test photo. Jigsaw (Noroozi & Favaro 2016), colourisation (Zhang et al. 2016), inpainting "
          "(Pathak et al. 2016), super-resolution. Honest note: sharpening is no better than plain bicubic enlarging on these small photos.",
          "views/explorer.py", "Every task, live", _questions),
    Slide("learning", "Watch it learn — no labels used", "The test photos, placed by what the encoder sees, as pretraining goes on.",
          "Protocol step 4: pretrain on the training photos only, never their labels. Colours are the true flowers, which the model never saw: "
          "as it learns its own question, flowers of a kind drift together. Epoch 0 is the random start.",
          "views/embeddings.py", "The maps, with your photos", _learning, choices=learning_models, choice_label="Encoder"),
    Slide("fraction", "Then we label only a few photos", "Every training photo; only the lit ones get a label.",
          "Protocol steps 1–2: one fixed split (test photos never trained on; near-duplicates kept on one side), then keep 1, 5, 10, 25, 50 "
          "or 100 % of the training labels — stratified, seeded and nested (the 1 % photos are inside the 10 %).",
          "views/fewshot.py", "Choose a fraction yourself", _fraction, choices=lambda s: FRACTIONS, choice_label="Labelled"),
    Slide("headline", "A head start when labels are few", "Same network, same labelled photos: pretrained first, or trained from scratch.",
          "Protocol steps 3, 5, 6: scratch learns from the labelled photos alone; the pretrained encoder is fine-tuned on the same photos; "
          "both are scored on the same unseen test photos. Mean of 3 seeds.",
          "views/fewshot.py", "Compare them yourself", _headline),
    Slide("replay", "Fine-tuning, replayed", "10 % of the labels: the pretrained network starts ahead and stays ahead.",
          "A fine-tune recorded with the protocol's own schedule and learning rates, both arms on the same labelled photos. "
          "The Few-shot lab trains one live on this laptop in about a minute.",
          "views/fewshot.py", "Fine-tune live", _replay),
    Slide("caveats", "What it does not buy", "The more labels you have, the less a pretext task adds.",
          "With all the labels, pretraining adds little; some tasks barely beat scratch even at 10 %. These are small encoders trained for "
          "minutes on a CPU — the ranking could change with bigger models and budgets.",
          "views/fewshot.py", "Check any fraction", _caveats),
)


def build(slide: Slide, sources: Sources, choice: str | None = None) -> Visual:
    """The slide's visual, or raises Missing (pictures' or charts')."""
    return slide.build(sources, choice)

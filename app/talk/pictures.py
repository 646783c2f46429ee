"""Talk mode's live pictures (pure compute, no Streamlit calls): slide 1's four turns of a photo with
the rotation model's answers, slide 2's "questions a photo answers itself" (each task's panel demo),
slide 4's mosaic of the training photos with the protocol's labelled subset lit.

Everything comes from the shipped model folders and the bundled photos; a missing input raises
``Missing(what, command)``: the slide shows that one line and the talk still steps. Only the story's
protagonist, rotation, is named here (``PROTAGONIST``): every other task comes from the panel
registry (``app.panels``, ``Panel.demo``) and the model folders that exist.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from app import inference, palette, photos
from . import PROTAGONIST, Missing  # one "input missing" error for every slide; the story's task

TURN_SIDE = 320  # px: each of slide 1's four turns
NAME_PX, COUNT_PX = 40, 32  # the mosaic's class names and counts (it is ≤ 1800 px wide: ≥ 28 px on a 1280 screen's width)
POP = 1.5  # a labelled photo is drawn this many times its cell, over its neighbours: 27 of 2,783 must be seen
DIM_GREY = 0.22  # a mosaic photo without a label: its grey level kept at this share, the rest white
BACKGROUND = (255, 255, 255)
INK = (34, 34, 34)
SOFT_INK = (90, 90, 90)
RESTORE_PHOTOS = "git checkout -- data/flowers (or set PRETEXT_LAB_DATA to a photo folder with its split.csv)"
RESTORE_MODEL = "git checkout -- models/{name} (or python -m ssl_train release --tasks {name} to retrain and export it)"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Idea:
    """Slide 1: ``photo`` (bundled file, relative to the photo folder), ``turns`` its four turns
    (square PIL RGB, ``TURN_SIDE`` px; turn k = k·90° counter-clockwise), ``angle_labels`` the
    app's names of the four turns, ``probs`` (4, 4) float32: row k = the photo turned k·90°,
    column j = the rotation model's probability that it was turned j·90° (rows sum to 1),
    ``correct`` [k]: the model's top answer for turn k is k."""

    photo: str
    turns: list[Image.Image]
    angle_labels: list[str]
    probs: np.ndarray
    correct: list[bool]


@dataclass(frozen=True)
class Question:
    """Slide 2, one task: its picker ``label`` ("Jigsaw"), the ``question`` in plain words, what
    the model is given (``input``) and its answer (``output``), PIL RGB, each with a short caption."""

    task: str
    label: str
    question: str
    input: Image.Image
    output: Image.Image
    input_caption: str
    output_caption: str


@dataclass(frozen=True)
class Mosaic:
    """Slide 4: ``picture`` (PIL RGB, about 16:9, ≤ 1800 px wide) of every training photo, the
    labelled ones lit; ``files`` the ``n_train`` training photos in the picture's order (class by
    class), ``labelled`` (n_train,) bool: photo i is in the protocol's labelled subset."""

    picture: Image.Image
    n_train: int
    n_labelled: int
    fraction: float
    seed: int
    files: tuple[str, ...]
    labelled: np.ndarray


# -- inputs ---------------------------------------------------------------------------------------------
def _index(data_dir: Path) -> photos.PhotoIndex:
    """The bundled photos' index, or ``Missing`` with photos' own fix."""
    try:
        return photos.index(data_dir)
    except photos.DataMissing as e:
        what, _, fix = str(e).partition("; ")
        raise Missing(what, fix or RESTORE_PHOTOS) from None


_MODELS: dict[tuple, inference.OnnxModel] = {}  # (folder, its signature) → session: slide 1 asked twice loads once


def _model(models_dir: Path, name: str) -> inference.OnnxModel:
    path = Path(models_dir) / name
    if not path.is_dir():
        raise Missing(f"{path} is missing (the {name} model)", RESTORE_MODEL.format(name=name))
    key = (str(path.resolve()), inference.folder_signature(path))
    if key not in _MODELS:
        try:
            _MODELS[key] = inference.OnnxModel(path)
        except inference.ModelFileError as e:
            raise Missing(f"{path} cannot be used ({str(e).split(';')[0]})", RESTORE_MODEL.format(name=name)) from None
    return _MODELS[key]


def _open(data_dir: Path, photo: str) -> Image.Image:
    try:
        return photos.open_bundled(data_dir, photo)
    except Exception as e:  # noqa: BLE001 (BadImage, OSError: a damaged or absent bundled file)
        raise Missing(f"bundled photo {photo} cannot be opened ({type(e).__name__})", RESTORE_PHOTOS) from None


# -- slide 1: the idea ----------------------------------------------------------------------------------
def _turn_probs(model: inference.OnnxModel, img: Image.Image) -> np.ndarray:
    """(4, 4) probabilities of the photo's four turns, by the app's own rotation inference."""
    return inference.rotation_grid(model, model.prepare(img))[1]


def _clear_photo(model: inference.OnnxModel, index: photos.PhotoIndex) -> str:
    """Slide 1's default photo: of the explorer's picks (test split, a few per class), the one on
    which the rotation model is surest of every turn — all four named right, and the highest
    probability for the true turn in its least sure turn (ties: the first in pick order); the first
    pick when no photo has all four right. The surest photo is also one a room reads at once (the
    shipped model: pink tulips on their stems, 99.996 %, not a bed of daisies seen from the front)."""
    picks = index.picks()
    best, best_p = picks[0], -1.0
    for f in picks:
        probs = _turn_probs(model, _open(index.root, f))
        if (probs.argmax(1) == np.arange(4)).all() and probs.diagonal().min() > best_p:
            best, best_p = f, float(probs.diagonal().min())
    return best


_CLEAR_PHOTO: dict[tuple, str] = {}  # (model folder, its signature, split sha256) → slide 1's photo


def default_photo(models_dir: Path, data_dir: Path) -> str:
    """The photo slides 1 and 2 show by default (``_clear_photo``'s rule, once per model and photo
    set: ~25 photos × 4 turns; the first pick when the protagonist's model is missing); ``Missing``
    when the photos are."""
    index = _index(data_dir)
    try:
        model = _model(models_dir, PROTAGONIST)
    except Missing:
        return index.picks()[0]
    key = (str(model.dir.resolve()), inference.folder_signature(model.dir), index.key)
    if key not in _CLEAR_PHOTO:
        _CLEAR_PHOTO[key] = _clear_photo(model, index)
    return _CLEAR_PHOTO[key]


def idea(models_dir: Path, data_dir: Path, photo: str | None = None) -> Idea:
    """Slide 1: one bundled photo (``photo``, relative to ``data_dir``; default ``default_photo``),
    its four turns at ``TURN_SIDE`` px and the rotation model's live probabilities for each.
    ``Missing`` if models/rotation or the photos are missing."""
    index = _index(data_dir)
    model = _model(models_dir, PROTAGONIST)
    if not model.has_rotation_head:
        raise Missing(f"{model.dir} has no rotation output", RESTORE_MODEL.format(name=PROTAGONIST))
    photo = photo or default_photo(models_dir, data_dir)
    if photo not in index.files:
        raise ValueError(f"{photo} is not a bundled photo of {data_dir}")
    img = _open(data_dir, photo)
    probs = _turn_probs(model, img)
    shown = inference.display_square(img, TURN_SIDE)  # the model's centre crop, at slide size
    turns = [inference.to_pil(inference.turn(shown, k)) for k in range(4)]
    return Idea(photo, turns, list(inference.ANGLE_LABELS), probs, [bool(probs[k].argmax() == k) for k in range(4)])


# -- slide 2: many questions ----------------------------------------------------------------------------
def _demo_entries(models_dir: Path) -> list[inference.ModelEntry]:
    """One usable model per task whose panel has a demo, in the panels' order: the folder named
    after its task when there is one (the shipped model), else the first by name."""
    from app import panels

    reg = panels.load_all()
    ok = [e for e in inference.list_models(models_dir) if e.ok and e.task in reg and reg[e.task].demo]
    ok.sort(key=lambda e: (reg[e.task].order, e.name != e.task, e.name))
    seen: set[str] = set()
    return [e for e in ok if not (e.task in seen or seen.add(e.task))]


def questions(models_dir: Path, data_dir: Path, photo: str | None = None) -> list[Question]:
    """Slide 2: one row per task with a demo (``Panel.demo``) whose model folder exists, ordered by
    the panel's ``order``, on one bundled photo (default: ``default_photo``, slide 1's). A model that
    fails is left out (logged); an empty list → the caller shows a note. ``Missing`` if the photos are."""
    from app import panels

    photo = photo or default_photo(models_dir, data_dir)
    img = _open(data_dir, photo)
    rows = []
    for e in _demo_entries(models_dir):
        p = panels.PANELS[e.task]
        try:
            d = p.demo(e, img)
        except Exception as err:  # noqa: BLE001 (a damaged or outdated model folder: the other rows still show)
            log.warning("talk: %s's demo failed (%s); left out", e.name, str(err).splitlines()[0][:200] if str(err) else type(err).__name__)
            continue
        rows.append(Question(e.task, p.label, d.question, d.input, d.output, d.input_caption, d.output_caption))
    return rows


# -- drawing helpers ------------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans at ``size`` px (matplotlib, a runtime requirement, ships it: it has ×, →, °),
    else Pillow's own TrueType font (Pillow ≥ 10.1; fewer symbols)."""
    spec = find_spec("matplotlib")
    if spec and spec.origin:
        path = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / f"DejaVuSans{'-Bold' if bold else ''}.ttf"
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def wrap(text: str, f: ImageFont.FreeTypeFont, width: float, max_lines: int = 2, indent: float = 0.0) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width`` px (the first line ``indent`` px
    narrower: it follows a label); past ``max_lines`` the last line ends with "…"."""
    lines: list[str] = []
    for word in text.split():
        room = width - (indent if len(lines) == 1 else 0)
        if lines and f.getlength(f"{lines[-1]} {word}") <= room:
            lines[-1] = f"{lines[-1]} {word}"
        elif not lines and indent and f.getlength(word) > width - indent:
            lines += ["", word]  # not even one word fits after the label: the text starts below it
        else:
            lines.append(word)
    if len(lines) > max_lines:
        last = " ".join(lines[max_lines - 1:])
        while last and f.getlength(last + "…") > width:
            last = last[:-1]
        lines = lines[: max_lines - 1] + [last.rstrip() + "…"]
    return lines


def _lines(d: ImageDraw.ImageDraw, xy: tuple[float, float], lines: list[str], f, fill, anchor: str = "la", gap: float = 1.2) -> float:
    """Draw ``lines`` from ``xy`` down; returns the y below them."""
    x, y = xy
    for line in lines:
        d.text((x, y), line, font=f, fill=fill, anchor=anchor)
        y += f.size * gap
    return y


def _arrow(d: ImageDraw.ImageDraw, x0: float, x1: float, y: float, thick: float, colour) -> None:
    """A right-pointing arrow from x0 to x1 at height y (a drawn shape: no font glyph needed)."""
    head = thick * 2.6
    d.rectangle([x0, y - thick / 2, x1 - head, y + thick / 2], fill=colour)
    d.polygon([(x1 - head, y - head * 0.8), (x1, y), (x1 - head, y + head * 0.8)], fill=colour)


def _readable(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """A palette colour dark enough for text on white (a light one, e.g. Tol's yellow, darkened by a
    third; the hue stays)."""
    lum = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255
    return tuple(round(v * 0.65) for v in rgb) if lum > 0.55 else rgb  # type: ignore[return-value]


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _fit(img: Image.Image, side: int) -> Image.Image:
    """``img`` scaled so its longer side is ``side`` px (a demo's blocky input stays blocky: demos come
    at ``DEMO_SIDE`` already, so this is a mild resize)."""
    w, h = img.size
    k = side / max(w, h)
    return img.convert("RGB").resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.LANCZOS)


def questions_picture(rows: list[Question], width: int = 1600) -> Image.Image:
    """ONE picture of slide 2 for a projector (PIL RGB, ``width`` px wide, white): per task a header
    ("Label: question", the label in the task's colour), then what the model is given (left, grey
    frame) → the model's answer (right, framed in the task's colour), each captioned. From two tasks
    on they sit in two columns: one column of four would leave each picture ~170 px high in 16:9,
    two columns ~260; from five on in three (two rows of three: in two columns five tasks took three
    rows and the picture, taller than 16:9, shrank to 2/3 of a 1280×720 screen's width). Up to six
    tasks fit 16:9 (fewer: wider). Text ≥ 29 px at width 1600 (scales with ``width``)."""
    if not rows:
        raise ValueError("no rows to draw")
    s = width / 1600
    ncols = 1 if len(rows) == 1 else 2 if len(rows) <= 4 else 3
    nrows = math.ceil(len(rows) / ncols)
    margin, gap_x, gap_y, arrow_w = 36 * s, (64 if ncols < 3 else 80) * s, 40 * s, (100 if ncols < 3 else 80) * s
    cap_extra = min(0.8 * arrow_w, 0.9 * gap_x)  # a caption reaches into the arrow's gap, not into the next cell's captions
    f_label, f_q, f_cap = font(round(36 * s), True), font(round(34 * s)), font(round(29 * s))
    cell_w = (width - 2 * margin - (ncols - 1) * gap_x) / ncols
    heads = [_head(r, f_label, f_q, cell_w) for r in rows]
    head_h = max(len(h) for h in heads) * f_q.size * 1.25 + 12 * s
    line_h = f_cap.size * 1.2

    def caps(side: float) -> list[list[str]]:  # a caption may reach into the arrow's gap
        return [wrap(c, f_cap, side + cap_extra) for r in rows for c in (r.input_caption, r.output_caption)]

    side = (cell_w - arrow_w) / 2
    if nrows > 1:  # as large as 16:9 allows
        for _ in range(3):  # the captions' line count depends on the side: settle it
            cap_h = max(len(c) for c in caps(side)) * line_h + 12 * s
            side = min((cell_w - arrow_w) / 2, (width * 9 / 16 - 2 * margin - (nrows - 1) * gap_y) / nrows - head_h - cap_h)
    side = int(min(side, 440 * s))
    cap_h = max(len(c) for c in caps(side)) * line_h + 12 * s
    cell_h = head_h + side + cap_h
    canvas = Image.new("RGB", (width, round(2 * margin + nrows * cell_h + (nrows - 1) * gap_y)), BACKGROUND)
    d = ImageDraw.Draw(canvas)
    # what the cells really fill (pictures and headers), centred: no empty strip on the right
    used = max(2 * side + arrow_w + 12 * s, *(max([f_label.getlength(f"{r.label}: ") + f_q.getlength(head[0]), *(f_q.getlength(h) for h in head[1:])])
                                             for r, head in zip(rows, heads)))
    left = (width - (ncols - 1) * (cell_w + gap_x) - used) / 2
    for i, (r, head) in enumerate(zip(rows, heads)):
        x0, y0 = left + (i % ncols) * (cell_w + gap_x), margin + (i // ncols) * (cell_h + gap_y)
        _draw_head(d, (x0, y0), r.label, head, f_label, f_q, _readable(_rgb(palette.encoder_colour(r.task))))
        _pair(canvas, d, r, (x0 + 6 * s, y0 + head_h), side, arrow_w, f_cap, s, cap_extra)
    return canvas


def _head(r: Question, f_label, f_q, width: float) -> list[str]:
    """The question's lines after its bold label ("Jigsaw:"), at most two."""
    return wrap(r.question, f_q, width, indent=f_label.getlength(f"{r.label}: "))


def _draw_head(d: ImageDraw.ImageDraw, xy: tuple[float, float], label: str, lines: list[str], f_label, f_q, colour) -> None:
    x, y = xy
    d.text((x, y + f_q.size), f"{label}:", font=f_label, fill=colour, anchor="ls")  # same baseline as the question
    d.text((x + f_label.getlength(f"{label}: "), y + f_q.size), lines[0], font=f_q, fill=INK, anchor="ls")
    _lines(d, (x, y + f_q.size * 1.25), lines[1:], f_q, INK)


def _pair(canvas: Image.Image, d: ImageDraw.ImageDraw, r: Question, xy: tuple[float, float], side: int, arrow_w: float, f_cap, s: float,
          cap_extra: float) -> None:
    """[input] → [output] at ``xy`` (top-left), each ``side`` px with its caption centred below, at most
    ``side + cap_extra`` px wide."""
    x, y = xy
    colour = _rgb(palette.encoder_colour(r.task))
    frame = max(2, round(5 * s))
    for px, img, cap, rim in ((x, r.input, r.input_caption, (190, 190, 190)), (x + side + arrow_w, r.output, r.output_caption, colour)):
        pic = _fit(img, side)
        canvas.paste(pic, (round(px + (side - pic.width) / 2), round(y + (side - pic.height) / 2)))
        d.rectangle([px - frame, y - frame, px + side + frame - 1, y + side + frame - 1], outline=rim, width=frame)
        _lines(d, (px + side / 2, y + side + 12 * s), wrap(cap, f_cap, side + cap_extra), f_cap, SOFT_INK, anchor="ma")
    _arrow(d, x + side + 16 * s, x + side + arrow_w - 16 * s, y + side / 2, 12 * s, colour)


# -- slide 4: the labelled few --------------------------------------------------------------------------
@dataclass(frozen=True)
class _Sheet:
    """Every training photo as a thumbnail, decoded once per photo set: ``files`` in the protocol's
    order (class folders sorted, photos sorted: ``ssl_train.data.scan_image_folder``), ``labels``,
    ``bright`` (n, b, b, 3) uint8: each photo lit, ``POP`` times its cell, with a rim in its class's
    colour, ``base`` (H, W, 3) uint8 the picture with every photo dimmed in its cell, ``cells``
    (n, 2) the (top, left) px where its lit version goes (centred on its cell), and
    ``classes`` [(name, class index, first row's y px, number of training photos)] of each band,
    ``label_x`` the px where the bands' names start."""

    files: tuple[str, ...]
    labels: np.ndarray
    bright: np.ndarray
    base: np.ndarray
    cells: np.ndarray
    classes: list[tuple[str, int, int, int]]
    label_x: int


_SHEETS: dict[tuple, _Sheet] = {}  # (photo folder, split.csv sha256, thumb px) → its sheet


def _thumb(path: Path, t: int) -> np.ndarray | None:
    """A photo's centre square at ``t``×``t`` px, uint8 (t, t, 3), or None where the training package
    would skip it (unreadable, or over its pixel limit). JPEG ``draft`` decodes at 1/2–1/8 scale:
    ~1 ms a photo instead of ~10."""
    from ssl_train.images import MAX_PIXELS

    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                return None
            im.draft("RGB", (2 * t, 2 * t))
            im.load()
            im = ImageOps.exif_transpose(im).convert("RGB")
    except Exception:  # noqa: BLE001 (any unreadable file: the protocol's load_dataset drops it too)
        return None
    w, h = im.size
    c = min(w, h)
    box = ((w - c) // 2, (h - c) // 2, (w - c) // 2 + c, (h - c) // 2 + c)
    return np.asarray(im.resize((t, t), Image.Resampling.BICUBIC, box=box, reducing_gap=2.0))


def _training_files(index: photos.PhotoIndex) -> tuple[list[str], list[str], np.ndarray]:
    """(class names, training photos, their labels) in the protocol's order: class folders sorted,
    photos sorted (``ssl_train.data.scan_image_folder``, as ``load_dataset`` reads them)."""
    from ssl_train.data import scan_image_folder

    names, files, labels = scan_image_folder(index.root)
    split = dict(zip(index.files, index.is_test))
    unlisted = [f for f in files if f not in split]
    if unlisted:
        raise Missing(f"{index.root / photos.SPLIT_NAME} does not list {len(unlisted)} photo(s) (e.g. {unlisted[0]})", RESTORE_PHOTOS)
    train = [i for i, f in enumerate(files) if not split[f]]
    return names, [files[i] for i in train], labels[train]


def _grid(counts: np.ndarray, label_w: int, thumb: int, max_width: int, margin: int) -> tuple[int, int, int, int]:
    """(cell px, columns, width, height) of the class bands: the largest cell ≤ ``thumb`` px and the
    columns that bring the picture closest to 16:9 within ``max_width``, accepting the first cell
    size at which it is at least 16:9.5 wide (the bundled 2,783 training photos: 22 px)."""
    best = None
    for t in range(thumb, max(4, thumb // 2) - 1, -1):
        gap = max(6, t // 3)
        most = max(8, (max_width - 2 * margin - label_w) // t)

        def height(cols: int) -> int:
            return 2 * margin + sum(math.ceil(n / cols) for n in counts if n) * t + gap * (np.count_nonzero(counts) - 1)

        cols = min(range(max(4, most // 3), most + 1), key=lambda c: abs((2 * margin + label_w + c * t) / height(c) - 16 / 9))
        best = (t, cols, 2 * margin + label_w + cols * t, height(cols))
        if best[2] / best[3] >= 16 / 9.5:
            break
    return best  # type: ignore[return-value]


def _sheet(index: photos.PhotoIndex, thumb: int, max_width: int = 1800) -> _Sheet:
    """The mosaic's fixed part, made once per (photo folder, split, thumb): class by class — each
    class a band of rows with its name at the left — because the labelled few are drawn per class
    (stratified), and bands make "a few of every kind" visible; shuffled, the lit photos read as noise."""
    key = (str(Path(index.root).resolve()), index.key, thumb)
    if key in _SHEETS:
        return _SHEETS[key]
    names, files, labels = _training_files(index)
    margin = 24
    f_name, f_count = font(NAME_PX, True), font(COUNT_PX)
    counts = np.bincount(labels, minlength=len(names))
    label_w = int(max(max(f_name.getlength(c), f_count.getlength(f"{n:,} of {n:,}")) for c, n in zip(names, counts))) + 20
    t = _grid(counts, label_w, thumb, max_width, margin)[0]
    big = round(t * POP)
    thumbs = [_thumb(index.root / f, big) for f in files]
    ok = [i for i, a in enumerate(thumbs) if a is not None]  # unreadable photos: load_dataset drops them too
    if not ok:
        raise Missing(f"no readable training photo in {index.root}", RESTORE_PHOTOS)
    files, labels, thumbs = [files[i] for i in ok], labels[ok], np.stack([thumbs[i] for i in ok])
    counts = np.bincount(labels, minlength=len(names))
    t, cols, width, height = _grid(counts, label_w, t, max_width, margin)
    base = np.full((height, width, 3), 255, np.uint8)
    small = np.stack([np.asarray(Image.fromarray(a).resize((t, t), Image.Resampling.BOX)) for a in thumbs])
    grey = small.astype(np.float32) @ np.asarray([0.299, 0.587, 0.114], np.float32)
    dim = np.rint(255 - DIM_GREY * (255 - grey)).astype(np.uint8)  # pale grey: no label
    bright, rim = thumbs.copy(), max(3, big // 10)
    colours = [_rgb(c) for c in palette.class_colours(names)]
    cells, bands, y = np.zeros((len(files), 2), np.int64), [], margin
    for c, name in enumerate(names):
        members = np.flatnonzero(labels == c)
        if len(members):
            bands.append((name, c, y, len(members)))
        for j, i in enumerate(members):
            top, left = (y + (j // cols) * t, margin + label_w + (j % cols) * t)
            base[top:top + t, left:left + t] = dim[i, ..., None]
            # the photo lit: POP times the cell, centred on it (inside the picture), over its neighbours
            cells[i] = (min(max(0, top - (big - t) // 2), height - big), min(max(0, left - (big - t) // 2), width - big))
            for edge in (np.s_[:rim], np.s_[-rim:], np.s_[:, :rim], np.s_[:, -rim:]):
                bright[i][edge] = colours[c]
            for edge in (np.s_[:1], np.s_[-1:], np.s_[:, :1], np.s_[:, -1:]):
                bright[i][edge] = 255  # a white hairline parts the rim from the pale neighbours
        y += math.ceil(len(members) / cols) * t + max(6, t // 3) * (len(members) > 0)
    img = Image.fromarray(base)
    d = ImageDraw.Draw(img)
    for name, c, top, _ in bands:
        d.text((margin, top - 4), name, font=f_name, fill=colours[c])
    sheet = _Sheet(tuple(files), labels, bright, np.asarray(img), cells, bands, margin)
    _SHEETS[key] = sheet
    return sheet


def fraction_mosaic(data_dir: Path, fraction: float, seed: int = 0, thumb: int = 24) -> Mosaic:
    """Slide 4: every training photo as a thumbnail, class by class, in cells of at most ``thumb`` px
    (fewer when that keeps the picture about 16:9 within 1800 px: 22 px for the 2,783 bundled
    training photos); the protocol's labelled subset for ``fraction`` and ``seed``
    (``ssl_train.data.labelled_subset``: the very photos the protocol labels) in full colour, ``POP``
    times its cell, with a rim in its class's colour; the rest pale grey; each class's "k of n" at its
    left. The thumbnails are decoded once per photo set and kept (module cache, ~1.5 s the first
    time): another fraction only re-lights (~0.02 s). ``Missing`` if the photos or split.csv are missing."""
    from ssl_train.data import labelled_subset

    sheet = _sheet(_index(data_dir), int(thumb))
    n = len(sheet.files)
    # labelled_subset depends only on each class's training photos in order, so indexing the training
    # photos themselves picks the same photos as the protocol's indices into the whole dataset
    picked = labelled_subset(np.arange(n), sheet.labels, fraction, seed)
    lit = np.zeros(n, bool)
    lit[picked] = True
    canvas = sheet.base.copy()
    t = sheet.bright.shape[1]
    for i in picked:
        top, left = sheet.cells[i]
        canvas[top:top + t, left:left + t] = sheet.bright[i]
    img = Image.fromarray(canvas)
    d, f_count = ImageDraw.Draw(img), font(COUNT_PX)
    for name, c, top, count in sheet.classes:
        k = int(np.count_nonzero(lit & (sheet.labels == c)))
        d.text((sheet.label_x, top + NAME_PX + 6), f"{k:,} of {count:,}", font=f_count, fill=SOFT_INK)
    return Mosaic(img, n, int(lit.sum()), float(fraction), int(seed), sheet.files, lit)

"""What a selection on the Embedding map means, in plain functions (no Streamlit): which photos were
picked, where they sit on the other encoder's map, how many of each class, and small thumbnails.

A selection is kept as a list of photo files (paths relative to the data folder, as in
``split.csv``), never as plotly point numbers: the two maps draw the same test photos in different
traces and orders, so a file is the only handle that means the same photo on both maps.
"""
from __future__ import annotations

import base64
import html
import io
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image

THUMB_PX = 64  # square thumbnail side, px: the bundled photos are ~96-120 px, so 64 px keeps them sharp
THUMB_QUALITY = 72  # JPEG quality: ~1.5 kB a thumbnail, ~1.3 MB of data URIs for the 696 test photos
GALLERY_MAX = 48  # thumbnails shown under the maps; the rest are counted ("and N more")
UPLOAD_TAG = "upload"  # customdata[1] of a ★ upload point (customdata[1] of a photo is its class)


# -- thumbnails --------------------------------------------------------------------------------------
def thumbnail_uri(img: Image.Image, quality: int = THUMB_QUALITY) -> str:
    """An RGB image as a ``data:image/jpeg;base64,...`` URI (the image is encoded as given: resize first)."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnail_uris(files: Iterable[str], load: Callable[[str], Image.Image | None], size: int = THUMB_PX) -> dict[str, str]:
    """{file: data URI of its centre ``size``×``size`` crop} for every file ``load`` can open (``load``
    returns None for an unreadable file, which is then left out: its point simply shows no photo)."""
    from ssl_train.images import square_resize

    out: dict[str, str] = {}
    for f in files:
        img = load(f)
        if img is not None:
            out[str(f)] = thumbnail_uri(square_resize(img, size))
    return out


def upload_thumb_key(name: str) -> str:
    """The key of an upload's thumbnail in the hover data (``upload:<name>``): uploads are not files of
    the photo set, and a user may name a photo like a bundled one."""
    return f"{UPLOAD_TAG}:{name}"


# -- selection ---------------------------------------------------------------------------------------
def selected_files(event: Mapping[str, Any] | None) -> list[str]:
    """The photo files a plotly selection event picked, first-seen order, each once.

    ``event``: ``st.plotly_chart``'s state, ``{"selection": {"points": [{"customdata": [file, class],
    ...}, ...]}}``. Points without customdata (the highlight rings) and ★ uploads are skipped; a photo
    picked twice (its dot and, from an older figure, its ring) counts once."""
    points = (((event or {}).get("selection") or {}).get("points")) or []
    seen: dict[str, None] = {}
    for p in points:
        cd = p.get("customdata") if isinstance(p, Mapping) else None
        if not cd or len(cd) < 2 or cd[1] == UPLOAD_TAG:
            continue
        seen.setdefault(str(cd[0]), None)
    return list(seen)


def highlight_mask(map_files: Sequence[str] | np.ndarray, selected: Iterable[str]) -> np.ndarray:
    """(M,) bool: which of one map's photos (``map_files``, in that map's order) are in ``selected`` —
    how a selection made on one encoder's map is found on the other's."""
    chosen = set(map(str, selected))
    return np.fromiter((str(f) in chosen for f in map_files), bool, count=len(map_files))


def class_counts(files: Iterable[str], class_of: Mapping[str, str]) -> list[tuple[str, int]]:
    """[(class, number of selected photos of it)], most first, ties by name; files with no known class
    are counted as "unknown"."""
    counts = Counter(class_of.get(str(f), "unknown") for f in files)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def gallery_pick(files: Sequence[str], class_of: Mapping[str, str], limit: int = GALLERY_MAX) -> list[str]:
    """Which ``limit`` photos of a larger selection the gallery shows, grouped by class (most first, as
    ``class_counts``): each class gets its share of ``limit`` (largest remainders round up), but at least
    one photo, so a lone rose in a daisy island is seen. Within a class, selection order is kept. A
    selection of at most ``limit`` photos is shown whole."""
    groups: dict[str, list[str]] = {}
    for f in files:
        groups.setdefault(class_of.get(str(f), "unknown"), []).append(str(f))
    order = [c for c, _ in class_counts(files, class_of)]
    if len(files) <= limit:
        return [f for c in order for f in groups[c]]
    share = {c: max(1, int(limit * len(groups[c]) / len(files))) for c in order}
    remainders = sorted(order, key=lambda c: -(limit * len(groups[c]) / len(files) - int(limit * len(groups[c]) / len(files))))
    for c in remainders:  # hand out what is left of ``limit``, largest remainder first
        if sum(share.values()) >= limit:
            break
        if share[c] < len(groups[c]):
            share[c] += 1
    while sum(share.values()) > limit:  # the at-least-one rule overshot: take from the largest class
        big = max(order, key=lambda c: share[c])
        share[big] -= 1
    return [f for c in order for f in groups[c][:share[c]]]


def plural(noun: str) -> str:
    """English plural of a class name: daisy → daisies, rose → roses, bush → bushes."""
    if noun.endswith("y") and len(noun) > 1 and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def count_sentence(cls: str, n: int, total: int) -> str:
    """One class's share of a selection in plain words: "47 of 112 selected are roses",
    "1 of 112 selected is a daisy", "all 12 selected are tulips", "the selected photo is a rose"."""
    if total == 1:
        return f"the selected photo is {_article(cls)} {cls}"
    if n == total:
        return f"all {total} selected are {plural(cls)}"
    if n == 1:
        return f"1 of {total} selected is {_article(cls)} {cls}"
    return f"{n} of {total} selected are {plural(cls)}"


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def gallery_html(files: Sequence[str], thumbs: Mapping[str, str], class_of: Mapping[str, str], colour_of: Mapping[str, str],
                 more: int = 0, px: int = 76) -> str:
    """HTML of the photos ``files`` (already picked: ``gallery_pick``) as a wrapping grid of ``px``-px
    thumbnails, each with a bottom bar in its class colour and its class and file name as tooltip, then
    "and ``more`` more" for the selected photos not shown. Photos with no thumbnail are skipped."""
    cells = []
    for f in files:
        uri = thumbs.get(str(f))
        if uri is None:
            continue
        cls = class_of.get(str(f), "unknown")
        title = html.escape(f"{cls} · {Path(str(f)).name}", quote=True)
        colour = html.escape(colour_of.get(cls, "#7F7F7F"), quote=True)
        cells.append(f'<img src="{uri}" title="{title}" alt="{title}" width="{px}" height="{px}" '
                     f'style="border-bottom:5px solid {colour};border-radius:4px;object-fit:cover">')
    tail = f'<div class="map-gallery-more" style="align-self:center;font-size:1.05rem;padding:0 .5rem">and {more} more</div>' if more > 0 else ""
    return f'<div class="map-gallery" style="display:flex;flex-wrap:wrap;gap:6px">{"".join(cells)}{tail}</div>'

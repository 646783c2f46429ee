"""app.map_selection: a selection on one map is a list of photo files, found on the other map, counted
by class in plain words, and shown as a capped gallery of small thumbnails."""
from __future__ import annotations

import base64
import io
from collections import Counter

import numpy as np
from PIL import Image

from app import map_selection as ms


def point(file: str, cls: str, curve: int = 0, index: int = 0) -> dict:
    """One point of st.plotly_chart's selection state, as the page's figure makes it."""
    return {"curve_number": curve, "point_index": index, "x": 0.0, "y": 0.0, "customdata": [file, cls]}


def event(*points: dict) -> dict:
    return {"selection": {"points": list(points), "point_indices": [], "box": [], "lasso": []}}


CLASS_OF = {"daisy/a.jpg": "daisy", "daisy/b.jpg": "daisy", "rose/c.jpg": "rose", "tulip/d.jpg": "tulip", "rose/e.jpg": "rose"}


# -- from a plotly event to photo files --------------------------------------------------------------
def test_selected_files__lasso_event_gives_each_photo_once_in_order():
    ev = event(point("rose/c.jpg", "rose", 2, 0), point("daisy/a.jpg", "daisy", 0, 3), point("rose/c.jpg", "rose", 5, 0))
    assert ms.selected_files(ev) == ["rose/c.jpg", "daisy/a.jpg"]


def test_selected_files__uploads_and_rings_without_customdata_are_not_photos():
    ring = {"curve_number": 6, "point_index": 0}
    ev = event(point("my flower.jpg", ms.UPLOAD_TAG, 7), ring, point("tulip/d.jpg", "tulip"))
    assert ms.selected_files(ev) == ["tulip/d.jpg"]


def test_selected_files__empty_or_missing_event_is_no_selection():
    assert ms.selected_files(None) == [] and ms.selected_files({}) == [] and ms.selected_files(event()) == []
    assert ms.selected_files({"selection": None}) == []


def test_highlight_mask__photos_picked_on_one_map_are_found_in_the_other_maps_order():
    left_order = np.asarray(["daisy/a.jpg", "rose/c.jpg", "tulip/d.jpg", "daisy/b.jpg"])
    right_order = np.asarray(["tulip/d.jpg", "daisy/b.jpg", "daisy/a.jpg", "rose/c.jpg"])
    picked = ms.selected_files(event(point("daisy/a.jpg", "daisy"), point("tulip/d.jpg", "tulip")))
    assert ms.highlight_mask(left_order, picked).tolist() == [True, False, True, False]
    assert ms.highlight_mask(right_order, picked).tolist() == [True, False, True, False]
    assert ms.highlight_mask(right_order, []).dtype == bool and not ms.highlight_mask(right_order, []).any()


# -- counts in plain words -----------------------------------------------------------------------------
def test_class_counts__most_first_ties_by_name_unknown_files_counted():
    files = ["rose/c.jpg", "daisy/a.jpg", "rose/e.jpg", "daisy/b.jpg", "tulip/d.jpg", "other/x.jpg"]
    assert ms.class_counts(files, CLASS_OF) == [("daisy", 2), ("rose", 2), ("tulip", 1), ("unknown", 1)]


def test_count_sentence__plain_english_for_many_one_all_and_a_single_photo():
    assert ms.count_sentence("rose", 47, 112) == "47 of 112 selected are roses"
    assert ms.count_sentence("daisy", 5, 112) == "5 of 112 selected are daisies"
    assert ms.count_sentence("daisy", 1, 112) == "1 of 112 selected is a daisy"
    assert ms.count_sentence("orchid", 1, 3) == "1 of 3 selected is an orchid"
    assert ms.count_sentence("tulip", 12, 12) == "all 12 selected are tulips"
    assert ms.count_sentence("rose", 1, 1) == "the selected photo is a rose"


def test_plural__class_names_of_the_bundled_photos_and_common_endings():
    assert [ms.plural(c) for c in ("daisy", "dandelion", "rose", "sunflower", "tulip")] == ["daisies", "dandelions", "roses", "sunflowers", "tulips"]
    assert ms.plural("bush") == "bushes" and ms.plural("iris") == "irises" and ms.plural("key") == "keys"


# -- gallery -------------------------------------------------------------------------------------------
def test_gallery_pick__large_selection_capped_by_class_share_and_a_lone_rose_kept():
    class_of = {f"d{i}": "daisy" for i in range(64)} | {f"n{i}": "dandelion" for i in range(43)} | {"r0": "rose", "t0": "tulip", "t1": "tulip"}
    pick = ms.gallery_pick(list(class_of), class_of, limit=48)
    got = Counter(class_of[f] for f in pick)
    assert len(pick) == 48 and got["rose"] == 1 and got["tulip"] == 1
    assert got["daisy"] > got["dandelion"] > 10
    assert pick[:3] == ["d0", "d1", "d2"]  # grouped by class, most first, selection order kept


def test_gallery_pick__small_selection_shown_whole_grouped_by_class():
    files = ["rose/c.jpg", "daisy/a.jpg", "rose/e.jpg"]
    assert ms.gallery_pick(files, CLASS_OF, limit=48) == ["rose/c.jpg", "rose/e.jpg", "daisy/a.jpg"]


def test_gallery_html__one_image_per_photo_with_class_colour_and_and_n_more():
    thumbs = {f: f"data:image/jpeg;base64,{i}" for i, f in enumerate(CLASS_OF)}
    out = ms.gallery_html(["daisy/a.jpg", "rose/c.jpg"], thumbs, CLASS_OF, {"daisy": "#0072B2", "rose": "#D55E00"}, more=3)
    assert out.count("<img ") == 2 and "#0072B2" in out and "#D55E00" in out and "and 3 more" in out
    assert 'title="rose · c.jpg"' in out
    assert "more" not in ms.gallery_html(["daisy/a.jpg"], thumbs, CLASS_OF, {})


def test_gallery_html__file_names_are_escaped():
    cls = {'daisy/"><script>.jpg': "daisy"}
    out = ms.gallery_html(list(cls), {f: "data:image/jpeg;base64,x" for f in cls}, cls, {})
    assert "<script>" not in out


# -- thumbnails ----------------------------------------------------------------------------------------
def test_thumbnail_uris__square_jpeg_data_uris_and_unreadable_photos_left_out():
    rng = np.random.default_rng(0)
    photos = {"a.jpg": Image.fromarray(rng.integers(0, 255, (96, 130, 3), np.uint8)), "broken.jpg": None}
    uris = ms.thumbnail_uris(photos, photos.get, size=64)
    assert list(uris) == ["a.jpg"] and uris["a.jpg"].startswith("data:image/jpeg;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(uris["a.jpg"].split(",", 1)[1])))
    assert img.format == "JPEG" and img.size == (64, 64)
    assert len(uris["a.jpg"]) < 8000  # even random noise (worst case for JPEG) stays small


def test_upload_thumb_key__uploads_never_collide_with_photo_files():
    assert ms.upload_thumb_key("rose/c.jpg") != "rose/c.jpg" and ms.upload_thumb_key("x.jpg").startswith(ms.UPLOAD_TAG + ":")

"""Bundled photos for the pages: thumbnails and the path guard."""
from __future__ import annotations

from app.photos import thumbnail

from ..conftest import FLOWERS


def test_thumbnail__square_rows_line_up_and_long_side_is_bounded():
    portrait = next(p for p in sorted((FLOWERS / "rose").glob("*.jpg")) if _size(p)[1] > _size(p)[0])
    rel = portrait.relative_to(FLOWERS).as_posix()
    assert thumbnail(FLOWERS, rel, 128, square=True).size == (128, 128)
    w, h = thumbnail(FLOWERS, rel, 128).size
    assert h == 128 and w < 128  # the whole photo, long side 128


def test_thumbnail__paths_outside_the_photo_folder_are_refused():
    assert thumbnail(FLOWERS / "rose", "../tulip/" + next((FLOWERS / "tulip").glob("*.jpg")).name) is None
    assert thumbnail(FLOWERS, "no/such.jpg") is None


def _size(p):
    from PIL import Image

    with Image.open(p) as im:
        return im.size

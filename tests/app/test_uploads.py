"""app.uploads: every kind of bad or unusual upload gives a usable photo or one clear line."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from app.uploads import clean_name, md_escape, open_upload

from .conftest import photo_bytes


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    bio = io.BytesIO()
    img.save(bio, fmt, **kw)
    return bio.getvalue()


def test_upload__real_photo_is_rgb_without_error():
    name, data = photo_bytes()
    p = open_upload(name, data)
    assert p.ok and p.error is None and p.image.mode == "RGB"
    assert p.notes[0].startswith("JPEG ")


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"%PDF-1.4 definitely not a photo", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not an image"),  # PNG signature, garbage after it
])
def test_upload__bad_content_is_one_line_error(data, words):
    p = open_upload("x.jpg", data)
    assert not p.ok and words in p.error and "\n" not in p.message()


def test_upload__truncated_jpeg_is_refused():
    _, data = photo_bytes()
    p = open_upload("cut.jpg", data[: len(data) // 2])
    assert not p.ok and "truncated" in p.error


def test_upload__over_size_limit_is_refused_before_decoding():
    p = open_upload("big.jpg", b"\xff" * 2048, max_bytes=1024)
    assert not p.ok and "over the" in p.error and "MB limit" in p.error


def _png_claiming(width: int, height: int) -> bytes:
    """A 1×1 PNG whose header claims width×height (a decompression bomb's signature)."""
    raw = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = raw.index(b"IHDR")
    raw[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(raw[ihdr : ihdr + 17])) & 0xFFFFFFFF
    raw[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(raw)


def test_upload__decompression_bomb_is_refused():
    p = open_upload("bomb.png", _png_claiming(20000, 20000))
    assert not p.ok and "decompression bomb" in p.error


def test_upload__animated_gif_uses_first_frame_with_a_note():
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    p = open_upload("anim.gif", data)
    assert p.ok and any("3 frames" in n and "first frame" in n for n in p.notes)
    r, g, b = np.asarray(p.image)[15, 20]
    assert r > 200 and b < 50  # the red first frame


@pytest.mark.parametrize("mode, fmt, words", [
    ("CMYK", "JPEG", "CMYK"),
    ("RGBA", "PNG", "transparency"),
    ("I;16", "PNG", "16-bit"),
    ("L", "PNG", "greyscale"),
])
def test_upload__other_colour_modes_become_rgb_with_a_note(mode, fmt, words):
    img = Image.new(mode, (48, 40))
    if mode == "RGBA":
        img = Image.new("RGBA", (48, 40), (0, 0, 0, 0))  # fully transparent → white
    p = open_upload(f"x.{fmt.lower()}", encode(img, fmt))
    assert p.ok and p.image.mode == "RGB" and p.image.size == (48, 40)
    assert any(words in n for n in p.notes), p.notes
    if mode == "RGBA":
        assert np.asarray(p.image).min() == 255


def test_upload__exif_orientation_is_applied():
    img = Image.new("RGB", (60, 20), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display turned 90° clockwise
    p = open_upload("phone.jpg", encode(img, "JPEG", exif=exif.tobytes()))
    assert p.ok and p.image.size == (20, 60)
    assert any("EXIF orientation" in n for n in p.notes)


def test_upload__names_are_cleaned_and_escaped_for_markdown():
    assert clean_name("../../etc/x\x00y.jpg") == "xy.jpg"
    assert clean_name("a" * 200 + ".jpg").endswith("…") and len(clean_name("a" * 200)) == 80
    p = open_upload("**<b>bad<b>**.jpg", b"nope")
    msg = p.message()
    assert "\\*\\*\\<b\\>" in msg and md_escape("a_b") == "a\\_b"


def test_upload__very_large_photo_is_reduced_with_a_note():
    p = open_upload("wide.png", encode(Image.new("RGB", (3000, 1000), (10, 20, 30)), "PNG"))
    assert p.ok and max(p.image.size) == 1024 and any("reduced from 3000×1000" in n for n in p.notes)


def test_upload__black_photo_is_usable_with_a_flat_colour_note():
    p = open_upload("black.png", encode(Image.new("RGB", (200, 200)), "PNG"))
    assert p.ok and p.error is None
    assert any("one flat colour" in n for n in p.notes), p.notes
    assert "\n" not in p.message()


def test_upload__100000_by_1_stripe_is_usable_with_a_note_and_no_exception():
    from ssl_train.images import square_resize

    p = open_upload("stripe.png", encode(Image.new("RGB", (100000, 1), (90, 120, 40)), "PNG"))
    assert p.ok and p.image.size == (1024, 1)
    assert any("elongated" in n for n in p.notes) and any("very small" in n for n in p.notes), p.notes
    assert any("one flat colour" in n for n in p.notes), p.notes  # one green: no detail
    assert square_resize(p.image, 32).size == (32, 32)  # what every model does to it next


def test_upload__real_photo_gets_no_flat_or_elongated_note():
    p = open_upload(*photo_bytes("rose"))
    assert p.ok and not any("flat colour" in n or "elongated" in n for n in p.notes), p.notes


def test_size_limit_text__says_the_megabytes_and_what_to_do():
    from app.config import MAX_UPLOAD_MB
    from app.uploads import size_limit_text

    text = size_limit_text()
    assert f"{MAX_UPLOAD_MB} MB per photo" in text and "smaller" in text

"""Opening photos: the one place a file becomes an RGB ``PIL.Image`` (training and app alike).

Pure functions on Pillow images; no torch. EXIF orientation is applied first (a phone photo stored
sideways would otherwise fool the rotation task), then every mode (greyscale, CMYK, RGBA, palette,
16-bit) becomes 8-bit RGB.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
MAX_PIXELS = 40_000_000  # larger is treated as a decompression bomb, not a photo
MAX_ASPECT = 10.0  # a longer side over 10× the shorter is a strip, not a photo: its centre-crop resize would
# blow up (a 375-byte 100000×1 PNG becomes a 9,600,000×96 image at 96 px), so it is refused from the header


class BadImage(ValueError):
    """A file that is not a readable photo; the message says why in one line."""


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode → 8-bit RGB. Transparency is composited on white; 16-bit is rescaled."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        return Image.fromarray(np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, img).convert("RGB")
    return img.convert("RGB")


def open_rgb(source: str | Path | bytes | BinaryIO, max_pixels: int = MAX_PIXELS, max_aspect: float = MAX_ASPECT) -> Image.Image:
    """Open a photo fully decoded as RGB with EXIF orientation applied.

    Raises ``BadImage`` (one line) for non-images, truncated files, decompression bombs and strips
    (one side over ``max_aspect`` times the other) — size and aspect are read from the header,
    before anything is decoded.
    Animated images yield their first frame.
    """
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source)
            w, h = img.size
            if w * h > max_pixels:
                raise BadImage(f"image is {w}×{h} pixels, over the {max_pixels:,}-pixel limit (a decompression bomb?)")
            if max(w, h) > max_aspect * max(1, min(w, h)) or min(w, h) < 1:
                raise BadImage(f"image is {w}×{h} pixels: one side over {max_aspect:g}× the other, a strip rather than a photo")
            img.seek(0)
            img.load()  # decode now: truncated files fail here, not later
            img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    except BadImage:
        raise
    except Image.DecompressionBombError as e:
        raise BadImage(f"image too large in pixels (decompression bomb): {e}") from None
    except Image.DecompressionBombWarning as e:
        raise BadImage(f"image too large in pixels (decompression bomb): {e}") from None
    except (OSError, ValueError, SyntaxError, Image.UnidentifiedImageError, EOFError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BadImage(f"not a readable image ({msg})") from None


def square_resize(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bicubic, antialiased) and centre-crop to size×size."""
    w, h = img.size
    s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def to_uint8_chw(img: Image.Image) -> np.ndarray:
    """RGB PIL image → uint8 array (3, H, W)."""
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))


def dhash(img: Image.Image, bits: int = 16) -> np.ndarray:
    """Difference hash: greyscale (bits+1)×bits thumbnail, sign of each horizontal gradient.

    Returns a bool array of bits² entries (256 by default). On data/flowers, resized copies and
    burst shots of one scene differ in ≤ 32 of 256 bits, while the closest pair of unrelated photos
    differs in 34 (measured with all 3,479 photos; see tests/ssl_train/test_data.py).
    """
    g = np.asarray(img.convert("L").resize((bits + 1, bits), Image.Resampling.BILINEAR), dtype=np.int16)
    return (g[:, 1:] > g[:, :-1]).ravel()

"""The one place an uploaded file becomes a photo (no Streamlit here).

``open_upload(name, data)`` never raises for a bad file: it returns an ``UploadedPhoto`` whose
``error`` is one line saying what is wrong (empty, too big, not an image, truncated, a
decompression bomb), or whose ``image`` is 8-bit RGB with EXIF orientation applied (through
``ssl_train.images.open_rgb``, exactly like training) and whose ``notes`` say what was done to get
there (first frame of an animation, CMYK/RGBA/16-bit/greyscale converted, EXIF rotation applied,
very large photo reduced).
"""
from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ssl_train.images import MAX_PIXELS, BadImage, open_rgb

from .config import MAX_UPLOAD_MB

ACCEPTED_TYPES = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")  # = ssl_train.images.IMAGE_SUFFIXES
KEEP_MAX_SIDE = 1024  # larger decoded photos are reduced to this long side (models see ≤ 512 px; bounds session memory)
FLAT_SPREAD = 3.0  # pixel levels (of 255): a photo whose values spread less than this is one flat colour (= app.novelty.FLAT_SPREAD)
ELONGATED = 10.0  # long side / short side beyond which the models' centre square shows little of the photo


def size_limit_text(max_mb: int = MAX_UPLOAD_MB) -> str:
    """One line for under an uploader: the per-photo size limit, visible (the uploader itself says it
    only in a tooltip on a refused file, and the app never receives a file over the limit to say more)."""
    return (f"Up to {max_mb} MB per photo. A bigger file is refused by the uploader before it reaches the app: it stays in the "
            f"list above marked in red and is not used — save it smaller (e.g. 2000 pixels wide, JPEG) and upload that.")

_EXIF_ORIENTATION = 0x0112
_ORIENTATION_TEXT = {
    2: "mirrored", 3: "turned 180°", 4: "flipped upside down", 5: "mirrored and turned",
    6: "turned 90° clockwise", 7: "mirrored and turned", 8: "turned 90° counter-clockwise",
}
_MODE_TEXT = {
    "L": "greyscale", "LA": "greyscale with transparency", "P": "palette colours", "PA": "palette with transparency",
    "RGBA": "RGB with transparency", "CMYK": "CMYK", "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV",
    "I;16": "16-bit greyscale", "I;16B": "16-bit greyscale", "I;16L": "16-bit greyscale", "I;16N": "16-bit greyscale",
    "I": "32-bit integer", "F": "32-bit float", "1": "black-and-white", "RGBa": "RGB with transparency",
}


@dataclass
class UploadedPhoto:
    """An uploaded file after checking: ``image`` (RGB) when usable, else ``error`` (one line)."""

    name: str
    digest: str  # sha1 of the bytes: identifies the photo in caches and tables
    size_bytes: int
    image: Image.Image | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.image is not None

    def message(self) -> str:
        """One line for the page: the error, or what was done to the file."""
        return md_escape(f"{self.name}: {self.error if self.error else '; '.join(self.notes)}")


def clean_name(name: str, limit: int = 80) -> str:
    """A file name fit to show: no control characters, no folders, at most ``limit`` characters."""
    name = re.sub(r"[\x00-\x1f\x7f]", "", str(name)).replace("\\", "/").rsplit("/", 1)[-1].strip() or "unnamed file"
    return name if len(name) <= limit else name[: limit - 1] + "…"


def md_escape(text: str) -> str:
    """``text`` shown literally inside Streamlit Markdown (st.error, st.markdown, captions)."""
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~$:])", r"\\\1", text)


def open_upload(name: str, data: bytes, max_bytes: int = MAX_UPLOAD_MB * 1024 * 1024, max_pixels: int = MAX_PIXELS) -> UploadedPhoto:
    """Check and decode one uploaded file. Never raises for bad content."""
    shown = clean_name(name)
    photo = UploadedPhoto(shown, hashlib.sha1(data).hexdigest(), len(data))
    if not data:
        photo.error = "the file is empty (0 bytes); upload a JPEG, PNG or WebP photo"
        return photo
    if len(data) > max_bytes:
        photo.error = f"the file is {len(data) / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit; upload a smaller photo"
        return photo
    try:
        img = open_rgb(data, max_pixels=max_pixels, max_aspect=float("inf"))  # a strip is shrunk with a note below, not refused
    except BadImage as e:
        reason = str(e)
        if "cannot identify image file" in reason:
            reason = "not an image (no photo format Pillow can read)"
        if reason.startswith("not a"):
            reason += "; upload a photo (JPEG, PNG, WebP, …)"
        photo.error = reason
        return photo
    except Exception as e:  # noqa: BLE001 — a decoder bug must not take the page down
        photo.error = f"could not decode the file ({type(e).__name__}); try another photo"
        return photo
    photo.notes = _describe(data, img)
    if max(img.size) > KEEP_MAX_SIDE:
        w, h = img.size
        s = KEEP_MAX_SIDE / max(w, h)
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
        photo.notes.append(f"reduced from {w}×{h} to {img.size[0]}×{img.size[1]} pixels")
    photo.image = img
    return photo


def _describe(data: bytes, rgb: Image.Image) -> list[str]:
    """What open_rgb did to this file, read from its header (no second decode)."""
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            src = Image.open(io.BytesIO(data))
            fmt = src.format or "image"
            frames = int(getattr(src, "n_frames", 1) or 1)
            mode = src.mode
            orientation = src.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 — notes are best effort
        return notes
    notes.append(f"{fmt} {rgb.size[0]}×{rgb.size[1]}")
    if frames > 1:
        notes.append(f"animated ({frames} frames): using the first frame")
    if mode != "RGB":
        extra = ", transparency shown on white" if mode in ("RGBA", "LA", "PA", "RGBa") or (mode == "P" and "transparency" in src.info) else ""
        notes.append(f"converted from {_MODE_TEXT.get(mode, mode)} to 8-bit RGB{extra}")
    if orientation in _ORIENTATION_TEXT:
        notes.append(f"EXIF orientation applied (stored {_ORIENTATION_TEXT[orientation]})")
    if min(rgb.size) < 32:
        notes.append("very small: the models see an enlarged copy")
    w, h = rgb.size
    if max(w, h) / max(1, min(w, h)) > ELONGATED:
        notes.append(f"extremely elongated ({max(w, h) / max(1, min(w, h)):.0f}:1): the models see only its middle square")
    small = rgb.copy()
    small.thumbnail((64, 64))  # the spread of a 64-px copy: cheap, and a flat photo stays flat
    spread = float(np.asarray(small, np.float32).reshape(-1, 3).std(0).max())  # per channel: a flat green is still flat
    if spread < FLAT_SPREAD:
        notes.append(f"one flat colour (pixel values vary by {spread:.1f} of 255): there is nothing in it for a model to recognise")
    return notes

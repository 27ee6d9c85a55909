"""Light tiles: a small WebP of each image, made once at index time, shown wherever images are listed.

A phone photo is 3-5 MB (the intake takes up to 20 MB); a results page of originals weighs tens of
megabytes, and every copy goes through the web server. A 384-pixel WebP is ~20-40 KB. Thumbnails
are derived data, kept apart from the catalog under VS_DATA_DIR/thumbs/, keyed by the image's
content id, and remade from the stored original whenever one is missing. They are made from the
intake's working bitmap (at least intake.WORK_SIZE on its short side), never from a full-size decode.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image

from .durable import TMP_PREFIX
from .intake import load_image

SIZE = 384  # longest side, in pixels: sharp in a 4-column grid on a desktop, and on a phone
QUALITY = 80
# libwebp's effort, 0-6: 2 encodes a 384-pixel tile of a photo in about half the time of the default 4,
# for 3% more bytes (17.1 against 16.6 KB over the sample photos).
METHOD = 2
SUFFIX = ".webp"
# Shrink by a whole factor (a box filter) first while the last, Lanczos step still shrinks >= this much:
# 2.9 against 6.8 ms from a 1000 x 750 bitmap, 48-51 dB PSNR from a Lanczos thumbnail of the full decode.
REDUCING_GAP = 1.0


def fitted(size: tuple[int, int]) -> tuple[int, int]:
    """The thumbnail's size for an image of `size`: at most SIZE on its longest side, never enlarged."""
    w, h = size
    if max(w, h) <= SIZE:
        return size
    scale = SIZE / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def shrink(image: Image.Image) -> Image.Image:
    """`image` at most SIZE pixels on its longest side (itself when it is no larger)."""
    size = fitted(image.size)
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)


def make(image: Image.Image) -> bytes:
    """The WebP bytes of a decoded, oriented RGB image, at most SIZE pixels on its longest side."""
    out = io.BytesIO()
    shrink(image).save(out, format="WEBP", quality=QUALITY, method=METHOD)
    return out.getvalue()


class Thumbnails:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, image_id: str) -> Path:
        return self.root / image_id[:2] / f"{image_id}{SUFFIX}"

    def put(self, image_id: str, image: Image.Image) -> Path:
        return self.put_bytes(image_id, make(image))

    def put_bytes(self, image_id: str, data: bytes) -> Path:
        """Store a thumbnail made already (`make`, in an intake thread)."""
        path = self.path(image_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # derived data: no fsync, a lost one is remade
        return path

    def ensure(self, image_id: str, original: Path, max_pixels: int) -> Path:
        """The thumbnail of an image, made now from its stored original if it is missing."""
        path = self.path(image_id)
        if not path.exists():
            image = load_image(original.read_bytes(), original.name, 1 << 62, max_pixels).image
            self.put(image_id, image)
        return path

    def remove(self, image_id: str) -> None:
        self.path(image_id).unlink(missing_ok=True)

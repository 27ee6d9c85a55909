"""Light tiles: a small WebP of each image, made once at index time, shown wherever images are listed.

A phone photo is 3-5 MB (the intake takes up to 20 MB); a results page of originals weighs tens of
megabytes, and every copy goes through the web server. A 384-pixel WebP is ~20-40 KB. Thumbnails
are derived data, kept apart from the catalog under VS_DATA_DIR/thumbs/, keyed by the image's
content id, and remade from the stored original whenever one is missing.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image

from .intake import load_image

SIZE = 384  # longest side, in pixels: sharp in a 4-column grid on a desktop, and on a phone
QUALITY = 80
SUFFIX = ".webp"


def make(image: Image.Image) -> bytes:
    """The WebP bytes of a decoded, oriented RGB image, at most SIZE pixels on its longest side."""
    small = image.copy()
    small.thumbnail((SIZE, SIZE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, format="WEBP", quality=QUALITY, method=4)
    return out.getvalue()


class Thumbnails:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, image_id: str) -> Path:
        return self.root / image_id[:2] / f"{image_id}{SUFFIX}"

    def put(self, image_id: str, image: Image.Image) -> Path:
        path = self.path(image_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        tmp.write_bytes(make(image))
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

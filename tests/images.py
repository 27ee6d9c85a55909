"""Image files made by tests: every format and mode the intake accepts, and bad ones it refuses."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def picture(size: tuple[int, int] = (64, 48), seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A random but deterministic picture (different seeds give different content hashes)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr, "RGB").convert(mode)


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def jpeg(seed: int = 0, size: tuple[int, int] = (64, 48)) -> bytes:
    return encode(picture(size, seed), "JPEG", quality=90)


def png(seed: int = 0, size: tuple[int, int] = (64, 48)) -> bytes:
    return encode(picture(size, seed), "PNG")

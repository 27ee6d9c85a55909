"""The words in the picture in the library: read when an image is added, read again on demand.

A new image's text is read on the intake threads (library/indexer.py), from its own decode of the
original at the OCR's size (the working bitmap is too small for small print), while BLIP captions
the group before it. `reindex --ocr` reads again, from the stored originals, the text of every image
read by another OCR model (or by none), never a person's correction; no other model runs.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from ..errors import ModelLoadError
from ..records import ImageRecord
from ..stages.ocr import TextReader
from .intake import decode_at
from .state import Progress, State

log = logging.getLogger(__name__)


def read_fields(reader: TextReader | None, data: bytes) -> dict[str, str]:
    """`ocr_text` and `ocr_model` for the record of an image's bytes; {} when the OCR is off or fails
    (the image is indexed all the same, and `reindex --ocr` tries again)."""
    if reader is None:
        return {}
    try:
        text = reader.read(decode_at(data, reader.side))
    except Exception as exc:  # noqa: BLE001 - an OCR failure must never lose the image
        log.warning("could not read the text in a picture (%s: %s); `reindex --ocr` tries again",
                    type(exc).__name__, exc)
        return {}
    return {"ocr_text": text, "ocr_model": reader.identity}


def stale(record: ImageRecord, reader: TextReader) -> bool:
    """Read by another OCR model or by none, and not corrected by a person."""
    return not record.ocr_edited and record.ocr_model != reader.identity


def read_again(state: State, progress: Progress | None = None) -> int:
    """Read the text of every image whose `ocr_model` is not the current one, from its stored original;
    returns how many were read. Each record is written as soon as its text is read (an interrupted run
    keeps what it did), under the writer lock, and only if no person corrected the text meanwhile."""
    reader = state.text_reader
    if reader is None:
        raise ModelLoadError("The OCR is off (VS_OCR=off, or rapidocr is not installed): nothing to read with.")
    todo = [r for r in state.catalog.records() if stale(r, reader)]
    for done, record in enumerate(todo, 1):
        try:
            fields = read_fields(reader, Path(record.path).read_bytes())
        except OSError as exc:
            log.warning("%s: its stored original cannot be read (%s); run `reindex` first", record.filename, exc)
            fields = {}
        if fields:
            _write(state, record.id, fields)
        if progress:
            progress(done, len(todo), "reading the text in stored images")
    return len(todo)


def _write(state: State, image_id: str, fields: dict[str, str]) -> None:
    with state.writer():
        current = state.catalog.get(image_id)
        if current is None or current.ocr_edited:  # removed, or corrected by a person, while it was read
            return
        record = replace(current, **fields)
        state.catalog.put_record(record)  # its vectors are kept
        state.store.update_metadata([record])

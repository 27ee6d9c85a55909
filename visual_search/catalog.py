"""The catalog: stored originals and one JSON record beside each, under VS_DATA_DIR/images/.

The catalog is the source of truth for *which images exist*; the vector store only holds vectors
derived from it and can always be rebuilt from it (after a model change, or a crash). Every write
is a temp file + atomic rename, so a killed process leaves either the old state or the new one.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from .records import ImageRecord

_TMP = ".tmp-"


class Catalog:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _dir(self, image_id: str) -> Path:
        if len(image_id) != 64 or not all(c in "0123456789abcdef" for c in image_id):
            raise ValueError(f"not an image id: {image_id[:80]!r}")
        return self.root / image_id[:2]

    def original_path(self, image_id: str, ext: str) -> Path:
        return self._dir(image_id) / f"{image_id}{ext}"

    def _record_path(self, image_id: str) -> Path:
        return self._dir(image_id) / f"{image_id}.json"

    def empty(self) -> bool:
        """No record at all (stops at the first one found)."""
        return next(self.root.glob("??/*.json"), None) is None

    def has(self, image_id: str) -> bool:
        return self._record_path(image_id).exists()

    def put_original(self, image_id: str, ext: str, data: bytes) -> Path:
        """Write the original first: a record never points at a missing file."""
        path = self.original_path(image_id, ext)
        _atomic_write(path, data)
        return path

    def put_record(self, record: ImageRecord) -> None:
        doc = record.to_dict()
        doc["path"] = Path(record.path).name  # stored relative: the data dir may move
        _atomic_write(self._record_path(record.id), json.dumps(doc, ensure_ascii=False).encode())

    def get(self, image_id: str) -> ImageRecord | None:
        try:
            doc = json.loads(self._record_path(image_id).read_text())
        except (OSError, ValueError):
            return None
        return self._from_doc(doc)

    def _from_doc(self, doc: dict) -> ImageRecord:
        doc["path"] = str(self._dir(doc["id"]) / doc["path"])
        return ImageRecord(**doc)

    def records(self) -> Iterator[ImageRecord]:
        for path in sorted(self.root.glob("??/*.json")):
            try:
                yield self._from_doc(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError, KeyError):
                continue  # unreadable record: reconcile() removes it

    def set_caption(self, image_id: str, caption: str) -> ImageRecord:
        record = self.get(image_id)
        assert record is not None
        updated = replace(record, caption=caption, caption_edited=True)
        self.put_record(updated)
        return updated

    def remove(self, image_id: str) -> None:
        """Record first (the image stops existing), then the original."""
        record = self.get(image_id)
        self._record_path(image_id).unlink(missing_ok=True)
        if record is not None:
            Path(record.path).unlink(missing_ok=True)

    def sweep(self) -> int:
        """Delete what a killed writer left: temp files, originals without a record, broken records."""
        removed = 0
        for path in self.root.glob("??/*"):
            name = path.name
            stem = name.split(".", 1)[0]
            broken_record = name.endswith(".json") and (self.get(stem) is None or not Path(self.get(stem).path).exists())
            orphan = not name.endswith(".json") and not (path.parent / f"{stem}.json").exists()
            if name.startswith(_TMP) or orphan or broken_record:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{_TMP}{os.getpid()}-{path.name}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)

"""The catalog: stored originals and one JSON record beside each, under VS_DATA_DIR/images/.

The catalog is the truth: which images exist, what they are called and captioned, and their
vectors, kept in the record under a key naming the channel and the model identity
(`caption|<captioner>|<text model>`, `visual|<CLIP>`), base64 float32. The vector store (Chroma) is an
index built from it: deleted or stale, it is rebuilt from these records without running a model.
Every write is whole and durable (durable.py): a killed process or a power cut leaves either the old
record or the new one, never half of one. Records are whole files written at once, which suits a
mounted storage bucket.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from ..records import ImageRecord
from .durable import TMP_PREFIX, atomic_write

Vectors = dict[str, np.ndarray]  # vector_key(kind, identity) -> float32 vector
_IMAGE_ID = re.compile(r"[0-9a-f]{64}")  # a sha256 in hex: the only names a record path is made from


def image_id(content_id: str, owner: str = "") -> str:
    """An image's id: the sha256 of its bytes. A visitor's private upload's is scoped to its owner, so
    that nobody else finds it by hashing the same file, nor keeps others from adding that file."""
    return content_id if not owner else hashlib.sha256(f"{owner}\n{content_id}".encode()).hexdigest()


def vector_key(kind: str, identity: str) -> str:
    return f"{kind}|{identity}"


def _encode_vector(v: np.ndarray) -> str:
    return base64.b64encode(np.asarray(v, "<f4").tobytes()).decode("ascii")


def _decode_vector(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), "<f4").astype(np.float32)


class Catalog:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _dir(self, image_id: str) -> Path:
        if not _IMAGE_ID.fullmatch(image_id):
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
        atomic_write(path, data)
        return path

    def put_record(self, record: ImageRecord, vectors: Mapping[str, np.ndarray] | None = None) -> None:
        """Write a record with its vectors (None: keep the vectors stored for it now)."""
        if vectors is None:
            vectors = self.vectors(record.id)
        doc = record.to_dict()
        doc["path"] = Path(record.path).name  # stored relative: the data dir may move
        doc["vectors"] = {key: _encode_vector(v) for key, v in vectors.items()}
        atomic_write(self._record_path(record.id), json.dumps(doc, ensure_ascii=False).encode())

    def _doc(self, image_id: str) -> dict | None:
        try:
            return json.loads(self._record_path(image_id).read_text())
        except (OSError, ValueError):
            return None

    def get(self, image_id: str) -> ImageRecord | None:
        doc = self._doc(image_id)
        return None if doc is None else self._from_doc(doc)

    def find(self, key: object) -> ImageRecord | None:
        """The record of a full id, or of an id prefix of 8+ hex characters that only one image has."""
        key = str(key or "").strip().lower()
        if _IMAGE_ID.fullmatch(key):
            return self.get(key)
        if 8 <= len(key) < 64 and all(c in "0123456789abcdef" for c in key):
            matches = [p.stem for p in self.root.glob(f"{key[:2]}/{key}*.json")]
            return self.get(matches[0]) if len(matches) == 1 else None
        return None

    def vectors(self, image_id: str) -> Vectors:
        """The stored vectors of an image, by `vector_key` (empty when none or no such image)."""
        doc = self._doc(image_id) or {}
        return {key: _decode_vector(text) for key, text in (doc.get("vectors") or {}).items()}

    def _from_doc(self, doc: dict) -> ImageRecord:
        doc.pop("vectors", None)
        doc["path"] = str(self._dir(doc["id"]) / doc["path"])
        return ImageRecord(**doc)

    def records(self) -> Iterator[ImageRecord]:
        for record, _keys in self.entries():
            yield record

    def entries(self, sweep: bool = False) -> Iterator[tuple[ImageRecord, frozenset[str]]]:
        """Every readable record with the keys of the vectors it holds (the vectors are not decoded),
        in id order. With `sweep`, also delete what a killed writer left on the way (see `sweep`).

        One pass of plain file reads: a start walks the whole catalog, 100k records on a bucket.
        """
        root = str(self.root)
        for shard in sorted(os.listdir(root)) if os.path.isdir(root) else []:
            folder = os.path.join(root, shard)
            if len(shard) != 2 or not os.path.isdir(folder):
                continue
            names = set(os.listdir(folder))
            for name in sorted(names):
                full = os.path.join(folder, name)
                stem = name.split(".", 1)[0]
                if name.startswith(TMP_PREFIX) or (not name.endswith(".json") and f"{stem}.json" not in names):
                    if sweep:  # a temp file, or an original whose record was never written
                        os.unlink(full)
                    continue
                if not name.endswith(".json"):
                    continue
                try:
                    with open(full, "rb") as fh:
                        doc = json.loads(fh.read())
                    if str(doc.get("path", "")) not in names:
                        raise KeyError("the original is missing")
                    keys = frozenset(doc.get("vectors") or ())
                    record = self._from_doc(doc)
                except (OSError, ValueError, TypeError, KeyError, AttributeError):
                    if sweep:  # unreadable, or pointing at a missing original: the write never finished
                        os.unlink(full)
                    continue
                yield record, keys

    def set_caption(self, image_id: str, caption: str, caption_vectors: Mapping[str, np.ndarray]) -> ImageRecord:
        """A person's caption, with its vectors: every caption vector of the old words is dropped."""
        record = self.get(image_id)
        assert record is not None
        updated = replace(record, caption=caption, caption_edited=True)
        kept = {k: v for k, v in self.vectors(image_id).items() if not k.startswith("caption|")}
        self.put_record(updated, {**kept, **caption_vectors})
        return updated

    def remove(self, image_id: str) -> None:
        """Record first (the image stops existing), then the original."""
        record = self.get(image_id)
        self._record_path(image_id).unlink(missing_ok=True)
        if record is not None:
            Path(record.path).unlink(missing_ok=True)


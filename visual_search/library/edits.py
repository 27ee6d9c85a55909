"""A person's changes to indexed images: captions, the text in the picture, tags, deletes, and
visitors' uploads expiring.

Who may change what is the public demo's rule (demo/visibility.py). A corrected caption runs the
text encoder BEFORE the writer lock is taken; the rest only writes.
"""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

from ..demo.visibility import check_may_change, check_visible, visible
from ..errors import InvalidQuery, NotFound
from ..records import ImageRecord
from ..search.filters import MAX_TAGS, normalise_tag
from ..stages.ocr import MAX_OCR_CHARS
from ..stages.query import clean_text
from ..times import parse_iso
from .catalog import Catalog, image_id
from .embedded_text import printable
from .metadata import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS
from .state import State

MAX_CAPTION_CHARS = 500
MAX_USER_TAGS = MAX_TAGS
_LONG_AGO = datetime.min.replace(tzinfo=timezone.utc)


def held(catalog: Catalog, content_id: str, visitor: str | None) -> ImageRecord | None:
    """The record of these bytes (their sha256) that `visitor` sees: their own upload's copy, else the
    shared collection's. Another visitor's copy is never it (library/catalog.image_id)."""
    for candidate in dict.fromkeys((image_id(content_id, visitor or ""), content_id)):
        record = catalog.get(candidate)
        if record is not None and visible(record, visitor):
            return record
    return None


def clean_ocr_text(text: object) -> str:
    """A person's text in the picture: control characters and surplus spaces gone, line breaks kept."""
    if not isinstance(text, str):
        raise InvalidQuery("The text in the picture must be text.")
    lines = ("".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in line) for line in text.splitlines())
    clean = "\n".join(line for line in (" ".join(raw.split()) for raw in lines) if line)
    if len(clean) > MAX_OCR_CHARS:
        raise InvalidQuery(f"The text in the picture is {len(clean):,} characters long; "
                           f"the limit is {MAX_OCR_CHARS:,}.")
    return clean


class Editor:
    def __init__(self, state: State) -> None:
        self.s = state

    def get(self, image_id: str, visitor: str | None = None) -> ImageRecord:
        """The record of an id, or of a unique id prefix (8+ characters, as `list` shows); another
        visitor's upload is not found (demo/visibility.py)."""
        record = self.s.catalog.find(image_id)
        if record is None:
            raise NotFound(f"No indexed image has the id {str(image_id)[:80]!r}.")
        return check_visible(record, visitor, image_id)

    def list(self, visitor: str | None = None) -> list[ImageRecord]:
        return sorted((r for r in self.s.catalog.records() if visible(r, visitor)),
                      key=lambda r: (r.added_at, r.filename))

    def set_caption(self, image_id: str, caption: str, visitor: str | None = None,
                    admin: bool = False) -> ImageRecord:
        """Replace a caption by a person's words; it is re-embedded and searchable at once."""
        text = clean_text(caption, MAX_CAPTION_CHARS, what="caption")
        record = self.get(image_id, visitor)
        check_may_change(record, visitor, admin)
        vector = self.s.compute.embed_captions([text])  # the model runs before the writer lock is taken
        with self.s.writer():
            record = self.s.catalog.set_caption(self.get(record.id).id, text, {self.s.keys()[0]: vector[0]})
            self.s.store.upsert_captions([record], vector)
            return record

    def set_tags(self, image_id: str, tags: Sequence[str], visitor: str | None = None,
                 admin: bool = False) -> ImageRecord:
        """Replace an image's tags by a person's; kept through model changes, filterable at once."""
        clean = tuple(dict.fromkeys(t for t in (normalise_tag(t) for t in tags) if t))
        if len(clean) > MAX_USER_TAGS:
            raise InvalidQuery(f"An image can have at most {MAX_USER_TAGS} tags.")
        return self._change(image_id, visitor, admin, tags=clean, tags_edited=True)

    def set_details(self, image_id: str, title: str | None = None, description: str | None = None,
                    visitor: str | None = None, admin: bool = False) -> ImageRecord:
        """A person's title and description (None: leave it, "": clear it). Kept when the file is read
        again (library/metadata.py `apply`), searchable by its words at once."""
        changes = {}
        for name, value, limit in (("title", title, MAX_TITLE_CHARS), ("description", description,
                                                                       MAX_DESCRIPTION_CHARS)):
            if value is None:
                continue
            if not isinstance(value, str):
                raise InvalidQuery(f"The {name} must be text.")
            changes[name] = printable(value)
            if len(changes[name]) > limit:
                raise InvalidQuery(f"The {name} is {len(changes[name]):,} characters long; the limit is {limit:,}.")
        return self._change(image_id, visitor, admin, **changes, details_edited=True)

    def set_ocr_text(self, image_id: str, text: str, visitor: str | None = None,
                     admin: bool = False) -> ImageRecord:
        """Replace the words read in a picture by a person's (empty clears them); searchable at once, never
        read again by `reindex --ocr`."""
        clean = clean_ocr_text(text)
        return self._change(image_id, visitor, admin, ocr_text=clean, ocr_edited=True)

    def _change(self, image_id: str, visitor: str | None, admin: bool, **fields) -> ImageRecord:
        """A person's edit of fields that no vector depends on: the record and the index's metadata (and
        so the filters and the word index) change, its vectors are kept."""
        with self.s.writer():
            current = self.get(image_id, visitor)
            check_may_change(current, visitor, admin)
            record = replace(current, **fields)
            self.s.catalog.put_record(record)
            self.s.store.update_metadata([record])
            return record

    def remove(self, image_id: str, visitor: str | None = None, admin: bool = False) -> ImageRecord:
        """Delete an image: its catalog record and original first, then its vectors and thumbnail."""
        with self.s.writer():
            record = self.get(image_id, visitor)
            check_may_change(record, visitor, admin)
            self._forget([record])
            return record

    def expire_uploads(self, now: datetime | None = None) -> list[ImageRecord]:
        """Remove visitors' uploads older than VS_VISITOR_TTL_HOURS; the shared collection is never touched."""
        cutoff = (now or datetime.now(timezone.utc)) - timedelta(hours=self.s.settings.visitor_ttl_hours)
        old = [r for r in self.s.catalog.records() if r.owner and (parse_iso(r.added_at) or _LONG_AGO) <= cutoff]
        if old:
            with self.s.writer():
                self._forget(old)
        return old

    def thumbnail(self, record: ImageRecord) -> Path:
        """The small WebP shown for an image in grids (made from the stored original if missing)."""
        return self.s.thumbnails.ensure(record.id, Path(record.path), self.s.settings.max_pixels)

    def _forget(self, records: list[ImageRecord]) -> None:
        for record in records:
            self.s.catalog.remove(record.id)
        self.s.store.delete([r.id for r in records])
        for record in records:
            self.s.thumbnails.remove(record.id)

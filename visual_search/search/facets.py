"""The filterable fields of every indexed image, in memory: who may see it, when it was added, its
tags and its file name.

Why: a Chroma `where` costs tens of milliseconds at 10,000 images whatever it lets through (the
metadata is read from SQLite on every query: 40 ms for "the newer half", 61 ms for a public-demo
visitor's `owner in (...)`, against 2 ms for the unfiltered query), which made a filtered search
cost 4-28x an unfiltered one. From this table a filter's passing set is a numpy mask in
microseconds, and retrieval.py asks the index for more neighbours and keeps those that pass, or
gives it the passing ids when they are few: the answer is still the best of every image that passes.

The store keeps the table in step with its own writes (store.py). Writes by another process on the
same data dir are noticed by the engine (a stamp file touched by every writer) and the table is
read again; an id the table does not know is looked up before it is judged (`Selection.keep`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Mapping

import numpy as np

from ..times import timestamp
from .filters import SearchFilter, normalise_tag

_NAME_CACHE = 8  # the last few file-name masks: typing a name into the filter row repeats them


@dataclass(frozen=True)
class Facet:
    """What a filter or a visitor's visibility reads of one image."""

    id: str
    added_ts: int
    owner: str
    tags: frozenset[str]
    name: str  # the file name in lower case

    @classmethod
    def from_metadata(cls, image_id: str, meta: Mapping) -> "Facet":
        """From the metadata the store keeps beside a caption vector (store._to_metadata)."""
        ts = meta.get("added_ts")
        return cls(image_id, int(ts) if ts is not None else timestamp(meta.get("added_at", "")),
                   str(meta.get("owner") or ""), frozenset(normalise_tag(t) for t in meta.get("tags") or ()),
                   str(meta.get("filename") or "").lower())


@dataclass(frozen=True)
class Selection:
    """The images one filter and one visitor's visibility let through, as of when it was made."""

    mask: np.ndarray  # by row; True = passes
    rows: Mapping[str, int]  # the table's live id -> row map
    count: int  # how many pass
    total: int  # how many the table holds
    ids_of: list[str]  # row -> id (the table's live list)
    filter: SearchFilter | None = None
    visitor: str | None = None
    lookup: Callable[[list[str]], list[Facet]] | None = None  # the facets of ids the table did not know

    def with_lookup(self, lookup: Callable[[list[str]], list[Facet]]) -> "Selection":
        return replace(self, lookup=lookup)

    def ids(self) -> list[str]:
        return [self.ids_of[r] for r in np.flatnonzero(self.mask)]

    def keep(self, ids: Iterable[str]) -> set[str]:
        """Those of `ids` that pass; an id unknown to the table is looked up and judged, never guessed."""
        ids = list(dict.fromkeys(ids))  # an image found on both channels is judged once
        rows = np.fromiter((self.rows.get(i, -1) for i in ids), np.int64, count=len(ids))
        known = (rows >= 0) & (rows < len(self.mask))
        verdict = np.zeros(len(ids), bool)
        verdict[known] = self.mask[rows[known]]
        kept = {ids[j] for j in np.flatnonzero(verdict)}
        unknown = [ids[j] for j in np.flatnonzero(~known)]
        if unknown and self.lookup is not None:
            kept.update(passing(self.lookup(unknown), self.filter, self.visitor))
        return kept


def passing(facets: list[Facet], search_filter: SearchFilter | None, visitor: str | None) -> list[str]:
    """The ids among `facets` that pass: the same rule as a table's `select`, on a table of just these."""
    table = Facets()
    table.load(facets)
    selection = table.select(search_filter, visitor)
    return [f.id for f in facets] if selection is None else selection.ids()


class Facets:
    """A column table of Facet rows; rows of removed images stay, marked dead, until the next load."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.loaded = False
        self._clear()

    def _clear(self) -> None:
        self._rows: dict[str, int] = {}
        self._ids: list[str] = []
        self._names: list[str] = []
        self._row_tags: list[frozenset[str]] = []
        self._tag_rows: dict[str, set[int]] = {}
        self._owner_codes: dict[str, int] = {"": 0}
        self._ts = np.zeros(0, np.int64)
        self._owner = np.zeros(0, np.int32)
        self._alive = np.zeros(0, bool)
        self._names_cache: dict[str, np.ndarray] = {}
        self._live = 0

    def load(self, facets: Iterable[Facet]) -> None:
        """Replace the whole table (the store's metadata, read once)."""
        with self._lock:
            self._clear()
            for f in facets:
                self._put(f)
            self.loaded = True

    def unload(self) -> None:
        with self._lock:
            self._clear()
            self.loaded = False

    def __len__(self) -> int:
        return self._live

    def put(self, facets: Iterable[Facet]) -> None:
        """Add or replace rows (an image indexed, its tags or owner changed). A table not loaded ignores it."""
        with self._lock:
            if self.loaded:
                for f in facets:
                    self._put(f)

    def remove(self, ids: Iterable[str]) -> None:
        with self._lock:
            for image_id in ids:
                row = self._rows.pop(image_id, None)
                if row is not None and self._alive[row]:
                    self._alive[row] = False
                    self._live -= 1
                    self._untag(row)
            self._names_cache.clear()

    def _put(self, f: Facet) -> None:
        row = self._rows.get(f.id)
        if row is None:
            row = len(self._ids)
            if row == len(self._ts):  # grow by doubling: appends stay O(1) amortised
                size = max(64, 2 * row)
                self._ts, self._owner, self._alive = (np.resize(a, size) for a in (self._ts, self._owner, self._alive))
                self._alive[row:] = False
            self._rows[f.id] = row
            self._ids.append(f.id)
            self._names.append(f.name)
            self._row_tags.append(frozenset())
            self._live += 1
        else:
            self._untag(row)
            self._names[row] = f.name
        self._ts[row] = f.added_ts
        self._owner[row] = self._owner_codes.setdefault(f.owner, len(self._owner_codes))
        self._alive[row] = True
        self._row_tags[row] = f.tags
        for tag in f.tags:
            self._tag_rows.setdefault(tag, set()).add(row)
        self._names_cache.clear()

    def _untag(self, row: int) -> None:
        for tag in self._row_tags[row]:
            self._tag_rows.get(tag, set()).discard(row)
        self._row_tags[row] = frozenset()

    def select(self, search_filter: SearchFilter | None, visitor: str | None) -> Selection | None:
        """The rows that `search_filter` and `visitor`'s visibility let through; None when that is every row."""
        with self._lock:
            n = len(self._ids)
            mask = self._alive[:n].copy()
            if visitor is not None:  # visibility.py: the shared collection, and the visitor's own uploads
                own = self._owner_codes.get(visitor) if visitor else None
                seen = self._owner[:n] == 0
                if own is not None:
                    seen |= self._owner[:n] == own
                mask &= seen
            f = search_filter
            if f is not None and f.active:
                if f.after:
                    mask &= self._ts[:n] >= int(f.after.timestamp())
                if f.before:
                    mask &= self._ts[:n] < int(f.before.timestamp())
                if f.tag:
                    tagged = np.zeros(n, bool)
                    tagged[list(self._tag_rows.get(f.tag, ()))] = True
                    mask &= tagged
                if f.name:
                    mask &= self._name_mask(f.name.lower(), n)
            count = int(mask.sum())
            if count == self._live:
                return None
            return Selection(mask, self._rows, count, self._live, self._ids, f, visitor)

    def count(self, visitor: str | None) -> int:
        """How many images `visitor` may see."""
        selection = self.select(None, visitor)
        return self._live if selection is None else selection.count

    def _name_mask(self, needle: str, n: int) -> np.ndarray:
        got = self._names_cache.get(needle)  # emptied by every put and remove
        if got is None:
            got = np.fromiter((needle in name for name in self._names), bool, count=n)
            if len(self._names_cache) >= _NAME_CACHE:
                self._names_cache.pop(next(iter(self._names_cache)))
            self._names_cache[needle] = got
        return got

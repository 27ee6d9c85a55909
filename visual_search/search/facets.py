"""The filterable fields of every indexed image, in memory: one column per `Column` of search/filters.py.

Why: a Chroma `where` costs tens of milliseconds at 10,000 images whatever it lets through (the
metadata is read from SQLite on every query: 40 ms for "the newer half", 61 ms for a public-demo
visitor's `owner in (...)`, against 2 ms for the unfiltered query), which made a filtered search
cost 4-28x an unfiltered one. From this table a filter's passing set is a numpy mask in
microseconds, and candidates.py asks the index for more neighbours and keeps those that pass, or
gives it the passing ids when they are few: the answer is still the best of every image that passes.

The store keeps the table in step with its own writes (stages/store.py); filter_table.py notices
other processes' writes. An id the table does not know is looked up before it is judged
(`Selection.keep`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Mapping

import numpy as np

from ..demo.visibility import visible_mask
from .filters import COLUMNS, SearchFilter

_NAME_CACHE = 8  # the last few substring masks: typing a name into the filter row repeats them


@dataclass(frozen=True)
class Facet:
    """What a filter or a visitor's visibility reads of one image: a value per column."""

    id: str
    values: Mapping[str, object]

    @classmethod
    def from_metadata(cls, image_id: str, meta: Mapping) -> "Facet":
        """From the metadata the store keeps beside a caption vector; a column it lacks (an image indexed
        before the column existed) is derived from the record fields stored there."""
        return cls(image_id, {name: col.from_meta(meta) for name, col in COLUMNS.items()})


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
        self._lock = threading.RLock()
        self.loaded = False
        self._clear()

    def _clear(self) -> None:
        self._rows: dict[str, int] = {}
        self._ids: list[str] = []
        self._alive = np.zeros(0, bool)
        self._live = 0
        self._numbers = {n: np.zeros(0, np.int64) for n, c in COLUMNS.items() if c.kind in ("int", "category")}
        self._codes: dict[str, dict[object, int]] = {n: {"": 0} for n, c in COLUMNS.items() if c.kind == "category"}
        self._texts: dict[str, list[str]] = {n: [] for n, c in COLUMNS.items() if c.kind == "text"}
        self._sets: dict[str, list[frozenset[str]]] = {n: [] for n, c in COLUMNS.items() if c.kind == "set"}
        self._members: dict[str, dict[str, set[int]]] = {n: {} for n in self._sets}
        self._text_cache: dict[tuple[str, str], np.ndarray] = {}

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
                    self._unset(row)
            self._text_cache.clear()

    def _put(self, f: Facet) -> None:
        row = self._rows.get(f.id)
        if row is None:
            row = len(self._ids)
            if row == len(self._alive):  # grow by doubling: appends stay O(1) amortised
                size = max(64, 2 * row)
                self._alive = np.resize(self._alive, size)
                self._alive[row:] = False
                self._numbers = {n: np.resize(a, size) for n, a in self._numbers.items()}
            self._rows[f.id] = row
            self._ids.append(f.id)
            for column in self._texts.values():
                column.append("")
            for column in self._sets.values():
                column.append(frozenset())
            self._live += 1
        else:
            self._unset(row)
        for name, array in self._numbers.items():
            value = f.values[name]
            codes = self._codes.get(name)
            array[row] = codes.setdefault(value, len(codes)) if codes is not None else value
        for name, column in self._texts.items():
            column[row] = str(f.values[name])
        for name, column in self._sets.items():
            column[row] = frozenset(f.values[name])
            for member in column[row]:
                self._members[name].setdefault(member, set()).add(row)
        self._alive[row] = True
        self._text_cache.clear()

    def _unset(self, row: int) -> None:
        for name, column in self._sets.items():
            for member in column[row]:
                self._members[name].get(member, set()).discard(row)
            column[row] = frozenset()

    # ---- masks over the live rows: what a Clause's `mask` calls ---------------------------------
    def compare(self, column: str, op: Callable, value: int) -> np.ndarray:
        return op(self._numbers[column][: len(self._ids)], value)

    def equals(self, column: str, *values: object) -> np.ndarray:
        """Rows whose category is any of `values` (a value never stored matches no row)."""
        codes = [self._codes[column][v] for v in values if v in self._codes[column]]
        return np.isin(self._numbers[column][: len(self._ids)], codes)

    def has(self, column: str, member: str) -> np.ndarray:
        mask = np.zeros(len(self._ids), bool)
        mask[list(self._members[column].get(member, ()))] = True
        return mask

    def contains(self, column: str, needle: str) -> np.ndarray:
        key = (column, needle)
        got = self._text_cache.get(key)  # emptied by every put and remove
        if got is None:
            got = np.fromiter((needle in text for text in self._texts[column]), bool, count=len(self._ids))
            if len(self._text_cache) >= _NAME_CACHE:
                self._text_cache.pop(next(iter(self._text_cache)))
            self._text_cache[key] = got
        return got

    def select(self, search_filter: SearchFilter | None, visitor: str | None) -> Selection | None:
        """The rows that `search_filter` and `visitor`'s visibility let through; None when that is every row."""
        with self._lock:
            mask = self._alive[: len(self._ids)].copy()
            if visitor is not None:
                mask &= visible_mask(self, visitor)
            if search_filter is not None and search_filter.active:
                mask &= search_filter.mask(self)
            count = int(mask.sum())
            if count == self._live:
                return None
            return Selection(mask, self._rows, count, self._live, self._ids, search_filter, visitor)

    def count(self, visitor: str | None) -> int:
        """How many images `visitor` may see."""
        selection = self.select(None, visitor)
        return self._live if selection is None else selection.count

"""Where a search's filter and a visitor's visibility are decided: in memory, or by Chroma.

The in-memory table (search/facets.py) answers in microseconds, but must be read once (seconds at 100k
images) and kept current. A long-running process (the app) loads it in the background on its second
filtered search; a one-off process (the CLI) never does and lets Chroma decide with a `where`.
Writes by this process keep the table current (the store updates it); a write by another process
shows as a changed stamp (library/writer.py), and the table is read again while Chroma decides.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from ..demo.visibility import where_for
from ..library.writer import Writer
from ..stages.store import VectorStore
from .facets import Selection
from .filters import SearchFilter

log = logging.getLogger(__name__)


class FilterTable:
    """Keeps the store's facet table fresh and turns (filter, visitor) into what `gather` needs."""

    def __init__(self, store: Callable[[], VectorStore], writer: Writer) -> None:
        self._store = store
        self._writer = writer
        self._seen: str | None = None  # the change stamp the table is current with
        self._loader: threading.Thread | None = None
        self._lock = threading.Lock()
        self._filtered_searches = 0  # the second one loads the table
        writer.listeners.append(self._followed)

    def _followed(self, before: str, after: str) -> None:
        """This process wrote: the store updated the table itself, so it is as current as it was."""
        if before == self._seen:
            self._seen = after

    def load(self) -> None:
        """Read the filterable fields of every indexed image into memory (the app calls this at start)."""
        self._seen = self._writer.stamp()  # read first: a write during the load shows as a change next time
        self._store().load_facets()

    def load_soon(self) -> None:
        """Load in the background; searches meanwhile ask Chroma."""
        with self._lock:
            if self._loader is None or not self._loader.is_alive():
                self._loader = threading.Thread(target=self._load_quietly, daemon=True, name="load-facets")
                self._loader.start()

    def _load_quietly(self) -> None:
        try:
            self.load()
        except Exception:  # a store outage: searches go on asking Chroma, and the next one tries again
            log.warning("could not load the filterable fields; filters are decided by Chroma", exc_info=True)

    def current(self) -> bool:
        """Loaded, and no other process has written since (else it is read again in the background)."""
        facets = self._store().facets
        if facets.loaded and self._writer.stamp() != self._seen:
            facets.unload()
            self.load_soon()
        return facets.loaded

    def count(self, visitor: str | None) -> int:
        """Images `visitor` may see (every image when None)."""
        store = self._store()
        if visitor is not None and self.current():
            return store.facets.count(visitor)
        return store.count_where(where_for(visitor))

    def restriction(self, search_filter: SearchFilter | None, visitor: str | None
                    ) -> tuple[dict | None, list[str] | None, Selection | None]:
        """(where, ids, allowed) for `gather` of a filtered search or a visitor's (an unrestricted search needs
        none): in memory once the table is current, else a Chroma `where`
        (plus the exact ids of clauses a `where` cannot say, such as a file-name substring)."""
        active = search_filter is not None and search_filter.active
        store = self._store()
        self._filtered_searches += 1
        if self._filtered_searches >= 2 and not store.facets.loaded:
            self.load_soon()
        if self.current():
            allowed = store.facets.select(search_filter if active else None, visitor)
            return None, None, allowed and allowed.with_lookup(store.lookup_facets)
        where = where_for(visitor, search_filter.where() if active else None)
        ids = store.name_ids(search_filter.substring(), where) if active and search_filter.needs_ids else None
        return where, ids, None

"""One query's path, stages 3 and 4: check the request, encode the query, find the candidates,
cut off, order, page.

    search("two dogs")                      the request, checked (page, weights, words)
      -> QueryEncoder.encode                stage 3 (stages/query.py): the same text encoder as the captions
      -> WordIndex.lookup                   the word channel: which images carry the words (stages/words.py)
      -> gather                             candidates of every channel, scored (candidates.py, stages/store.py,
                                            stages/rank.py: cosine -> relevance in [0, 1], the hybrid, fused
                                            with the words)
      -> cut-off, order, page               here
      -> SearchResult                       each with its record, read from the catalog (the truth)

A filter and a public-demo visitor's visibility are decided inside each channel's query, never
applied afterwards (filter_table.py); what it costs to decide them is not this module's concern.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..config import Settings
from ..errors import IndexOutOfDate, InvalidQuery, NotFound
from ..library.catalog import Catalog
from ..library.intake import load_image
from ..models.query_models import QueryModels
from ..demo.visibility import owners_seen
from ..records import ImageRecord, SearchResponse, SearchResult
from ..stages import rank
from ..stages.query import check_alpha, check_fraction, check_k, check_whole, clean_text
from ..stages.store import CAPTION, VISUAL, VectorStore
from ..stages.words import WordMatches
from .candidates import Candidates, Lanes, Query, Runner, gather
from .filter_table import FilterTable
from .filters import COLUMNS, SearchFilter

SORTS = ("relevance", "newest")
MAX_OFFSET = 10_000


@dataclass(frozen=True)
class Page:
    """Which results of a query to return, checked."""

    k: int
    offset: int
    min_relevance: float
    sort: str


class Searcher:
    def __init__(self, settings: Settings, catalog: Catalog, store: Callable[[], VectorStore],
                 query_models: QueryModels, table: FilterTable, get: Callable[[str, str | None], ImageRecord]) -> None:
        self.settings = settings
        self.catalog = catalog
        self._store = store
        self.query_models = query_models
        self.table = table
        self._get = get
        self.lanes: Runner = Lanes()  # a search's two channels at once (candidates.py; SEQUENTIAL: in turn)
        self._seen_images = False

    def search(self, query: str, k: int = 10, alpha: float | None = None, visitor: str | None = None, *,
               offset: int = 0, min_relevance: float | None = None, sort: str = "relevance",
               filter: SearchFilter | None = None, like: str | bytes | None = None) -> SearchResponse:
        """Text search: caption channel, visual channel and their hybrid, best first.

        `like` (an indexed id or image bytes) adds a picture to the words: the visual channel then
        searches with the image and text vectors combined in CLIP space (rank.combine)."""
        t0 = time.perf_counter()
        s = self.settings
        text = clean_text(query, s.max_query_chars)
        alpha = check_alpha(s.default_alpha if alpha is None else alpha)
        page = self.page(k, offset, min_relevance, sort)
        if self._catalog_empty():  # answer at once, without loading models
            return SearchResponse(text, [], (time.perf_counter() - t0) * 1000, alpha, page.offset)
        queries = self.query_models.queries
        caption_vec, visual_vec = queries.encode(text, self.lanes.both)
        visual_cal = rank.CLIP_TEXT_IMAGE
        if like is not None:
            visual_vec, visual_cal = rank.combine(self._image_query(like, visitor=visitor)[1], visual_vec)
        words = self._words(text, visitor)
        q = Query(caption_vec, visual_vec, queries.calibration_for(text), visual_cal, alpha, words)
        return self._answer(text, q, page, filter, visitor, t0)

    def _words(self, text: str, visitor: str | None) -> WordMatches | None:
        """The word channel's finds among what `visitor` may see (None: no word to look up, or no index)."""
        index = self._store().words
        return None if index is None else index.lookup(text, None if visitor is None else owners_seen(visitor))

    def similar(self, image: str | bytes, k: int = 10, filename: str = "query image", *, offset: int = 0,
                min_relevance: float | None = None, sort: str = "relevance",
                filter: SearchFilter | None = None, visitor: str | None = None) -> SearchResponse:
        """Image-to-image search by an indexed id or by image bytes; relevance is the visual score.
        An indexed image comes back first, with relevance 1.00 (cosine 1 with itself)."""
        t0 = time.perf_counter()
        page = self.page(k, offset, min_relevance, sort)
        label, visual_vec, caption_vec = self._image_query(image, filename, visitor)
        q = Query(caption_vec, visual_vec, self.query_models.queries.calibration, rank.CLIP_IMAGE_IMAGE, 0.0)
        return self._answer(label, q, page, filter, visitor, t0)

    def page(self, k: object, offset: object, min_relevance: object, sort: object) -> Page:
        cut = self.settings.min_relevance if min_relevance is None else min_relevance
        return Page(check_k(k, self.settings.max_k), check_offset(offset), check_min_relevance(cut), check_sort(sort))

    def _image_query(self, image: str | bytes, filename: str = "query image",
                     visitor: str | None = None) -> tuple[str, np.ndarray, np.ndarray | None]:
        """(label, CLIP image vector, caption vector or None) of an indexed id or of image bytes."""
        if isinstance(image, str):
            record = self._get(image, visitor)
            store = self._store()
            visual_vec = store.embeddings(VISUAL, [record.id]).get(record.id)
            if visual_vec is None:
                raise NotFound(f"Image {record.id[:12]} is still being indexed; try again shortly.")
            return record.filename, visual_vec, store.embeddings(CAPTION, [record.id]).get(record.id)
        loaded = load_image(image, filename, self.settings.max_file_bytes, self.settings.max_pixels)
        return loaded.filename, self.query_models.models.embed_images([loaded.image])[0], None

    def _answer(self, label: str, q: Query, page: Page, filter: SearchFilter | None, visitor: str | None,
                t0: float) -> SearchResponse:
        """Candidates (filtered inside the index) -> cut-off -> order -> one page of results."""
        need = page.offset + page.k
        store = self._store()
        filtered = filter is not None and filter.active
        where, ids, allowed = self.table.restriction(filter, visitor) if filtered or visitor else (None, None, None)
        required = q.words.required if q.words is not None else None
        if required is not None:  # a "quoted phrase": only the images holding it, on every channel
            ids = sorted(allowed.keep(required) if allowed is not None
                         else required if ids is None else required.intersection(ids))
            allowed = None
        count = allowed.count if allowed is not None else len(ids) if ids is not None else None
        cut = 0.0 if named(filter, count, need) else page.min_relevance
        found = gather(store, q, need, cut, page.sort == "newest", where, ids, allowed, lanes=self.lanes)
        passing = [j for j, score in enumerate(found.total) if score >= cut]
        if page.sort == "newest":  # newest first: taken, else added (filters.taken_ts); ties keep relevance order
            meta = store.records(found.ids[j] for j in passing)
            passing.sort(key=lambda j: COLUMNS["taken_ts"].from_meta(meta.get(found.ids[j], {})), reverse=True)
        chosen = passing[page.offset : need]
        hidden = max(0, min(page.k, len(found.ids) - page.offset) - len(chosen))
        results = self._results(found, chosen, q.words)
        if not found.ids and (filter is None or not filter.active):
            self._refuse_if_out_of_date()  # no count() on every search: it scans the collection
        through = (0 if not found.ids else count) if filtered else None
        phrases = q.words.terms.phrases if required is not None and not ids else ()
        return SearchResponse(label, results, (time.perf_counter() - t0) * 1000, q.alpha, page.offset, hidden,
                              cut, through, tuple(" ".join(p) for p in phrases))

    def _results(self, found: Candidates, chosen: list[int], words: WordMatches | None) -> list[SearchResult]:
        """The chosen candidates as results, their records read from the catalog (the truth, and a
        tenth of the time of asking the index for them: docs/benchmarks.md), each with the words that
        matched where."""
        out = []
        for j in chosen:
            record = self.catalog.get(found.ids[j])
            if record is None:  # removed, its vectors not yet (store outage)
                continue
            out.append(SearchResult(record, float(found.total[j]), float(found.caption_score[j]),
                                    float(found.visual_score[j]), float(found.caption_cosine[j]),
                                    float(found.visual_cosine[j]), float(found.word_score[j]),
                                    words.matched(record) if words is not None else ()))
        return out

    def _catalog_empty(self) -> bool:
        """No image indexed yet. Scans the catalog only until it has seen one, not on every search."""
        if not self._seen_images:
            self._seen_images = not self.catalog.empty()
        return not self._seen_images

    def _refuse_if_out_of_date(self) -> None:
        """An empty answer from empty collections while images are stored: they await re-embedding."""
        if self._store().count() == 0 and not self.catalog.empty():
            raise IndexOutOfDate(
                "The stored images have no vectors for the current models yet (the models changed, or an "
                "indexing run was interrupted). The app rebuilds them in the background; from the command "
                "line run `python -m visual_search reindex`."
            )


def named(search_filter: SearchFilter | None, count: int | None, need: int) -> bool:
    """A file-name clause that lets through no more images than the page holds: the person asked for
    these images by name ("chessboard"), so each is shown whatever its words score (its relevance
    still orders them and is shown). A broad name ("IMG_", hundreds of phone photos) is a filter like
    the others, under the cut-off. The count is known exactly: the name is always decided by ids."""
    return bool(search_filter is not None and search_filter.substring() and count is not None and count <= need)


def check_offset(offset: object) -> int:
    """How many results to pass over (a later page)."""
    return check_whole(offset, 0, MAX_OFFSET, "The offset")


def check_min_relevance(value: object) -> float:
    return check_fraction(value, "The minimum relevance")


def check_sort(sort: object) -> str:
    if sort not in SORTS:
        raise InvalidQuery(f"Sort by {' or '.join(SORTS)}, got {sort!r}.")
    return str(sort)

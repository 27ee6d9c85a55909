"""`SearchEngine`: one data dir, its models and its index, behind one small facade.

The work is done by small parts, each in the folder of its side:

    stages/    the four stages and the visual channel (what a workshop reads)
    search/    Searcher: one query's path (stages 3-4), filters, candidates
    library/   Indexer, Reconciler, Editor: the write side (catalog, intake, thumbnails)
    models/    loading, the compute boundary (ZeroGPU), the query-side models, ONNX Runtime
    demo/      the public demo's rules: who sees what, fair shares

Compute apart from state: every model run goes through `Compute` (models/compute.py), functions of
plain data that may run in another process (a ZeroGPU worker); only the parts here read and write
the catalog (the truth) and the index, in this process, through one client.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Sequence

from .config import Settings
from .demo.fair_share import FairShare
from .library.catalog import Catalog
from .library.edits import Editor
from .library.indexer import Indexer
from .library.reconcile import Reconciler
from .library.state import Progress, State
from .library.thumbnails import Thumbnails
from .library.writer import Writer
from .models.blas_threads import numpy_blas_one_thread
from .models.compute import Compute, GpuWrap, Models
from .models.query_models import QueryModels
from .records import ImageRecord, IndexReport, SearchResponse
from .search.filter_table import FilterTable
from .search.filters import SearchFilter
from .search.searcher import Searcher
from .stages.store import VectorStore, make_client
from .stages.words import WordIndex


class SearchEngine:
    """Models load on first use; the object is thread-safe. `gpu` wraps each compute function once (the
    web app passes ZeroGPU's `spaces.GPU`); elsewhere the functions run in this process as they are."""

    def __init__(self, settings: Settings | None = None, *, captioner=None, text_encoder=None, clip=None,
                 clip_text=None, gpu: GpuWrap | None = None) -> None:
        self.settings = s = settings or Settings.from_env()
        numpy_blas_one_thread()  # its products here are small; its spinning threads took a core from the intake
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(s.images_dir)
        self.thumbnails = Thumbnails(s.thumbs_dir)
        self.models = Models(s, captioner=captioner, text_encoder=text_encoder, clip=clip)
        self.compute = Compute(self.models, gpu)
        # the query side's CLIP text tower; a CLIP given by the caller encodes queries too
        self.query_side = QueryModels(self.models, clip_text if clip_text is not None else clip)
        self.writer = Writer(s.data_dir)
        self._store: VectorStore | None = None
        self._store_lock = threading.Lock()
        self.fair_share = FairShare(s)  # per-visitor caps of a public demo
        state = State(s, self.catalog, self.thumbnails, self.models, self.compute, self.writer,
                      lambda: self.store, lambda: self.query_side.tagger)
        self.table = FilterTable(lambda: self.store, self.writer)
        self.editor = Editor(state)
        self.reconciler = Reconciler(state)
        self.indexer = Indexer(state, self.reconciler, self.fair_share, self.count)
        self.searcher = Searcher(s, self.catalog, lambda: self.store, self.query_side, self.table, self.editor.get)

    @property
    def store(self) -> VectorStore:
        with self._store_lock:
            if self._store is None:
                where = self.settings.chroma_url or str(self.settings.chroma_dir)
                self._store = VectorStore(make_client(self.settings), self.caption_identity, self.visual_identity,
                                          where, WordIndex(self.settings.words_path))
            return self._store

    # ---- the models (each loads on first use) --------------------------------------------------
    captioner = property(lambda self: self.models.captioner)
    clip = property(lambda self: self.models.clip)
    text_encoder = property(lambda self: self.models.text_encoder)
    caption_identity = property(lambda self: self.models.caption_identity)
    visual_identity = property(lambda self: self.models.visual_identity)
    clip_text = property(lambda self: self.query_side.clip_text)
    query_text_encoder = property(lambda self: self.query_side.text_encoder)
    queries = property(lambda self: self.query_side.queries)
    tagger = property(lambda self: self.query_side.tagger)

    @property
    def lanes(self):
        return self.searcher.lanes

    @lanes.setter
    def lanes(self, value) -> None:
        self.searcher.lanes = value

    @property
    def changes(self) -> int:
        """Writes this engine has made (or tried): a view drawn at another number may be stale."""
        return self.writer.changes

    # ---- searching (search/searcher.py) ----------------------------------------------------------
    def search(self, query: str, k: int = 10, alpha: float | None = None, visitor: str | None = None, *,
               offset: int = 0, min_relevance: float | None = None, sort: str = "relevance",
               filter: SearchFilter | None = None, like: str | bytes | None = None) -> SearchResponse:
        """Text search over both channels, best first (see Searcher.search)."""
        return self.searcher.search(query, k, alpha, visitor, offset=offset, min_relevance=min_relevance,
                                    sort=sort, filter=filter, like=like)

    def similar(self, image: str | bytes, k: int = 10, filename: str = "query image", *, offset: int = 0,
                min_relevance: float | None = None, sort: str = "relevance",
                filter: SearchFilter | None = None, visitor: str | None = None) -> SearchResponse:
        """Image-to-image search by an indexed id or image bytes (see Searcher.similar)."""
        return self.searcher.similar(image, k, filename, offset=offset, min_relevance=min_relevance, sort=sort,
                                     filter=filter, visitor=visitor)

    def count(self, visitor: str | None = None) -> int:
        """Images in the index (those `visitor` may see, when given: demo/visibility.py)."""
        return self.table.count(visitor)

    def load_facets(self) -> None:
        """Decide filters in memory from now on (the app calls this once it has started)."""
        self.table.load()

    # ---- indexing and repair (library/) ----------------------------------------------------------
    def index_paths(self, paths: Sequence[str | os.PathLike], progress: Progress | None = None) -> IndexReport:
        """Index files and folders (recursively). Bad files are reported, good ones indexed."""
        return self.indexer.paths(paths, progress)

    def index_files(self, files: Sequence[tuple[str, str | os.PathLike]], progress: Progress | None = None,
                    visitor: str | None = None) -> IndexReport:
        """Index uploads as (display name, path of the bytes); a `visitor`'s within their fair share."""
        if visitor is not None:
            self.editor.expire_uploads()
        return self.indexer.files(files, progress, visitor)

    def index_bytes(self, files: Sequence[tuple[str, bytes]], progress: Progress | None = None) -> IndexReport:
        """Index (file name, content) pairs. The name is only displayed, never used as a path."""
        return self.indexer.contents(files, progress)

    def reconcile(self, progress: Progress | None = None, metadata: bool = False) -> int:
        """Make the index agree with the catalog; returns how many images went into it again. `metadata`:
        read what every stored file says (date, place, camera, title...) again; no model runs for it."""
        return self.reconciler.reconcile(progress, metadata)

    def read_text_again(self, progress: Progress | None = None) -> int:
        """`reindex --ocr`: read the text in every picture the current OCR has not read (library/ocr.py)."""
        return self.reconciler.read_text(progress)

    # ---- reading and editing (library/edits.py) ----------------------------------------------------
    def get(self, image_id: str, visitor: str | None = None) -> ImageRecord:
        return self.editor.get(image_id, visitor)

    def list(self, visitor: str | None = None) -> list[ImageRecord]:
        return self.editor.list(visitor)

    def thumbnail(self, record: ImageRecord) -> Path:
        return self.editor.thumbnail(record)

    def set_caption(self, image_id: str, caption: str, visitor: str | None = None,
                    admin: bool = False) -> ImageRecord:
        return self.editor.set_caption(image_id, caption, visitor, admin)

    def set_ocr_text(self, image_id: str, text: str, visitor: str | None = None,
                     admin: bool = False) -> ImageRecord:
        return self.editor.set_ocr_text(image_id, text, visitor, admin)

    def set_tags(self, image_id: str, tags: Sequence[str], visitor: str | None = None,
                 admin: bool = False) -> ImageRecord:
        return self.editor.set_tags(image_id, tags, visitor, admin)

    def set_details(self, image_id: str, title: str | None = None, description: str | None = None,
                    visitor: str | None = None, admin: bool = False) -> ImageRecord:
        """A person's title and/or description (None: unchanged); kept when the file is read again."""
        return self.editor.set_details(image_id, title, description, visitor, admin)

    def remove(self, image_id: str, visitor: str | None = None, admin: bool = False) -> ImageRecord:
        return self.editor.remove(image_id, visitor, admin)

    def expire_uploads(self, now=None) -> list[ImageRecord]:
        return self.editor.expire_uploads(now)

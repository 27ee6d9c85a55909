"""The orchestrator: indexing (stages 1-2) and search (stages 3-4) over one data dir.

Read one query's path here: `search()` -> `QueryEncoder` (query.py) -> `gather` (retrieval.py:
each channel's `VectorStore.query`, the two channels at once, lanes.py) -> `relevance` / `hybrid`
(ranking.py) -> `SearchResult`s, their records read from the catalog.

Compute apart from state: every model run goes through `Compute` (compute.py), functions of plain
data that may run in another process (a ZeroGPU worker); the engine alone reads and writes the
catalog and the vector store, in this process, through one client.

Write order for one image, chosen so that a process killed at any point leaves a state that
`reconcile()` repairs: (models run first, nothing written) -> original file -> catalog record with
its vectors -> visual vector -> caption vector in Chroma. The catalog is the truth; Chroma is an
index rebuilt from the vectors stored in the catalog (a missing, deleted or stale Chroma folder costs
a rebuild, not a model run).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from . import ranking
from .catalog import Catalog, vector_key
from .compute import Compute, GpuWrap, Models
from .config import CLIP_TEXT_MODEL, Settings
from .errors import IndexOutOfDate, InvalidQuery, NotAnImage, NotFound, RejectedImage
from .facets import Selection
from .fair_share import FairShare
from .intake import IntakeImage, check_image_kind, load_image, read_file, walk
from .lanes import Lanes, OneLane
from .memory import release_freed_memory
from .filters import SearchFilter, check_min_relevance, check_offset, check_sort, normalise_tag, timestamp
from .query import QueryEncoder, check_alpha, check_k, clean_text
from .records import Added, Duplicate, Failed, ImageRecord, IndexReport, SearchResponse, SearchResult, Skipped
from .retrieval import CANDIDATE_POOL, Candidates, Query, gather  # noqa: F401 (CANDIDATE_POOL: measure/)
from .store import CAPTION, VISUAL, VectorStore, make_client
from .tagging import Tagger, model_scale
from .thumbnails import Thumbnails
from .visibility import check_may_change, check_visible, visible, where_for

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]  # (done, total, message)
MAX_CAPTION_CHARS = 500
MAX_USER_TAGS = 20
WRITE_GROUP = 8  # images embedded and written together (CLIP batches; progress granularity)
PRIVATE_DUPLICATE = "this exact file is already among another visitor's uploads, and cannot be added twice"
REBUILD_GROUP = 500  # stored vectors copied into the index per Chroma call while rebuilding it


class SearchEngine:
    """One data dir, its models and its store. Models load on first use; the object is thread-safe.

    `gpu` wraps each compute function once (the web app passes ZeroGPU's `spaces.GPU` there);
    elsewhere the functions run in this process as they are.
    """

    def __init__(self, settings: Settings | None = None, *, captioner=None, text_encoder=None, clip=None,
                 clip_text=None, gpu: GpuWrap | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(self.settings.images_dir)
        self.thumbnails = Thumbnails(self.settings.thumbs_dir)
        self.models = Models(self.settings, captioner=captioner, text_encoder=text_encoder, clip=clip)
        self.compute = Compute(self.models, gpu)
        self.models.after_clip_load = self._drop_unused_text_tower
        self._store: VectorStore | None = None
        self._queries: QueryEncoder | None = None
        self.lanes: Lanes | OneLane = Lanes()  # a search's two channels at once (lanes.py; SEQUENTIAL: in turn)
        self._query_models: Models | None = None
        # the query side's CLIP text tower (ONNX Runtime or torch); a CLIP given by the caller encodes queries too
        self._clip_text = clip_text if clip_text is not None else clip
        self._tagger: Tagger | None = None
        self._load_lock = threading.RLock()
        self._write_lock = threading.RLock()
        self._reconciled = False
        self._seen_images = False
        self.fair_share = FairShare(self.settings)  # per-visitor caps of a public demo
        self._changes = 0
        self._filtered_searches = 0  # the second one loads the store's facets (filters in memory)
        self._stamp_seen: str | None = None  # the change stamp the facets are current with
        self._facets_loader: threading.Thread | None = None

    # ---- models and store, created once on first use ------------------------------------------
    @property
    def captioner(self):
        return self.models.captioner

    @property
    def clip(self):
        return self.models.clip

    @property
    def text_encoder(self):
        return self.models.text_encoder

    @property
    def caption_identity(self) -> str:
        return self.models.caption_identity

    @property
    def visual_identity(self) -> str:
        return self.models.visual_identity

    @property
    def tagger(self) -> Tagger:
        """The tag vocabulary and its CLIP prompt vectors, computed once per CLIP model (cached on disk)."""
        with self._load_lock:
            if self._tagger is None:
                # the query side's text tower: on ZeroGPU it runs here, on the CPU (the vocabulary is encoded once)
                # tagging runs at index time, where the torch CLIP embeds the images: its learned temperature
                self._tagger = Tagger(self.clip_text, self.settings.tag_vocabulary, self.settings.data_dir / "tags",
                                      scale=model_scale(self.clip))
            return self._tagger

    @property
    def store(self) -> VectorStore:
        with self._load_lock:
            if self._store is None:
                where = self.settings.chroma_url or str(self.settings.chroma_dir)
                client = make_client(self.settings)
                self._store = VectorStore(client, self.caption_identity, self.visual_identity, where)
            return self._store

    @property
    def query_models(self) -> Models:
        """The models that encode queries. With VS_QUERY_DEVICE apart from the models' device (ZeroGPU:
        cpu) they are models of their own there, run in this process: a search never waits for a GPU
        hand-over nor spends GPU quota (README "Deploy")."""
        s = self.settings
        if not s.query_device or s.query_device == s.device:
            return self.models
        with self._load_lock:
            if self._query_models is None:
                self._query_models = Models(replace(s, device=s.query_device))
                self._query_models.after_clip_load = self._drop_unused_text_tower
            return self._query_models

    @property
    def clip_text(self):
        """CLIP's text tower for queries: on ONNX Runtime once its export verified (backend.py), else the
        query side's torch CLIP."""
        with self._load_lock:
            if self._clip_text is None:
                from .backend import clip_text_encoder

                self._clip_text = clip_text_encoder(self.settings, lambda: self.query_models.clip,
                                                    self.visual_identity)
                self._drop_unused_text_tower()
            return self._clip_text

    @property
    def query_text_encoder(self):
        """The caption channel's query encoder: the captions' own text encoder (ONNX Runtime when its
        export verified), or, with VS_TEXT_MODEL=clip, CLIP's text tower as above."""
        if self.settings.text_model == CLIP_TEXT_MODEL:
            from .text_encoder import ClipTextEncoder

            return ClipTextEncoder(self.clip_text)
        return self.query_models.text_encoder

    def _drop_unused_text_tower(self) -> None:
        """Queries on ONNX Runtime: a torch CLIP this engine loaded itself only embeds images now (~250 MB less).
        Takes no engine lock: it runs inside a model's loading."""
        if self._clip_text is None or self.settings.text_model == CLIP_TEXT_MODEL:
            return
        for side in (self.models, self._query_models):
            clip = side._clip if side is not None else None
            if clip is not None and clip is not self._clip_text and side.owns("clip") and not clip.text_dropped:
                clip.drop_text_tower()
                release_freed_memory()

    @property
    def queries(self) -> QueryEncoder:
        with self._load_lock:
            if self._queries is None:
                self._queries = QueryEncoder(self.query_text_encoder, self.clip_text)
            return self._queries

    def count(self, visitor: str | None = None) -> int:
        """Images in the index (those `visitor` may see, when given: visibility.py)."""
        if visitor is not None and self._facets_current():
            return self.store.facets.count(visitor)
        return self.store.count_where(where_for(visitor))

    # ---- filters decided in memory (facets.py) --------------------------------------------------
    def load_facets(self) -> None:
        """Read the filterable fields of every indexed image into memory, so that filters and a public-demo
        visitor's visibility cost no Chroma `where` (the app calls this once it has started; a process
        that searches once, such as the CLI, is faster without)."""
        self._stamp_seen = self._stamp()  # read first: a write during the load shows as a change next time
        self.store.load_facets()

    def _load_facets_soon(self) -> None:
        """Load the facets in the background (seconds at 100k images); searches meanwhile ask Chroma."""
        with self._load_lock:
            if self._facets_loader is None or not self._facets_loader.is_alive():
                self._facets_loader = threading.Thread(target=self._load_facets_quietly, daemon=True,
                                                       name="load-facets")
                self._facets_loader.start()

    def _load_facets_quietly(self) -> None:
        try:
            self.load_facets()
        except Exception:  # a store outage: searches go on asking Chroma, and the next one tries again
            log.warning("could not load the filterable fields; filters are decided by Chroma", exc_info=True)

    def _facets_current(self) -> bool:
        """The facets are loaded, and no other process has written since. After such a write they are
        read again in the background (seconds at 100k images), and Chroma decides meanwhile."""
        if self.store.facets.loaded and self._stamp() != self._stamp_seen:
            self.store.facets.unload()
            self._load_facets_soon()
        return self.store.facets.loaded

    def _stamp_path(self) -> Path:
        return self.settings.data_dir / ".changed"

    def _stamp(self) -> str:
        """A token every writer of this data dir replaces (see _writer); '' before the first write."""
        try:
            return self._stamp_path().read_text()
        except OSError:
            return ""

    @property
    def changes(self) -> int:
        """How many writes this engine has made (or tried): a view that remembers the number it was drawn
        at knows, when the number moved, that it may show images that are gone or miss new ones."""
        return self._changes

    # ---- writing -----------------------------------------------------------------------------
    @contextmanager
    def _writer(self) -> Iterator[None]:
        """One writer at a time: a thread lock, plus a file lock shared with other processes."""
        with self._write_lock:
            with open(self.settings.data_dir / ".writer.lock", "w") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                current = self._stamp() == self._stamp_seen  # no other process wrote since the facets were read
                try:
                    yield
                except BaseException as exc:
                    if not isinstance(exc, NotFound):  # a write cut short (store outage): repair first next time
                        self._reconciled = False
                    raise
                finally:
                    self._changes += 1
                    self._stamp_path().write_text(os.urandom(8).hex())  # tells other processes' facets
                    if current:  # this store's facets followed its own writes
                        self._stamp_seen = self._stamp()
                    fcntl.flock(fh, fcntl.LOCK_UN)

    def index_paths(self, paths: Sequence[str | os.PathLike], progress: Progress | None = None) -> IndexReport:
        """Index files and folders (recursively). Bad files are reported, good ones indexed."""
        hidden: list[Path] = []
        items = walk(list(paths), hidden)
        named = {Path(p) for p in paths}  # a file met in a folder that is no image at all is skipped, not failed
        report = self._index(((str(p), problem or self._reader(p, in_folder=p not in named)) for p, problem in items),
                             len(items), progress)
        report.skipped[:0] = [Skipped(str(p), "hidden file") for p in hidden]
        return report

    def index_files(self, files: Sequence[tuple[str, str | os.PathLike]], progress: Progress | None = None,
                    visitor: str | None = None) -> IndexReport:
        """Index uploads given as (display name, where the bytes are); each file is read only when its
        turn comes, so a large upload never sits in memory all at once. The name is never a path.

        With a `visitor` (public demo) the images are theirs alone, within their fair share
        (fair_share.py): a refused upload raises QuotaExceeded before anything is written."""
        sources = ((name, self._reader(Path(path))) for name, path in files)
        if visitor is None:
            return self._index(sources, len(files), progress)
        self.expire_uploads()
        own = [r for r in self.catalog.records() if r.owner == visitor]
        held_bytes = sum(_size(Path(r.path)) for r in own)
        with self.fair_share.admit(visitor, len(files), sum(_size(Path(p)) for _, p in files), len(own), held_bytes):
            return self._index(sources, len(files), progress, visitor)

    def index_bytes(self, files: Sequence[tuple[str, bytes]], progress: Progress | None = None) -> IndexReport:
        """Index uploaded (file name, content) pairs. The name is only displayed, never used as a path."""
        return self._index(((name, (lambda d=data: d)) for name, data in files), len(files), progress)

    def _reader(self, path: Path, in_folder: bool = False) -> Callable[[], bytes]:
        if in_folder:
            return lambda: check_image_kind(read_file(path, self.settings.max_file_bytes))
        return lambda: read_file(path, self.settings.max_file_bytes)

    def _index(self, sources: Iterable[tuple[str, Callable[[], bytes] | str]], total: int, progress,
               visitor: str | None = None) -> IndexReport:
        report = IndexReport()
        with self._writer():
            if not self._reconciled:  # once per process: finish what an earlier run left undone
                self._reconcile_locked(progress)
            group: list[tuple[str, IntakeImage]] = []
            seen: set[str] = set()
            for done, (label, source) in enumerate(sources, 1):
                try:
                    if isinstance(source, str):
                        raise RejectedImage(source)
                    image = load_image(source(), label, self.settings.max_file_bytes, self.settings.max_pixels)
                except NotAnImage as exc:
                    report.skipped.append(Skipped(label, str(exc)))
                except RejectedImage as exc:
                    report.failed.append(Failed(label, str(exc)))
                else:
                    held = self.catalog.get(image.id) if image.id not in seen else None
                    if held is not None and not visible(held, visitor):
                        report.failed.append(Failed(label, PRIVATE_DUPLICATE))
                    elif image.id in seen or held is not None:
                        report.duplicates.append(Duplicate(image.id, label))
                    else:
                        seen.add(image.id)
                        group.append((label, image))
                if len(group) >= WRITE_GROUP:
                    report.added.extend(self._add_group(group, visitor or ""))
                    group = []
                if progress:
                    progress(done, total, label)
            report.added.extend(self._add_group(group, visitor or ""))
        report.count = self.count(visitor)
        return report

    def _add_group(self, group: list[tuple[str, IntakeImage]], owner: str = "") -> list[Added]:
        if not group:
            return []
        t0 = time.perf_counter()
        got = self.compute.understand([img.image for _, img in group])  # all model work, nothing written yet
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        cap_key, vis_key = self._keys()
        records = []
        for i, ((_, img), caption, tags) in enumerate(zip(group, got.captions, self.tagger.tag(got.visual_vectors))):
            path = self.catalog.put_original(img.id, img.ext, img.data)
            record = ImageRecord(
                id=img.id, path=str(path), filename=img.filename, caption=caption, width=img.width,
                height=img.height, added_at=now, caption_model=self.models.caption_model,
                tags=tags, tags_model=self.visual_identity, owner=owner,
            )
            self.catalog.put_record(record, {vis_key: got.visual_vectors[i], cap_key: got.caption_vectors[i]})
            self.thumbnails.put(img.id, img.image)
            records.append(record)
        self.store.upsert_visual(records, got.visual_vectors)
        self.store.upsert_captions(records, got.caption_vectors)
        release_freed_memory()  # the captioner's activations, or they stay resident (memory.py)
        each = (time.perf_counter() - t0) / len(group)
        return [Added(r.id, label, r.caption, each) for (label, _), r in zip(group, records)]

    def _keys(self) -> tuple[str, str]:
        """The catalog keys of this configuration's caption and visual vectors."""
        return vector_key(CAPTION, self.caption_identity), vector_key(VISUAL, self.visual_identity)

    def reconcile(self, progress: Progress | None = None) -> int:
        """Make the store agree with the catalog; returns how many images went into the index again.

        Runs after a crash (half-written images), after a model change (new, empty collections) and
        when the index folder is missing or stale: vectors come from the catalog; only images without
        vectors for the current models (or not captioned by the current captioner) run a model, from
        the stored originals, never the user's files.
        """
        with self._writer():
            return self._reconcile_locked(progress)

    def _reconcile_locked(self, progress: Progress | None) -> int:
        self._reconciled = True
        entries = {r.id: (r, keys) for r, keys in self.catalog.entries(sweep=True)}
        store = self.store
        caption_owners, visual_owners = store.owners(CAPTION), store.owners(VISUAL)
        have_caption, have_visual = set(caption_owners), set(visual_owners)
        store.delete(sorted((have_caption | have_visual) - entries.keys()))
        self._adopt_index_vectors(entries, have_caption, have_visual)
        stored = store.captions() if have_caption else {}
        todo = [r for r, _ in entries.values()
                if r.id not in have_visual or r.id not in have_caption or stored.get(r.id) != r.caption
                or caption_owners.get(r.id) != r.owner or visual_owners.get(r.id) != r.owner]
        cap_key, vis_key = self._keys()
        caption_model = self.models.caption_model
        ready = [r for r in todo if {cap_key, vis_key} <= entries[r.id][1]
                 and (r.caption_edited or r.caption_model == caption_model)]
        ready_ids = {r.id for r in ready}
        compute = [r for r in todo if r.id not in ready_ids]
        done = 0
        for start in range(0, len(ready), REBUILD_GROUP):
            self._index_stored(ready[start : start + REBUILD_GROUP])
            done += len(ready[start : start + REBUILD_GROUP])
            if progress:
                progress(done, len(todo), "rebuilding the index from the catalog")
        for start in range(0, len(compute), WRITE_GROUP):
            self._repair(compute[start : start + WRITE_GROUP])
            done += len(compute[start : start + WRITE_GROUP])
            if progress:
                progress(done, len(todo), "re-indexing stored images")
        return len(todo)

    def _adopt_index_vectors(self, entries: dict[str, tuple[ImageRecord, frozenset[str]]], have_caption: set[str],
                             have_visual: set[str]) -> None:
        """Records written before the catalog kept vectors: copy the index's vectors into them once."""
        cap_key, vis_key = self._keys()
        caption_model = self.models.caption_model
        for kind, key, have in ((CAPTION, cap_key, have_caption), (VISUAL, vis_key, have_visual)):
            lacking = [i for i, (r, keys) in entries.items() if key not in keys and i in have
                       and (kind == VISUAL or r.caption_edited or r.caption_model == caption_model)]
            for start in range(0, len(lacking), REBUILD_GROUP):
                got = self.store.embeddings(kind, lacking[start : start + REBUILD_GROUP])
                if kind == CAPTION:  # only a vector of the record's own words is worth keeping
                    docs = self.store.records(got)
                    got = {i: v for i, v in got.items() if docs.get(i, {}).get("caption") == entries[i][0].caption}
                for image_id, vector in got.items():
                    record, keys = entries[image_id]
                    self.catalog.put_record(record, {**self.catalog.vectors(image_id), key: vector})
                    entries[image_id] = (record, keys | {key})

    def _index_stored(self, records: list[ImageRecord]) -> None:
        """Put catalogued images into the index from their stored vectors: no model runs."""
        cap_key, vis_key = self._keys()
        vectors = {r.id: self.catalog.vectors(r.id) for r in records}
        self.store.upsert_visual(records, np.stack([vectors[r.id][vis_key] for r in records]))
        self.store.upsert_captions(records, np.stack([vectors[r.id][cap_key] for r in records]))

    def _repair(self, records: list[ImageRecord]) -> None:
        """Images whose vectors for the current models are missing: run the models on the stored originals."""
        s = self.settings
        cap_key, vis_key = self._keys()
        caption_model = self.models.caption_model
        stored = {r.id: self.catalog.vectors(r.id) for r in records}
        images = [load_image(Path(r.path).read_bytes(), r.filename, 1 << 62, s.max_pixels).image for r in records]
        recaption = [not r.caption_edited and r.caption_model != caption_model for r in records]
        need_visual = any(vis_key not in stored[r.id] for r in records)
        got = self.compute.understand(images, [None if redo else r.caption for r, redo in zip(records, recaption)],
                                      visual=need_visual)
        fresh = []
        for i, r in enumerate(records):
            updated = replace(r, caption=got.captions[i], caption_model=caption_model) if recaption[i] else r
            kept = {k: v for k, v in stored[r.id].items() if not (recaption[i] and k.startswith(CAPTION + "|"))}
            kept[cap_key] = got.caption_vectors[i]
            if got.visual_vectors is not None:
                kept[vis_key] = got.visual_vectors[i]
            fresh.append((updated, kept))
        retagged = self._retag([r for r, _ in fresh], np.stack([v[vis_key] for _, v in fresh]))
        fresh = [(r, kept) for r, (_, kept) in zip(retagged, fresh)]
        for r, kept in fresh:
            self.catalog.put_record(r, kept)
        self.store.upsert_visual([r for r, _ in fresh], np.stack([v[vis_key] for _, v in fresh]))
        self.store.upsert_captions([r for r, _ in fresh], np.stack([v[cap_key] for _, v in fresh]))
        release_freed_memory()

    def _retag(self, records: list[ImageRecord], vectors: np.ndarray) -> list[ImageRecord]:
        """Tags chosen by another CLIP model are chosen again (a person's tags are kept)."""
        return [replace(r, tags=tags, tags_model=self.visual_identity)
                if not r.tags_edited and r.tags_model != self.visual_identity else r
                for r, tags in zip(records, self.tagger.tag(vectors))]

    def set_tags(self, image_id: str, tags: Sequence[str], visitor: str | None = None,
                 admin: bool = False) -> ImageRecord:
        """Replace an image's tags by a person's; they are kept through model changes, filterable at once.
        Who may: as for `remove`."""
        clean = tuple(dict.fromkeys(t for t in (normalise_tag(t) for t in tags) if t))
        if len(clean) > MAX_USER_TAGS:
            raise InvalidQuery(f"An image can have at most {MAX_USER_TAGS} tags.")
        with self._writer():
            current = self.get(image_id, visitor)
            check_may_change(current, visitor, admin)
            record = replace(current, tags=clean, tags_edited=True)
            self.catalog.put_record(record)  # its vectors are kept
            self.store.update_metadata([record])
            return record

    def remove(self, image_id: str, visitor: str | None = None, admin: bool = False) -> ImageRecord:
        """Delete an image: its catalog record and original first, then its vectors and thumbnail.

        A public-demo `visitor` may delete their own uploads; shared images need `admin` (visibility.py)."""
        with self._writer():
            record = self.get(image_id, visitor)
            check_may_change(record, visitor, admin)
            self.catalog.remove(record.id)
            self.store.delete([record.id])
            self.thumbnails.remove(record.id)
            return record

    def thumbnail(self, record: ImageRecord) -> Path:
        """The small WebP shown for an image in grids (made from the stored original if missing)."""
        return self.thumbnails.ensure(record.id, Path(record.path), self.settings.max_pixels)

    def expire_uploads(self, now: datetime | None = None) -> list[ImageRecord]:
        """Remove visitors' uploads older than VS_VISITOR_TTL_HOURS: originals, records and vectors.
        The shared collection is never touched."""
        cutoff = (now or datetime.now(timezone.utc)) - timedelta(hours=self.settings.visitor_ttl_hours)
        old = [r for r in self.catalog.records() if r.owner and _parse_time(r.added_at) <= cutoff]
        if not old:
            return []
        with self._writer():
            for record in old:
                self.catalog.remove(record.id)
            self.store.delete([r.id for r in old])
            for record in old:
                self.thumbnails.remove(record.id)
        return old

    def set_caption(self, image_id: str, caption: str, visitor: str | None = None,
                    admin: bool = False) -> ImageRecord:
        """Replace a caption by a person's words; it is re-embedded and searchable at once.
        Who may: as for `remove`."""
        text = clean_text(caption, MAX_CAPTION_CHARS, what="caption")
        record = self.get(image_id, visitor)
        check_may_change(record, visitor, admin)
        vector = self.compute.embed_captions([text])  # the model runs before the writer lock is taken
        with self._writer():
            record = self.catalog.set_caption(self.get(record.id).id, text, {self._keys()[0]: vector[0]})
            self.store.upsert_captions([record], vector)
            return record

    # ---- reading -----------------------------------------------------------------------------
    def get(self, image_id: str, visitor: str | None = None) -> ImageRecord:
        """The record of an id, or of a unique id prefix (8+ characters, as `list` shows); another
        visitor's upload is not found (visibility.py)."""
        key = (image_id or "").strip().lower()
        record = self.catalog.get(key) if len(key) == 64 else None
        if record is None and 8 <= len(key) < 64 and all(c in "0123456789abcdef" for c in key):
            matches = [p.stem for p in self.catalog.root.glob(f"{key[:2]}/{key}*.json")]
            record = self.catalog.get(matches[0]) if len(matches) == 1 else None
        if record is None:
            raise NotFound(f"No indexed image has the id {image_id[:80]!r}.")
        return check_visible(record, visitor, image_id)

    def list(self, visitor: str | None = None) -> list[ImageRecord]:
        return sorted((r for r in self.catalog.records() if visible(r, visitor)), key=lambda r: (r.added_at, r.filename))

    def search(self, query: str, k: int = 10, alpha: float | None = None, visitor: str | None = None, *,
               offset: int = 0, min_relevance: float | None = None, sort: str = "relevance",
               filter: SearchFilter | None = None, like: str | bytes | None = None) -> SearchResponse:
        """Text search: caption channel, visual channel and their hybrid, best first.

        `like` (an indexed id or image bytes) adds a picture to the words: the visual channel then
        searches with the image and text vectors combined in CLIP space (ranking.combine), the
        caption channel with the words. `filter` is applied inside each channel's query
        (retrieval.py), `min_relevance` (default VS_MIN_RELEVANCE) hides what scores below it,
        `sort="newest"` orders what passes by date added, `offset` passes over earlier pages.
        """
        t0 = time.perf_counter()
        s = self.settings
        text = clean_text(query, s.max_query_chars)
        alpha = check_alpha(s.default_alpha if alpha is None else alpha)
        page = self._page(k, offset, min_relevance, sort)
        if self._catalog_empty():  # answer at once, without loading models
            return SearchResponse(text, [], (time.perf_counter() - t0) * 1000, alpha, page.offset)
        caption_vec, visual_vec = self.queries.encode(text, self.lanes)
        visual_cal = ranking.CLIP_TEXT_IMAGE
        if like is not None:
            visual_vec, visual_cal = ranking.combine(self._image_query(like, visitor=visitor)[1], visual_vec)
        q = Query(caption_vec, visual_vec, self.queries.calibration, visual_cal, alpha)
        return self._answer(text, q, page, filter, visitor, t0)

    def similar(self, image: str | bytes, k: int = 10, filename: str = "query image", *, offset: int = 0,
                min_relevance: float | None = None, sort: str = "relevance",
                filter: SearchFilter | None = None, visitor: str | None = None) -> SearchResponse:
        """Image-to-image search by an indexed id or by image bytes; relevance is the visual score.

        An indexed image comes back first, with relevance 1.00 (cosine 1 with itself).
        """
        t0 = time.perf_counter()
        page = self._page(k, offset, min_relevance, sort)
        label, visual_vec, caption_vec = self._image_query(image, filename, visitor)
        q = Query(caption_vec, visual_vec, self.queries.calibration, ranking.CLIP_IMAGE_IMAGE, 0.0)
        return self._answer(label, q, page, filter, visitor, t0)

    def _page(self, k: object, offset: object, min_relevance: object, sort: object) -> "_Page":
        cut = self.settings.min_relevance if min_relevance is None else min_relevance
        return _Page(check_k(k, self.settings.max_k), check_offset(offset), check_min_relevance(cut), check_sort(sort))

    def _image_query(self, image: str | bytes, filename: str = "query image",
                     visitor: str | None = None) -> tuple[str, np.ndarray, np.ndarray | None]:
        """(label, CLIP image vector, caption vector or None) of an indexed id or of image bytes."""
        if isinstance(image, str):
            record = self.get(image, visitor)
            visual_vec = self.store.embeddings(VISUAL, [record.id]).get(record.id)
            if visual_vec is None:
                raise NotFound(f"Image {record.id[:12]} is still being indexed; try again shortly.")
            return record.filename, visual_vec, self.store.embeddings(CAPTION, [record.id]).get(record.id)
        loaded = load_image(image, filename, self.settings.max_file_bytes, self.settings.max_pixels)
        return loaded.filename, self.query_models.embed_images([loaded.image])[0], None

    def _answer(self, label: str, q: Query, page: "_Page", filter: SearchFilter | None, visitor: str | None,
                t0: float) -> SearchResponse:
        """Candidates (filtered inside the index) -> cut-off -> order -> one page of results.

        A public-demo visitor's candidates are the shared images and their own, nothing else: the
        visibility rule is part of every channel's `where` (visibility.py)."""
        need = page.offset + page.k
        found = gather(self.store, q, need, page.min_relevance, page.sort == "newest",
                       *self._restriction(filter, visitor), lanes=self.lanes)
        passing = [j for j, score in enumerate(found.total) if score >= page.min_relevance]
        meta = self.store.records(found.ids[j] for j in passing) if page.sort == "newest" else {}
        if page.sort == "newest":  # newest first; equal times keep the relevance order
            passing.sort(key=lambda j: timestamp(meta.get(found.ids[j], {}).get("added_at", "")), reverse=True)
        chosen = passing[page.offset : need]
        hidden = max(0, min(page.k, len(found.ids) - page.offset) - len(chosen))
        results = self._results(found, chosen)
        if not found.ids and (filter is None or not filter.active):
            self._refuse_if_out_of_date()  # no count() on every search: it scans the collection
        return SearchResponse(label, results, (time.perf_counter() - t0) * 1000, q.alpha, page.offset, hidden,
                              page.min_relevance)

    def _restriction(self, filter: SearchFilter | None, visitor: str | None
                     ) -> tuple[dict | None, list[str] | None, Selection | None]:
        """(where, ids, allowed) for gather(): what `filter` and `visitor`'s visibility let through, decided
        in memory once the facets are loaded (the second such search loads them), else by Chroma."""
        active = filter is not None and filter.active
        if not active and visitor is None:
            return None, None, None
        self._filtered_searches += 1
        if self._filtered_searches >= 2 and not self.store.facets.loaded:
            self._load_facets_soon()
        if self._facets_current():
            allowed = self.store.facets.select(filter if active else None, visitor)
            return None, None, allowed and allowed.with_lookup(self.store.lookup_facets)
        where, ids = where_for(visitor, filter.where() if active else None), None
        if active and filter.needs_ids:  # a name substring: the exact ids whose file name contains it
            ids = self.store.name_ids(filter.name, where)
        return where, ids, None

    def _results(self, found: Candidates, chosen: list[int]) -> list[SearchResult]:
        """The chosen candidates as results, their records read from the catalog (the truth, and a
        tenth of the time of asking the index for them: docs/benchmarks.md)."""
        out = []
        for j in chosen:
            record = self.catalog.get(found.ids[j])
            if record is None:  # removed, its vectors not yet (store outage)
                continue
            out.append(SearchResult(record, float(found.total[j]), float(found.caption_score[j]),
                                    float(found.visual_score[j]), float(found.caption_cosine[j]),
                                    float(found.visual_cosine[j])))
        return out

    def _catalog_empty(self) -> bool:
        """No image indexed yet. Scans the catalog only until it has seen one, not on every search."""
        if not self._seen_images:
            self._seen_images = not self.catalog.empty()
        return not self._seen_images

    def _refuse_if_out_of_date(self) -> None:
        """An empty answer from empty collections while images are stored: they await re-embedding."""
        if self.store.count() == 0 and not self.catalog.empty():
            raise IndexOutOfDate(
                "The stored images have no vectors for the current models yet (the models changed, or an "
                "indexing run was interrupted). The app rebuilds them in the background; from the command "
                "line run `python -m visual_search reindex`."
            )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _parse_time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)  # unreadable: counts as old
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class _Page:
    """Which results of a query to return, checked."""

    k: int
    offset: int
    min_relevance: float
    sort: str

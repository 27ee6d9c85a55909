"""The orchestrator: indexing (stages 1-2) and search (stages 3-4) over one data dir.

Read one query's path here: `search()` -> `QueryEncoder` (query.py) -> `VectorStore.query`
(store.py) -> `relevance` / `hybrid` (ranking.py) -> `SearchResult`s.

Write order for one image, chosen so that a process killed at any point leaves a state that
`reconcile()` repairs: original file -> catalog record -> visual vector -> caption vector.
The catalog says which images exist; vectors missing for a catalogued image are recomputed,
vectors without a catalogued image are dropped.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from . import ranking
from .catalog import Catalog
from .config import CLIP_TEXT_MODEL, Settings
from .errors import IndexOutOfDate, InvalidQuery, NotAnImage, NotFound, RejectedImage
from .intake import IntakeImage, check_image_kind, load_image, read_file, walk
from .memory import release_freed_memory
from .filters import SearchFilter, check_min_relevance, check_offset, check_sort, normalise_tag, timestamp
from .query import QueryEncoder, check_alpha, check_k, clean_text
from .records import Added, Duplicate, Failed, ImageRecord, IndexReport, SearchResponse, SearchResult, Skipped
from .retrieval import CANDIDATE_POOL, Candidates, Query, gather  # noqa: F401 (CANDIDATE_POOL: measure/)
from .store import CAPTION, VISUAL, VectorStore, make_client
from .tagging import Tagger

Progress = Callable[[int, int, str], None]  # (done, total, message)
MAX_CAPTION_CHARS = 500
MAX_USER_TAGS = 20
WRITE_GROUP = 8  # images embedded and written together (CLIP batches; progress granularity)


def clip_identity(settings: Settings) -> str:
    from .clip_encoder import ClipEncoder

    return ClipEncoder.identity_of(settings.clip_model, settings.clip_pretrained)


class SearchEngine:
    """One data dir, its models and its store. Models load on first use; the object is thread-safe."""

    def __init__(self, settings: Settings | None = None, *, captioner=None, text_encoder=None, clip=None) -> None:
        self.settings = settings or Settings.from_env()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(self.settings.images_dir)
        self._captioner, self._text_encoder, self._clip = captioner, text_encoder, clip
        self._store: VectorStore | None = None
        self._queries: QueryEncoder | None = None
        self._tagger: Tagger | None = None
        self._load_lock = threading.RLock()
        self._write_lock = threading.RLock()
        self._reconciled = False
        self._seen_images = False

    # ---- models and store, created once on first use ------------------------------------------
    @property
    def captioner(self):
        with self._load_lock:
            if self._captioner is None:
                from .captioner import BlipCaptioner

                s = self.settings
                self._captioner = BlipCaptioner(
                    s.caption_model, s.device, max_new_tokens=s.caption_max_tokens, batch_size=s.caption_batch
                )
            return self._captioner

    @property
    def clip(self):
        with self._load_lock:
            if self._clip is None:
                from .clip_encoder import ClipEncoder

                s = self.settings
                self._clip = ClipEncoder(s.clip_model, s.clip_pretrained, s.device)
            return self._clip

    @property
    def text_encoder(self):
        with self._load_lock:
            if self._text_encoder is None:
                from .text_encoder import ClipTextEncoder, SentenceTransformerEncoder

                s = self.settings
                self._text_encoder = (
                    ClipTextEncoder(self.clip)
                    if s.text_model == CLIP_TEXT_MODEL
                    else SentenceTransformerEncoder(s.text_model, s.device)
                )
            return self._text_encoder

    @property
    def caption_identity(self) -> str:
        """Captions depend on the captioner, their vectors on the text encoder: both name the collection."""
        cap = self._captioner.identity if self._captioner else self.settings.caption_model
        if self._text_encoder is not None:
            text = self._text_encoder.identity
        elif self.settings.text_model == CLIP_TEXT_MODEL:
            text = f"clip-text:{self.visual_identity}"
        else:
            text = self.settings.text_model
        return f"{cap}|{text}"

    @property
    def visual_identity(self) -> str:
        return self._clip.identity if self._clip else clip_identity(self.settings)

    @property
    def tagger(self) -> Tagger:
        """The tag vocabulary and its CLIP prompt vectors, computed once per CLIP model (cached on disk)."""
        with self._load_lock:
            if self._tagger is None:
                self._tagger = Tagger(self.clip, self.settings.tag_vocabulary, self.settings.data_dir / "tags")
            return self._tagger

    @property
    def store(self) -> VectorStore:
        with self._load_lock:
            if self._store is None:
                where = self.settings.chroma_url or str(self.settings.data_dir)
                client = make_client(self.settings)
                self._store = VectorStore(client, self.caption_identity, self.visual_identity, where)
            return self._store

    @property
    def queries(self) -> QueryEncoder:
        with self._load_lock:
            if self._queries is None:
                self._queries = QueryEncoder(self.text_encoder, self.clip)
            return self._queries

    def count(self) -> int:
        return self.store.count()

    # ---- writing -----------------------------------------------------------------------------
    @contextmanager
    def _writer(self) -> Iterator[None]:
        """One writer at a time: a thread lock, plus a file lock shared with other processes."""
        with self._write_lock:
            with open(self.settings.data_dir / ".writer.lock", "w") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                except BaseException as exc:
                    if not isinstance(exc, NotFound):  # a write cut short (store outage): repair first next time
                        self._reconciled = False
                    raise
                finally:
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

    def index_files(self, files: Sequence[tuple[str, str | os.PathLike]], progress: Progress | None = None) -> IndexReport:
        """Index uploads given as (display name, where the bytes are); each file is read only when its
        turn comes, so a large upload never sits in memory all at once. The name is never a path."""
        return self._index(((name, self._reader(Path(path))) for name, path in files), len(files), progress)

    def index_bytes(self, files: Sequence[tuple[str, bytes]], progress: Progress | None = None) -> IndexReport:
        """Index uploaded (file name, content) pairs. The name is only displayed, never used as a path."""
        return self._index(((name, (lambda d=data: d)) for name, data in files), len(files), progress)

    def _reader(self, path: Path, in_folder: bool = False) -> Callable[[], bytes]:
        if in_folder:
            return lambda: check_image_kind(read_file(path, self.settings.max_file_bytes))
        return lambda: read_file(path, self.settings.max_file_bytes)

    def _index(self, sources: Iterable[tuple[str, Callable[[], bytes] | str]], total: int, progress) -> IndexReport:
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
                    if image.id in seen or self.catalog.has(image.id):
                        report.duplicates.append(Duplicate(image.id, label))
                    else:
                        seen.add(image.id)
                        group.append((label, image))
                if len(group) >= WRITE_GROUP:
                    report.added.extend(self._add_group(group))
                    group = []
                if progress:
                    progress(done, total, label)
            report.added.extend(self._add_group(group))
        report.count = self.store.count()
        return report

    def _add_group(self, group: list[tuple[str, IntakeImage]]) -> list[Added]:
        if not group:
            return []
        t0 = time.perf_counter()
        images = [img.image for _, img in group]
        captions = self.captioner.caption(images)
        visual = self.clip.encode_images(images)
        caption_vectors = self.text_encoder.encode(captions)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        records = []
        for (_, img), caption, tags in zip(group, captions, self.tagger.tag(visual)):
            path = self.catalog.put_original(img.id, img.ext, img.data)
            record = ImageRecord(
                id=img.id, path=str(path), filename=img.filename, caption=caption, width=img.width,
                height=img.height, added_at=now, caption_model=self.captioner.identity,
                tags=tags, tags_model=self.visual_identity,
            )
            self.catalog.put_record(record)
            records.append(record)
        self.store.upsert_visual(records, visual)
        self.store.upsert_captions(records, caption_vectors)
        release_freed_memory()  # the captioner's activations, or they stay resident (memory.py)
        each = (time.perf_counter() - t0) / len(group)
        return [Added(r.id, label, r.caption, each) for (label, _), r in zip(group, records)]

    def reconcile(self, progress: Progress | None = None) -> int:
        """Make the store agree with the catalog; returns how many images were (re)embedded.

        Runs after a crash (half-written images) and after a model change (new, empty
        collections): originals are re-read from the data dir, never from the user's files.
        """
        with self._writer():
            return self._reconcile_locked(progress)

    def _reconcile_locked(self, progress: Progress | None) -> int:
        self._reconciled = True
        self.catalog.sweep()
        records = {r.id: r for r in self.catalog.records()}
        store = self.store
        have_caption, have_visual = store.ids(CAPTION), store.ids(VISUAL)
        store.delete(sorted((have_caption | have_visual) - records.keys()))
        stored = store.captions() if have_caption else {}
        todo = [r for r in records.values() if r.id not in have_visual or stored.get(r.id) != r.caption]
        for done, start in enumerate(range(0, len(todo), WRITE_GROUP), 1):
            self._repair(todo[start : start + WRITE_GROUP], have_visual)
            if progress:
                progress(min(start + WRITE_GROUP, len(todo)), len(todo), "re-indexing stored images")
        return len(todo)

    def _repair(self, records: list[ImageRecord], have_visual: set[str]) -> None:
        s = self.settings
        images = {
            r.id: load_image(Path(r.path).read_bytes(), r.filename, 1 << 62, s.max_pixels).image for r in records
        }
        stale = [r for r in records if not r.caption_edited and r.caption_model != self.captioner.identity]
        if stale:
            fresh = self.captioner.caption([images[r.id] for r in stale])
            for r, caption in zip(stale, fresh):
                updated = replace(r, caption=caption, caption_model=self.captioner.identity)
                self.catalog.put_record(updated)
                records[records.index(r)] = updated
        missing = [r for r in records if r.id not in have_visual]
        if missing:
            vectors = self.clip.encode_images([images[r.id] for r in missing])
            missing = self._retag(missing, vectors, records)
            self.store.upsert_visual(missing, vectors)
        self.store.upsert_captions(records, self.text_encoder.encode([r.caption for r in records]))
        release_freed_memory()

    def _retag(self, records: list[ImageRecord], vectors: np.ndarray, group: list[ImageRecord]) -> list[ImageRecord]:
        """Tags chosen by another CLIP model are chosen again (a person's tags are kept); `group` updated."""
        out = []
        for r, tags in zip(records, self.tagger.tag(vectors)):
            if not r.tags_edited and r.tags_model != self.visual_identity:
                updated = replace(r, tags=tags, tags_model=self.visual_identity)
                self.catalog.put_record(updated)
                group[group.index(r)] = r = updated
            out.append(r)
        return out

    def set_tags(self, image_id: str, tags: Sequence[str]) -> ImageRecord:
        """Replace an image's tags by a person's; they are kept through model changes, filterable at once."""
        clean = tuple(dict.fromkeys(t for t in (normalise_tag(t) for t in tags) if t))
        if len(clean) > MAX_USER_TAGS:
            raise InvalidQuery(f"An image can have at most {MAX_USER_TAGS} tags.")
        with self._writer():
            record = replace(self.get(image_id), tags=clean, tags_edited=True)
            self.catalog.put_record(record)
            self.store.update_metadata([record])
            return record

    def remove(self, image_id: str) -> ImageRecord:
        """Delete an image: its catalog record and original first, then its vectors."""
        with self._writer():
            record = self.get(image_id)
            self.catalog.remove(record.id)
            self.store.delete([record.id])
            return record

    def set_caption(self, image_id: str, caption: str) -> ImageRecord:
        """Replace a caption by a person's words; it is re-embedded and searchable at once."""
        text = clean_text(caption, MAX_CAPTION_CHARS, what="caption")
        with self._writer():
            record = self.catalog.set_caption(self.get(image_id).id, text)
            self.store.upsert_captions([record], self.text_encoder.encode([text]))
            return record

    # ---- reading -----------------------------------------------------------------------------
    def get(self, image_id: str) -> ImageRecord:
        """The record of an id, or of a unique id prefix (8+ characters, as `list` shows)."""
        key = (image_id or "").strip().lower()
        record = self.catalog.get(key) if len(key) == 64 else None
        if record is None and 8 <= len(key) < 64 and all(c in "0123456789abcdef" for c in key):
            matches = [p.stem for p in self.catalog.root.glob(f"{key[:2]}/{key}*.json")]
            record = self.catalog.get(matches[0]) if len(matches) == 1 else None
        if record is None:
            raise NotFound(f"No indexed image has the id {image_id[:80]!r}.")
        return record

    def list(self) -> list[ImageRecord]:
        return sorted(self.catalog.records(), key=lambda r: (r.added_at, r.filename))

    def search(self, query: str, k: int = 10, alpha: float | None = None, *, offset: int = 0,
               min_relevance: float | None = None, sort: str = "relevance", filter: SearchFilter | None = None,
               like: str | bytes | None = None) -> SearchResponse:
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
        visual_vec, visual_cal = self.queries.visual(text), ranking.CLIP_TEXT_IMAGE
        if like is not None:
            visual_vec, visual_cal = ranking.combine(self._image_query(like)[1], visual_vec)
        q = Query(self.queries.caption(text), visual_vec, self.text_encoder.calibration, visual_cal, alpha)
        return self._answer(text, q, page, filter, t0)

    def similar(self, image: str | bytes, k: int = 10, filename: str = "query image", *, offset: int = 0,
                min_relevance: float | None = None, sort: str = "relevance",
                filter: SearchFilter | None = None) -> SearchResponse:
        """Image-to-image search by an indexed id or by image bytes; relevance is the visual score.

        An indexed image comes back first, with relevance 1.00 (cosine 1 with itself).
        """
        t0 = time.perf_counter()
        page = self._page(k, offset, min_relevance, sort)
        label, visual_vec, caption_vec = self._image_query(image, filename)
        q = Query(caption_vec, visual_vec, self.text_encoder.calibration, ranking.CLIP_IMAGE_IMAGE, 0.0)
        return self._answer(label, q, page, filter, t0)

    def _page(self, k: object, offset: object, min_relevance: object, sort: object) -> "_Page":
        cut = self.settings.min_relevance if min_relevance is None else min_relevance
        return _Page(check_k(k, self.settings.max_k), check_offset(offset), check_min_relevance(cut), check_sort(sort))

    def _image_query(self, image: str | bytes, filename: str = "query image") -> tuple[str, np.ndarray, np.ndarray | None]:
        """(label, CLIP image vector, caption vector or None) of an indexed id or of image bytes."""
        if isinstance(image, str):
            record = self.get(image)
            visual_vec = self.store.embeddings(VISUAL, [record.id]).get(record.id)
            if visual_vec is None:
                raise NotFound(f"Image {record.id[:12]} is still being indexed; try again shortly.")
            return record.filename, visual_vec, self.store.embeddings(CAPTION, [record.id]).get(record.id)
        loaded = load_image(image, filename, self.settings.max_file_bytes, self.settings.max_pixels)
        return loaded.filename, self.clip.encode_images([loaded.image])[0], None

    def _answer(self, label: str, q: Query, page: "_Page", filter: SearchFilter | None, t0: float) -> SearchResponse:
        """Candidates (filtered inside the index) -> cut-off -> order -> one page of results."""
        where, ids = None, None
        if filter is not None and filter.active:
            where = filter.where()
            if filter.needs_ids:  # a name substring: the exact ids whose file name contains it
                ids = self.store.name_ids(filter.name, where)
        need = page.offset + page.k
        found = gather(self.store, q, need, page.min_relevance, page.sort == "newest", where, ids)
        passing = [j for j, score in enumerate(found.total) if score >= page.min_relevance]
        meta = self.store.records(found.ids[j] for j in passing) if page.sort == "newest" else {}
        if page.sort == "newest":  # newest first; equal times keep the relevance order
            passing.sort(key=lambda j: timestamp(meta.get(found.ids[j], {}).get("added_at", "")), reverse=True)
        chosen = passing[page.offset : need]
        hidden = max(0, min(page.k, len(found.ids) - page.offset) - len(chosen))
        results = self._results(found, chosen, meta)
        if not found.ids and (filter is None or not filter.active):
            self._refuse_if_out_of_date()  # no count() on every search: it scans the collection
        return SearchResponse(label, results, (time.perf_counter() - t0) * 1000, q.alpha, page.offset, hidden,
                              page.min_relevance)

    def _results(self, found: Candidates, chosen: list[int], meta: dict[str, dict]) -> list[SearchResult]:
        missing = [found.ids[j] for j in chosen if found.ids[j] not in meta]
        meta = {**meta, **self.store.records(missing)}
        out = []
        for j in chosen:
            image_id = found.ids[j]
            m = meta.get(image_id)
            if m is None or not self.catalog.has(image_id):  # removed, its vectors not yet (store outage)
                continue
            out.append(SearchResult(self._record_from_meta(image_id, m), float(found.total[j]),
                                    float(found.caption_score[j]), float(found.visual_score[j]),
                                    float(found.caption_cosine[j]), float(found.visual_cosine[j])))
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

    def _record_from_meta(self, image_id: str, m: dict) -> ImageRecord:
        return ImageRecord(
            id=image_id, path=str(self.catalog.original_path(image_id, m.get("ext", ""))),
            filename=m.get("filename", ""), caption=m.get("caption", ""), width=int(m.get("width", 0)),
            height=int(m.get("height", 0)), added_at=m.get("added_at", ""),
            caption_model=m.get("caption_model", ""), caption_edited=bool(m.get("caption_edited", False)),
            tags=tuple(m.get("tags") or ()), tags_model=m.get("tags_model", ""),
            tags_edited=bool(m.get("tags_edited", False)),
        )



@dataclass(frozen=True)
class _Page:
    """Which results of a query to return, checked."""

    k: int
    offset: int
    min_relevance: float
    sort: str

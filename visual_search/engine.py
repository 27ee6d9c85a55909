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
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from . import ranking
from .catalog import Catalog
from .config import CLIP_TEXT_MODEL, Settings
from .errors import IndexOutOfDate, NotFound, RejectedImage
from .intake import IntakeImage, load_image, read_file, walk
from .memory import release_freed_memory
from .query import QueryEncoder, check_alpha, check_k, clean_text
from .records import Added, Duplicate, Failed, ImageRecord, IndexReport, SearchResponse, SearchResult
from .store import CAPTION, VISUAL, VectorStore, make_client

Progress = Callable[[int, int, str], None]  # (done, total, message)
MAX_CAPTION_CHARS = 500
CANDIDATE_POOL = 40  # per-channel candidates re-scored exactly, at least 4 x k
WRITE_GROUP = 8  # images embedded and written together (CLIP batches; progress granularity)


def clip_identity(settings: Settings) -> str:
    from .clip_encoder import ClipEncoder

    return ClipEncoder.identity_of(settings.clip_model, settings.clip_pretrained)


class SearchEngine:
    """One data dir, its models and its store. Models load on first use; the object is thread-safe."""

    def __init__(self, settings: Settings | None = None, *, captioner=None, text_encoder=None, clip=None,
                 clip_text=None) -> None:
        self.settings = settings or Settings.from_env()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(self.settings.images_dir)
        self._captioner, self._text_encoder, self._clip = captioner, text_encoder, clip
        self._clip_text = clip_text if clip_text is not None else clip  # a given CLIP encodes queries too
        self._clip_is_ours = False  # a CLIP given by the caller is left whole
        self._store: VectorStore | None = None
        self._queries: QueryEncoder | None = None
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
                self._clip_is_ours = True
                self._drop_unused_text_tower()
            return self._clip

    @property
    def clip_text(self):
        """CLIP's text tower for queries: on ONNX Runtime once its export verified (backend.py), else `clip`."""
        with self._load_lock:
            if self._clip_text is None:
                from .backend import clip_text_encoder

                self._clip_text = clip_text_encoder(self.settings, lambda: self.clip, self.visual_identity)
                self._drop_unused_text_tower()
            return self._clip_text

    def _drop_unused_text_tower(self) -> None:
        """Queries on ONNX Runtime: the torch CLIP this engine loaded only embeds images now (~250 MB less)."""
        if self._clip_is_ours and self._clip_text is not None and self._clip_text is not self._clip:
            self._clip.drop_text_tower()
            release_freed_memory()

    @property
    def text_encoder(self):
        """Captions and queries of the caption channel: on ONNX Runtime once its export verified (backend.py)."""
        with self._load_lock:
            if self._text_encoder is None:
                from .backend import caption_encoder
                from .text_encoder import ClipTextEncoder, SentenceTransformerEncoder

                s = self.settings
                self._text_encoder = (
                    ClipTextEncoder(self.clip_text)
                    if s.text_model == CLIP_TEXT_MODEL
                    else caption_encoder(s, lambda: SentenceTransformerEncoder(s.text_model, s.device))
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
                self._queries = QueryEncoder(self.text_encoder, self.clip_text)
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
        items = walk(list(paths))
        return self._index(((str(p), problem or self._reader(p)) for p, problem in items), len(items), progress)

    def index_files(self, files: Sequence[tuple[str, str | os.PathLike]], progress: Progress | None = None) -> IndexReport:
        """Index uploads given as (display name, where the bytes are); each file is read only when its
        turn comes, so a large upload never sits in memory all at once. The name is never a path."""
        return self._index(((name, self._reader(Path(path))) for name, path in files), len(files), progress)

    def index_bytes(self, files: Sequence[tuple[str, bytes]], progress: Progress | None = None) -> IndexReport:
        """Index uploaded (file name, content) pairs. The name is only displayed, never used as a path."""
        return self._index(((name, (lambda d=data: d)) for name, data in files), len(files), progress)

    def _reader(self, path: Path) -> Callable[[], bytes]:
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
        for (_, img), caption in zip(group, captions):
            path = self.catalog.put_original(img.id, img.ext, img.data)
            record = ImageRecord(
                id=img.id, path=str(path), filename=img.filename, caption=caption, width=img.width,
                height=img.height, added_at=now, caption_model=self.captioner.identity,
            )
            self.catalog.put_record(record)
            records.append(record)
        self.store.upsert_visual([r.id for r in records], visual)
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
            self.store.upsert_visual([r.id for r in missing], self.clip.encode_images([images[r.id] for r in missing]))
        self.store.upsert_captions(records, self.text_encoder.encode([r.caption for r in records]))
        release_freed_memory()

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

    def search(self, query: str, k: int = 10, alpha: float | None = None) -> SearchResponse:
        """Text search: caption channel, visual channel and their hybrid, best first.

        Each channel's index returns its nearest images with their exact cosines (from the HNSW
        distances); only the other channel's vectors of those images are read, to score them there
        too (docs/benchmarks.md has what each step costs).
        """
        t0 = time.perf_counter()
        s = self.settings
        text = clean_text(query, s.max_query_chars)
        k = check_k(k, s.max_k)
        alpha = check_alpha(s.default_alpha if alpha is None else alpha)
        if self._catalog_empty():  # answer at once, without loading models
            return SearchResponse(text, [], (time.perf_counter() - t0) * 1000, alpha)
        pool = _pool_size(k)
        caption_vec, visual_vec = self.queries.caption(text), self.queries.visual(text)
        cap_cos = self._nearest(CAPTION, caption_vec, pool) if alpha > 0 else {}
        vis_cos = self._nearest(VISUAL, visual_vec, pool) if alpha < 1 else {}
        # The other channel's cosine of each candidate; an image without it is still half-written.
        vis_cos.update(self._cosines(VISUAL, visual_vec, [i for i in cap_cos if i not in vis_cos]))
        cap_cos.update(self._cosines(CAPTION, caption_vec, [i for i in vis_cos if i not in cap_cos]))
        results = self._score(cap_cos, vis_cos, self.text_encoder.calibration, ranking.CLIP_TEXT_IMAGE, alpha, k)
        if not results:
            self._refuse_if_out_of_date()  # no count() on every search: it scans the collection
        return SearchResponse(text, results, (time.perf_counter() - t0) * 1000, alpha)

    def similar(self, image: str | bytes, k: int = 10, filename: str = "query image") -> SearchResponse:
        """Image-to-image search by an indexed id or by image bytes; relevance is the visual score.

        An indexed image comes back first, with relevance 1.00 (cosine 1 with itself).
        """
        t0 = time.perf_counter()
        k = check_k(k, self.settings.max_k)
        caption_vec = None
        if isinstance(image, str):
            record = self.get(image)
            label = record.filename
            visual_vec = self.store.embeddings(VISUAL, [record.id]).get(record.id)
            caption_vec = self.store.embeddings(CAPTION, [record.id]).get(record.id)
            if visual_vec is None:
                raise NotFound(f"Image {record.id[:12]} is still being indexed; try again shortly.")
        else:
            loaded = load_image(image, filename, self.settings.max_file_bytes, self.settings.max_pixels)
            label = loaded.filename
            visual_vec = self.clip.encode_images([loaded.image])[0]
        vis_cos = self._nearest(VISUAL, visual_vec, _pool_size(k))
        # an uploaded image has no caption: caption cosine 0, but only for fully written images
        cap_cos = (self._cosines(CAPTION, caption_vec, list(vis_cos)) if caption_vec is not None
                   else dict.fromkeys(self.store.embeddings(CAPTION, vis_cos), 0.0))
        results = self._score(cap_cos, vis_cos, self.text_encoder.calibration, ranking.CLIP_IMAGE_IMAGE, 0.0, k)
        if not results:
            self._refuse_if_out_of_date()
        return SearchResponse(label, results, (time.perf_counter() - t0) * 1000, 0.0)

    def _nearest(self, kind: str, vector: np.ndarray, n: int) -> dict[str, float]:
        """The n nearest images on one channel, best first, with their exact cosines."""
        return {h.id: h.cosine for h in self.store.query(kind, vector, n)}

    def _cosines(self, kind: str, vector: np.ndarray, ids: list[str]) -> dict[str, float]:
        """Exact cosines of `vector` with the stored `kind` vectors of `ids` (ids without one left out)."""
        stored = self.store.embeddings(kind, ids)
        if not stored:
            return {}
        return dict(zip(stored, ranking.cosine(vector, np.stack(list(stored.values()))).tolist()))

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

    def _score(self, cap_cos: dict[str, float], vis_cos: dict[str, float], caption_cal, visual_cal, alpha: float,
               k: int) -> list[SearchResult]:
        """Candidates with a cosine on both channels -> relevance -> hybrid -> top k, with their records."""
        ids = [i for i in dict.fromkeys([*cap_cos, *vis_cos]) if i in cap_cos and i in vis_cos]
        if not ids:
            return []
        cap, vis = np.array([cap_cos[i] for i in ids]), np.array([vis_cos[i] for i in ids])
        cap_rel, vis_rel = ranking.relevance(cap, caption_cal), ranking.relevance(vis, visual_cal)
        total = ranking.hybrid(cap_rel, vis_rel, alpha)
        order = ranking.top_k(total, k)
        meta = self.store.records(ids[i] for i in order)
        out = []
        for i in order:
            m = meta.get(ids[i])
            if m is None or not self.catalog.has(ids[i]):  # removed, its vectors not yet (store outage)
                continue
            out.append(SearchResult(self._record_from_meta(ids[i], m), float(total[i]), float(cap_rel[i]),
                                    float(vis_rel[i]), float(cap[i]), float(vis[i])))
        return out

    def _record_from_meta(self, image_id: str, m: dict) -> ImageRecord:
        return ImageRecord(
            id=image_id, path=str(self.catalog.original_path(image_id, m.get("ext", ""))),
            filename=m.get("filename", ""), caption=m.get("caption", ""), width=int(m.get("width", 0)),
            height=int(m.get("height", 0)), added_at=m.get("added_at", ""),
            caption_model=m.get("caption_model", ""), caption_edited=bool(m.get("caption_edited", False)),
        )


def _pool_size(k: int) -> int:
    """Nearest images asked of each channel's index: CANDIDATE_POOL, or 4 x k for long result lists."""
    return max(CANDIDATE_POOL, 4 * k)

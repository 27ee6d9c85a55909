"""Indexing: files, folders or uploads in -> stored originals, records and vectors (stages 1-2).

Each file is read, checked, decoded and thumbnailed a little ahead of its turn, on a few threads
(library/pipeline.py: a bounded pipeline, so a large upload never sits in memory all at once), while
the group before it is in the models; with the models on a GPU those threads also make each image's
model inputs (the processors' arrays). Images go through the models a group at a time, OUTSIDE the
writer lock: a visitor's upload never makes another person's caption edit wait for BLIP. A group's
writes run on a thread of their own while the next group is in the models (`Behind`). Only the
writes take the lock, and duplicates are judged again under it (another writer may have added the
same file).

Write order for one image, chosen so that a process killed at any point leaves a state that the
reconciler repairs: original file -> catalog record with its vectors -> thumbnail -> visual vector
-> caption vector in Chroma.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..demo.fair_share import FairShare
from ..errors import NotAnImage, RejectedImage
from ..models.compute import CPU_GROUP, Prepared, Understanding
from ..models.memory import release_freed_memory
from ..times import now_iso
from ..records import Added, Duplicate, Failed, ImageRecord, IndexReport, Skipped
from . import thumbnails
from .catalog import image_id
from .edits import held
from .intake import IntakeImage, check_image_kind, load_image, read_file, walk
from .metadata import NOT_READ, PhotoMetadata, read_metadata, with_keywords
from .ocr import read_fields
from .pipeline import Behind, ordered_map, workers
from .reconcile import Reconciler
from .state import Progress, State

WRITE_GROUP = CPU_GROUP  # images embedded and written together without a GPU (Compute.group_size)
Source = tuple[str, Callable[[], bytes] | str]  # (label, reader of the bytes, or why the file was refused)


@dataclass(frozen=True)
class Intake:
    """One file read, checked and decoded, with its thumbnail's bytes (None: it was held already)."""

    image: IntakeImage
    thumbnail: bytes | None
    metadata: PhotoMetadata = NOT_READ  # what the file says: taken, place, camera, title... (library/metadata.py)
    ocr: dict[str, str] = field(default_factory=dict)  # ocr_text, ocr_model (library/ocr.py; {}: not read)
    prepared: Prepared | None = None  # the models' inputs for this image (None: it was held already)


class Indexer:
    def __init__(self, state: State, reconciler: Reconciler, fair_share: FairShare,
                 count: Callable[[str | None], int]) -> None:
        self.s = state
        self.reconciler = reconciler
        self.fair_share = fair_share
        self._count = count

    def paths(self, paths: Sequence[str | os.PathLike], progress: Progress | None = None) -> IndexReport:
        """Index files and folders (recursively). Bad files are reported, good ones indexed."""
        hidden: list[Path] = []
        items = walk(list(paths), hidden)
        named = {Path(p) for p in paths}  # a file met in a folder that is no image at all is skipped, not failed
        report = self.index(((str(p), problem or self._reader(p, in_folder=p not in named)) for p, problem in items),
                            len(items), progress)
        report.skipped[:0] = [Skipped(str(p), "hidden file") for p in hidden]
        return report

    def files(self, files: Sequence[tuple[str, str | os.PathLike]], progress: Progress | None = None,
              visitor: str | None = None) -> IndexReport:
        """Uploads as (display name, where the bytes are); the name is never a path. A `visitor`'s
        (public demo) are theirs alone, within their fair share: the files past it (in order) are
        reported refused, and nothing of theirs is written; none fitting raises QuotaExceeded."""
        sources = ((name, self._reader(Path(path))) for name, path in files)
        if visitor is None:
            return self.index(sources, len(files), progress)
        own = [r for r in self.s.catalog.records() if r.owner == visitor]
        held_bytes = sum(_size(Path(r.path)) for r in own)
        with self.fair_share.admit(visitor, [_size(Path(p)) for _, p in files], len(own), held_bytes) as admitted:
            report = self.index(islice(sources, admitted.files), admitted.files, progress, visitor)
        report.refused.extend(Skipped(name, admitted.refusal) for name, _ in files[admitted.files:])
        return report

    def contents(self, files: Sequence[tuple[str, bytes]], progress: Progress | None = None) -> IndexReport:
        """(file name, content) pairs; the name is only displayed, never used as a path."""
        return self.index(((name, (lambda d=data: d)) for name, data in files), len(files), progress)

    def _reader(self, path: Path, in_folder: bool = False) -> Callable[[], bytes]:
        limit = self.s.settings.max_file_bytes
        if in_folder:
            return lambda: check_image_kind(read_file(path, limit))
        return lambda: read_file(path, limit)

    def index(self, sources: Iterable[Source], total: int, progress: Progress | None,
              visitor: str | None = None) -> IndexReport:
        """A bounded pipeline (pipeline.py): images are read, checked, thumbnailed and made ready for the
        models by a few threads while the group before them is in the models (groups of
        Compute.group_size: 8 on a CPU, the captioning batch on a GPU); the report, the duplicates and
        the progress follow the input's order."""
        report = IndexReport()
        if not self.s.writer.reconciled:  # once per process: finish what an earlier run left undone
            self.reconciler.reconcile(progress)
        size = self.s.compute.group_size()
        n = workers(gpu=self.s.compute.gpu_here())
        # The models' inputs are made on the intake threads when a GPU runs the models. With the models
        # on this CPU they are made by the thread that runs the models, just before: torch spreads its
        # operations over every core, an intake thread's own torch operations (the processors') start
        # a second set of OpenMP threads that spin-wait beside BLIP's, and on 2 cores indexing was
        # 15-20% slower that way (docs/benchmarks.md).
        prepare_ahead = self.s.compute.on_gpu or self.s.compute.gpu_here()
        with (ThreadPoolExecutor(n, thread_name_prefix="vs-intake") if n > 1 else nullcontext()) as pool, \
                Behind(inline=n == 1) as writes:
            # in flight: the next group and a few more, made ready while this group is in the models
            taken = ordered_map(pool, lambda item: (item[0], self._intake(*item, prepare=prepare_ahead)), sources,
                                size + 2 * n)

            # the models on this thread; the group's writes go on while the next group is in the models
            def add(group: list[tuple[str, Intake]]) -> None:
                writes.submit(self._write_group, group, *self._understand(group), visitor or "", report)

            group: list[tuple[str, Intake]] = []
            seen: set[str] = set()
            for done, (label, got) in enumerate(taken, 1):
                own = self._new(label, got.image, seen, visitor, report) if isinstance(got, Intake) else None
                if own is not None:  # under its id for this owner
                    seen.add(own.id)
                    group.append((label, replace(got, image=own)))
                elif not isinstance(got, Intake) and got is not None:
                    (report.skipped if isinstance(got, Skipped) else report.failed).append(got)
                if len(group) >= size:
                    add(group)
                    group = []
                if progress:
                    progress(done, total, label)
            if group:
                add(group)
        report.count = self._count(visitor)
        return report

    def _intake(self, label: str, source: Callable[[], bytes] | str,
                prepare: bool = False) -> "Intake | Skipped | Failed | None":
        """Read, check and decode one file; unless it is held already, make its thumbnail and, when
        `prepare` (a GPU runs the models), the models' inputs: a worker thread, so the processors' work
        is spread over the cores and never spends a GPU's time."""
        s = self.s.settings
        try:
            if isinstance(source, str):
                raise RejectedImage(source)
            image = load_image(source(), label, s.max_file_bytes, s.max_pixels)
        except NotAnImage as exc:
            return Skipped(label, str(exc))
        except RejectedImage as exc:
            return Failed(label, str(exc))
        if self.s.catalog.has(image.id):  # held already: a duplicate, or another visitor's copy (read if added)
            return Intake(image, None, read_metadata(image.data))
        return Intake(image, thumbnails.make(image.image), read_metadata(image.data),
                      read_fields(self.s.text_reader, image.data),
                      self.s.models.prepare([image.image]) if prepare else None)

    def _new(self, label: str, image: IntakeImage, seen: set[str], visitor: str | None,
             report: IndexReport) -> IntakeImage | None:
        """The image under its id for this owner (library/catalog.image_id), unless this person already has
        it: the same file in the shared collection, or among their own uploads (reported as a duplicate).
        Another visitor's copy of the same file is theirs alone and changes nothing here."""
        own = replace(image, id=image_id(image.id, visitor or ""))
        copy = held(self.s.catalog, image.id, visitor)
        if copy is None and own.id not in seen:
            return own
        report.duplicates.append(Duplicate(copy.id if copy else own.id, label))
        return None

    def _understand(self, group: list[tuple[str, "Intake"]]) -> tuple[Understanding, list[tuple[str, ...]], float]:
        """The models' half of a group (no lock held): captions, vectors and tags, and when it began."""
        t0 = time.perf_counter()
        s = self.s
        if all(intake.prepared is None for _, intake in group):  # the models are on this CPU
            prepared = s.models.prepare([intake.image.image for _, intake in group])
        else:  # made on the intake threads (but for an image held by another visitor: made here)
            prepared = Prepared.join([intake.prepared or s.models.prepare([intake.image.image]) for _, intake in group])
        got = s.compute.understand_prepared(prepared)
        tags = s.tagger.tag(got.visual_vectors)
        release_freed_memory()  # the captioner's activations, or they stay resident (models/memory.py)
        return got, tags, t0

    def _write_group(self, group: list[tuple[str, "Intake"]], got: Understanding, tags: list[tuple[str, ...]],
                     t0: float, owner: str, report: IndexReport) -> None:
        """The writes of a group, under the writer lock (on the writes' thread, while the next group is in
        the models). So `index` is never called with the writer lock held: that thread would wait for it."""
        s = self.s
        now = now_iso()
        cap_key, vis_key = s.keys()
        written: list[tuple[int, ImageRecord]] = []
        with s.writer():
            for i, (label, intake) in enumerate(group):
                img = intake.image
                if s.catalog.has(img.id):  # another writer added it while the models ran
                    report.duplicates.append(Duplicate(img.id, label))
                    continue
                path = s.catalog.put_original(img.id, img.ext, img.data)
                record = ImageRecord(
                    id=img.id, path=str(path), filename=img.filename, caption=got.captions[i], width=img.width,
                    height=img.height, added_at=now, caption_model=s.models.caption_model,
                    tags=with_keywords(tags[i], intake.metadata.keywords), tags_model=s.models.visual_identity,
                    owner=owner, **intake.metadata.fields(), **(intake.ocr or read_fields(s.text_reader, img.data)),
                )
                s.catalog.put_record(record, {vis_key: got.visual_vectors[i], cap_key: got.caption_vectors[i]})
                s.thumbnails.put_bytes(img.id, intake.thumbnail or thumbnails.make(img.image))
                written.append((i, record))
            if written:
                rows = [i for i, _ in written]
                s.store.upsert_visual([r for _, r in written], got.visual_vectors[rows])
                s.store.upsert_captions([r for _, r in written], got.caption_vectors[rows])
        each = (time.perf_counter() - t0) / len(group)
        report.added.extend(Added(r.id, group[i][0], r.caption, each) for i, r in written)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0

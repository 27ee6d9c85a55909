"""Upload jobs: the files of one upload, indexed in a thread of their own.

A job outlives the request that started it: a reload or a closed tab does not stop the work, and
the page finds its jobs again by their ids (kept in the browser) and shows their progress. Images
land a group at a time (`Compute.group_size`: 8 on a CPU, a measured chunk on a GPU), so the collection's count moves
while a long upload runs, and other writes (a caption edit) get their turn between groups.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import uuid
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from gradio.utils import get_upload_folder

from ..errors import VisualSearchError

if TYPE_CHECKING:
    from ..engine import SearchEngine

log = logging.getLogger(__name__)
KEEP = 200  # finished jobs remembered, for pages that come back after the end
WAITING = "waiting for your earlier upload to finish"


@dataclass(frozen=True)
class UploadJob:
    """What one upload has done so far: a snapshot, safe to read from any thread."""

    id: str
    total: int
    done: int = 0  # files handled (indexed, duplicate or rejected)
    current: str = ""  # the file being read or captioned now
    rows: tuple[tuple[str, str, str], ...] = ()  # (file, outcome, caption or reason)
    added: int = 0
    duplicates: int = 0
    failed: int = 0
    not_added: int = 0  # files a public demo's cap left out (each with its row and reason)
    count: int = 0  # images in the collection after the last group landed
    running: bool = True
    error: str | None = None
    visitor: str | None = None  # whose uploads these are in a public demo (None: the shared collection)
    viewer: str | None = None  # who is told the outcome: counts and captions are of what they may see


class UploadJobs:
    """The server's upload jobs, by id. One thread per job; the engine serialises their writes."""

    def __init__(self, engine: "SearchEngine") -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, UploadJob] = OrderedDict()
        self._threads: dict[str, threading.Thread] = {}
        self._turns: dict[str, list] = {}  # visitor -> [their jobs' lock, jobs holding or waiting for it]

    def start(self, files: Sequence[tuple[str, str]], visitor: str | None = None,
              viewer: str | None = None) -> UploadJob:
        """Index (display name, path) pairs in the background, as `visitor`'s own uploads in a public demo
        (None: the shared collection), told to `viewer` (a curator adding to the shared collection sees
        counts and duplicates' captions as a visitor does; None: everything); returns the job as it starts."""
        viewer = visitor if viewer is None else viewer
        job = UploadJob(uuid.uuid4().hex, len(files), count=self.engine.count(viewer), visitor=visitor, viewer=viewer)
        context = contextvars.copy_context()  # the uploader's event: ZeroGPU's scheduler reads the visitor from it
        thread = threading.Thread(target=context.run, args=(self._run, job.id, list(files)),
                                  name=f"vs-upload-{job.id[:8]}", daemon=True)
        with self._lock:
            self._jobs[job.id] = job
            self._threads[job.id] = thread
            finished = [i for i, j in self._jobs.items() if not j.running]
            for old in finished[: max(0, len(finished) - KEEP)]:
                del self._jobs[old]
        thread.start()
        return job

    def get(self, job_id: str) -> UploadJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def wait(self, job_id: str) -> UploadJob | None:
        """The job once it has finished (API callers get the whole outcome in one answer)."""
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join()
        return self.get(job_id)

    def _update(self, job_id: str, **changes) -> None:
        with self._lock:
            self._jobs[job_id] = replace(self._jobs[job_id], **changes)

    def _before_group(self, job_id: str, start: int) -> None:
        """Called before each group of files is indexed; tests override it to hold a job there."""

    def _run(self, job_id: str, files: list[tuple[str, str]]) -> None:
        start = 0
        try:
            with self._turn(job_id):
                step = self.engine.compute.group_size()  # 8 on a CPU; on a GPU a chunk sized from its throughput
                for start in range(0, len(files), step):
                    self._before_group(job_id, start)
                    refusal = self._index(job_id, start, files[start : start + step])
                    if refusal:  # a cap reached inside this group: the files after it are not tried
                        self._not_added(job_id, files[start + step :], refusal)
                        return
            self._update(job_id, running=False, current="")
        except VisualSearchError as exc:  # e.g. a public demo's per-minute cap, reached mid-way
            self._not_added(job_id, files[start:], str(exc))
        except Exception as exc:  # a background thread must report, not die silently
            log.exception("upload job failed")
            self._update(job_id, running=False, current="", error=f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._threads.pop(job_id, None)
            _forget_copies(path for _, path in files)

    @contextmanager
    def _turn(self, job_id: str) -> Iterator[None]:
        """A public demo visitor's jobs run one after another: a second upload made while the first
        is indexed waits for it (and says so) instead of being refused (issue 24, item 9)."""
        visitor = self.get(job_id).visitor
        if visitor is None:
            yield
            return
        with self._lock:
            turn = self._turns.setdefault(visitor, [threading.Lock(), 0])
            turn[1] += 1
        try:
            if not turn[0].acquire(blocking=False):
                self._update(job_id, current=WAITING)
                turn[0].acquire()
                self._update(job_id, current="")
            try:
                yield
            finally:
                turn[0].release()
        finally:
            with self._lock:
                turn[1] -= 1
                if not turn[1]:
                    del self._turns[visitor]

    def _index(self, job_id: str, start: int, group: list[tuple[str, str]]) -> str:
        """Index one group; returns why some of it was refused (a public demo's cap), or ""."""
        report = self.engine.index_files(
            group, progress=lambda done, _total, label: self._update(job_id, done=start + done - 1, current=label),
            visitor=self.get(job_id).visitor)
        viewer = self.get(job_id).viewer
        rows = ([(a.path, "indexed", a.caption) for a in report.added]
                + [(d.path, "duplicate: already indexed", self._caption_of(d.id, viewer)) for d in report.duplicates]
                + [(f.path, "rejected", f.error) for f in report.failed]
                + [(s.path, "rejected", s.reason) for s in report.skipped]
                + [(r.path, "not added", r.reason) for r in report.refused])
        job = self.get(job_id)
        refusal = report.refused[0].reason if report.refused else ""
        self._update(job_id, done=start + len(group), current="", rows=job.rows + tuple(rows),
                     added=job.added + len(report.added), duplicates=job.duplicates + len(report.duplicates),
                     failed=job.failed + len(report.failed) + len(report.skipped),
                     not_added=job.not_added + len(report.refused),
                     count=self._count(viewer))
        _forget_copies(path for _, path in group)
        return refusal

    def _not_added(self, job_id: str, files: list[tuple[str, str]], reason: str) -> None:
        """The job stopped: every file it did not get to has its row, with the reason (none is dropped
        silently), and the job ends with the error."""
        job = self.get(job_id)
        rows = tuple((name, "not added", reason) for name, _ in files)
        self._update(job_id, running=False, current="", error=reason, done=job.total, rows=job.rows + rows,
                     not_added=job.not_added + len(rows))

    def _caption_of(self, image_id: str, viewer: str | None) -> str:
        """A duplicate's caption, if `viewer` may see it (another visitor's upload keeps its words to itself)."""
        try:
            return self.engine.get(image_id, viewer).caption
        except VisualSearchError:
            return ""

    def _count(self, viewer: str | None) -> int:
        try:
            return self.engine.count(viewer)
        except VisualSearchError:
            return 0


def _forget_copies(paths) -> None:
    """Gradio's copies of uploaded files, removed once indexed: the stored original is the only copy
    served, so a deleted image answers 404 everywhere. Files elsewhere are never touched."""
    folder = Path(get_upload_folder()).resolve()
    for path in paths:
        p = Path(path).resolve()
        if p.is_relative_to(folder) and p.is_file():
            p.unlink(missing_ok=True)

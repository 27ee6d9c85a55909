"""The app's first-start job, run in a background thread so the page is usable at once:

1. `engine.reconcile()`: repair what an earlier run left half-done, and rebuild the vectors from
   the stored originals after a model change;
2. on the first start of an empty data dir, index the sample images (once: a marker file in the
   data dir remembers it, so samples a user deleted do not come back on the next start);
3. load the query models, so the first search does not wait for them, and the filterable fields
   of every image (engine.load_facets), so filters and visitors' visibility need no Chroma `where`.

A restart on a filled data dir reuses the persistent index: steps 1-2 find nothing to do and
caption nothing. A missing index folder is rebuilt in step 1 from the vectors in the catalog.

Locally the app starts the job at import. On ZeroGPU every GPU call must belong to a visitor's
event, so the job starts from the first event instead: a page load, or any API call
(`start_on_first_event`: a Space first reached through its API must not stay empty), its thread
carrying that event's request (the ZeroGPU scheduler reads the visitor from it).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import VisualSearchError
from ..library.intake import image_files

if TYPE_CHECKING:
    import gradio as gr

    from ..engine import SearchEngine

log = logging.getLogger(__name__)

MARKER = ".samples"  # in the data dir: "pending" while the samples are being indexed, then "done"


@dataclass(frozen=True)
class JobStatus:
    running: bool
    stage: str  # what the job is doing, for people
    done: int
    total: int
    error: str | None = None
    indexed: int = 0  # sample images captioned and added by this run
    repaired: int = 0  # stored images re-embedded by this run (after a crash or a model change)


class StartupJob:
    def __init__(self, engine: "SearchEngine") -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._status = JobStatus(False, "not started", 0, 0)
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self, request: Any = None) -> "StartupJob":
        """Start the job once. `request`: the Gradio request of the event that starts it, when the
        caller is outside that event's handler (else the handler's own context carries it)."""
        with self._lock:
            if self._thread is None:
                self._status = JobStatus(True, "starting", 0, 0)
                context = contextvars.copy_context()  # inside an event: the GPU calls belong to it
                if request is not None:
                    from gradio.context import LocalContext

                    context.run(LocalContext.request.set, request)
                self._thread = threading.Thread(target=context.run, args=(self.run,), name="vs-startup",
                                                daemon=True)
                self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def status(self) -> JobStatus:
        with self._lock:
            return self._status

    def _set(self, stage: str, done: int = 0, total: int = 0, error: str | None = None, running: bool = True,
             **counts: int) -> None:
        with self._lock:
            self._status = replace(self._status, running=running, stage=stage, done=done, total=total, error=error,
                                   **counts)

    def run(self) -> None:
        try:
            self._work()
            self._set("ready", running=False)
        except VisualSearchError as exc:
            self._set("failed", error=str(exc), running=False)
        except Exception as exc:  # a background thread must report, not die silently
            log.exception("startup job failed")
            self._set("failed", error=f"{type(exc).__name__}: {exc}", running=False)

    def _work(self) -> None:
        self._set("checking the index")
        repaired = self.engine.reconcile(lambda d, t, _label: self._set("re-indexing stored images", d, t))
        self._set("checking the index", repaired=repaired)
        samples = self._samples_to_index()
        if samples:
            report = self.engine.index_paths(samples, lambda d, t, _: self._set("indexing the sample images", d, t))
            (self.engine.settings.data_dir / MARKER).write_text("done\n")
            self._set("indexed the sample images", indexed=len(report.added))
        self._set("loading the search models")
        self.engine.queries  # noqa: B018 - loads the text encoder and CLIP now, not at the first query
        self.engine.load_facets()

    def _samples_to_index(self) -> list[Path]:
        """The sample files, on an empty data dir's first start (or to finish an interrupted first start)."""
        marker = self.engine.settings.data_dir / MARKER
        state = marker.read_text().strip() if marker.exists() else ""
        if state == "done":
            return []
        if not state:
            if not self.engine.catalog.empty():
                marker.write_text("done\n")  # a collection indexed before the app: no samples added to it
                return []
            marker.write_text("pending\n")
        return image_files(Path(self.engine.settings.sample_dir))


def start_on_first_event(demo: "gr.Blocks", job: StartupJob) -> None:
    """Start `job` at the first event of any kind (ZeroGPU): every page load and every API call goes
    through `Blocks.process_api` with its request, so the job starts there, carrying that request,
    whichever endpoint a program calls first."""
    process_api = demo.process_api

    async def starting(*args: Any, **kwargs: Any) -> Any:
        if not job.started:
            request = kwargs.get("request")
            job.start(request[0] if isinstance(request, list) and request else request)
        return await process_api(*args, **kwargs)

    demo.process_api = starting  # type: ignore[method-assign]

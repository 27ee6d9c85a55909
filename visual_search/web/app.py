"""The Gradio app: `build_demo(engine)` lays out the tabs; `launch_options(settings)` says what the
server may serve. One engine per process is passed in (tests pass one on a temporary data dir).

Tabs: Search · Find similar (search_tabs.py) · Add images · Library (collection_tabs.py) · How it
works (explain_tab.py). None holds pipeline logic: they call the engine (and explain.py) and format
the answer.
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import gradio as gr

from ..config import Settings
from ..engine import SearchEngine
from ..errors import VisualSearchError
from .startup import StartupJob
from .collection_tabs import build_collection_tabs
from .common import md
from .explain_tab import build_explain_tab
from .search_tabs import build_search_tabs
from .visitors import Access, build_access
from .guard import Guard
from .serving import GoneIsNotFound, OnlyPictures, StoredImageRoute
from .uploads import UploadJobs

TITLE = "Visual search"
CSS = """
#query textarea, #query input { font-size: 1.1rem; }
.gradio-container { max-width: 1280px !important; width: 100%; margin: auto; }
/* Clipped as gradio has it, but no scroll box of its own (overflow: hidden is one): the sticky search
   box of a phone and the Library's editor then stick to the window, which is what scrolls. */
.gradio-container { overflow: clip !important; }

/* Result tiles (.tiles) and the Library's: the grid grows with its tiles instead of scrolling inside
   a fixed box; each result tile shows its whole relevance | caption under the picture, never over it or cut. */
.tiles .grid-wrap, #library-gallery .grid-wrap { overflow: visible !important; max-height: none !important;
  min-height: 0 !important; height: auto !important; }
.tiles .grid-container, #library-gallery .grid-container { grid-template-rows: none !important;
  grid-auto-rows: auto !important; }
.tiles .grid-container { grid-template-columns: repeat(auto-fill, minmax(min(100%, 200px), 1fr)) !important; }
.tiles .gallery-item, .tiles .thumbnail-item { height: auto !important; aspect-ratio: auto !important; }
.tiles .thumbnail-item { display: flex !important; flex-direction: column; }
.tiles .thumbnail-item > img { aspect-ratio: 4 / 3; height: auto !important; flex: none; }
.tiles .thumbnail-item .caption-label { position: static !important; max-width: 100% !important; opacity: 1 !important;
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important; text-align: left;
  border: 0 !important; border-radius: 0 !important; font-size: var(--text-md); line-height: 1.35; }
/* The gallery's floating label ("Results") sits above the first tile, not over its corner. */
.tiles .grid-wrap, #library-gallery .grid-wrap { padding-top: calc(var(--size-6) + var(--size-2)) !important; }
/* The large view's caption wraps, whole: "0.44 | two brown dogs ..." was one centred line cut at both ends. */
.tiles caption.caption { display: block !important; white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; max-width: 100% !important; padding: var(--size-1) var(--size-2) !important;
  text-align: center; line-height: 1.35;
  /* above the strip of thumbnails (absolute, at the bottom): a third line went under it on a phone */
  margin-bottom: var(--size-14) !important; }
#library-gallery .grid-container { grid-template-columns: repeat(auto-fill, minmax(min(100%, 120px), 1fr)) !important; }
/* The Library's editor stays in view beside a long grid (a phone scrolls to it instead). */
#library-editor { position: sticky; top: var(--size-2); align-self: flex-start; }
#library-gallery .thumbnail-item .caption-label {
  white-space: normal !important; max-width: calc(100% - 12px) !important; text-align: left;
  display: -webkit-box !important; -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden;
  /* the space under the two lines is a border, not padding: a third line would show in padding */
  padding-bottom: 0 !important; border-bottom: var(--size-1) solid var(--background-fill-secondary) !important;
}

/* A box that cannot be changed looks it (the Library editor on a public demo's shared images): only
   the buttons used to fade, so a read-only caption looked editable until Save said no. */
.gradio-container textarea:disabled, .gradio-container input:disabled {
  background: var(--neutral-100) !important; color: var(--body-text-color-subdued) !important;
  border-style: dashed !important; cursor: not-allowed !important; }
.dark .gradio-container textarea:disabled, .dark .gradio-container input:disabled {
  background: var(--neutral-800) !important; }

/* Numbers and formulas in the text wrap instead of widening the page. */
.gradio-container .prose code { white-space: pre-wrap !important; overflow-wrap: anywhere; }

/* Wide tables scroll sideways inside their own box; plots never set the page's width. */
.gradio-container .block { max-width: 100%; }
.gradio-container, .gradio-container .main, .gradio-container .main > .wrap, .gradio-container main.contain,
.gradio-container .tabs, .gradio-container .tabitem, .gradio-container .column { min-width: 0 !important; }
.gradio-container .table-wrap, .gradio-container .table-container { max-width: 100%; overflow-x: auto; }
.gradio-container .vega-embed, .gradio-container .vega-embed > * { max-width: 100% !important; }

/* Phones: rows stack, nothing is wider than the screen. (Inside @media gradio only keeps its own
   prefixed copy of a rule, `.gradio-container... .contain <selector>`: select below .contain.) */
@media (max-width: 640px) {
  .row { flex-direction: column !important; flex-wrap: nowrap !important; }
  .row > *, .row > .form > * { min-width: 100% !important; flex: 1 1 auto !important; }
  .tiles .grid-container { grid-template-columns: repeat(2, minmax(0, 1fr)) !important; }
  table { font-size: var(--text-sm); }
  #add-outcome span { font-size: var(--text-sm) !important; }  /* "outcome", "rejected" fit their column whole */
  /* eight columns: scroll sideways in their box, not squeeze (gradio sizes its columns to this box) */
  #explain-table table, #explain-table .upload-container { min-width: 960px !important; }
  /* The search box stays at the top while the results are scrolled to (search_tabs.SHOW_RESULTS), so
     a query can be refined without scrolling back up: box and button side by side, over what scrolls. */
  #search-box { position: sticky !important; top: 0; z-index: 20; flex-direction: row !important;
    flex-wrap: nowrap !important; align-items: flex-end; background: var(--background-fill-primary);
    padding: var(--size-1) 0; }
  #search-box > *, #search-box > .form > * { min-width: 0 !important; }
  #search-box > button { flex: 0 0 auto !important; min-width: 84px !important; }
}
"""
# Gradio's own words that its English locale lacks (an upload button was named "common.upload").
LABELS = {"common.upload": "Add more files"}
BAR = 16  # characters in the text progress bar of the status line
# Visitors' expired uploads are looked for at a page load at most this often: looking reads every record
# (~180 ms at 10k images), and a page load is free to anyone.
EXPIRE_EVERY_S = 60.0


class Every:
    """Says yes at most once per `seconds` (thread-safe): for work a stranger's request may trigger."""

    def __init__(self, seconds: float, clock=time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self._last = -math.inf
        self._lock = threading.Lock()

    def due(self) -> bool:
        with self._lock:
            now = self.clock()
            if now - self._last < self.seconds:
                return False
            self._last = now
            return True


# On a Space the app is reached only through Hugging Face's proxy, from an internal address (10.x seen);
# the visitor's address is the right-most X-Forwarded-For entry that is not one of these networks.
SPACE_PROXIES = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10"


def default_trusted_proxies() -> None:
    """Which connections' X-Forwarded-For uvicorn believes (FORWARDED_ALLOW_IPS, when the operator has
    not set it): on a Space, its internal proxies; elsewhere none. uvicorn's own default trusts
    127.0.0.1, so anything on the same host could make each request look like a new address to the
    per-address limits."""
    os.environ.setdefault("FORWARDED_ALLOW_IPS", SPACE_PROXIES if os.environ.get("SPACE_ID", "").strip() else "")


def launch_options(settings: Settings) -> dict[str, Any]:
    """Serve only the stored images and the samples (originals and thumbnails by their exact names,
    never a record); refuse uploads above the library's own limit; a stored image, thumbnail or upload
    copy that is gone answers 404; gradio's queue is bounded and kept running, and a public demo's
    clients are rate-limited by address (guard.py)."""
    from gradio.utils import get_upload_folder
    from starlette.middleware import Middleware

    default_trusted_proxies()
    gone = [settings.images_dir.resolve(), settings.thumbs_dir.resolve(), Path(get_upload_folder()).resolve()]
    return {
        "allowed_paths": [str(settings.images_dir.resolve()), str(settings.thumbs_dir.resolve()),
                          str(settings.sample_dir.resolve())],
        "max_file_size": settings.max_file_bytes,
        "css": CSS,
        "i18n": gr.I18n(en=LABELS),
        "app_kwargs": {"middleware": [Middleware(Guard, settings=settings, upload_dir=get_upload_folder()),
                                      Middleware(StoredImageRoute, images=settings.images_dir),
                                      Middleware(OnlyPictures, images=settings.images_dir, thumbs=settings.thumbs_dir),
                                      Middleware(GoneIsNotFound, roots=gone)]},
    }


def build_demo(engine: SearchEngine, startup: StartupJob | None = None, access: Access | None = None,
               uploads: UploadJobs | None = None) -> gr.Blocks:
    """The page; `access` says who is asking (VS_PUBLIC_DEMO: visitors, curators), `uploads` is the
    registry of upload jobs (one is made when not given)."""
    access = access or Access(engine.settings)
    uploads = uploads or UploadJobs(engine)
    sweeps = Every(EXPIRE_EVERY_S)

    def busy() -> str | None:
        """What the first-start job is doing, while it runs (search works meanwhile)."""
        st = startup.status if startup else None
        if st is None or not st.running:
            return None
        return f"{st.stage} ({st.done}/{st.total})" if st.total else st.stage

    def header(request: gr.Request = None) -> str:
        try:
            n = engine.count(access.who(request).visitor)
        except VisualSearchError as exc:  # e.g. the Chroma server is down: say so, keep the page up
            return f"⚠️ {md(exc)}"
        text = f"**{n:,} image{'s' * (n != 1)}** in the collection"
        st = startup.status if startup else None
        if st and st.running and st.total:
            filled = round(BAR * st.done / st.total)
            text += f" · ⏳ {md(st.stage)} `{'▰' * filled}{'▱' * (BAR - filled)}` {st.done}/{st.total}"
        elif st and st.running:
            text += f" · ⏳ {md(st.stage)}…"
        elif st and st.error:
            text += f" · ⚠️ first-start indexing failed: {md(st.error)}"
        if st and st.running:
            text += " — you can search already."
        return text

    def tick(request: gr.Request):
        """Poll the job while it runs, or until the first visit starts it (ZeroGPU): a tick that came
        before that visit must not stop the polling. The job's state is read before the count: the
        tick that stops the polling counts after the job's last write."""
        waiting = bool(startup and (startup.status.running or not startup.started))
        return header(request), gr.Timer(active=waiting)

    def first_visit(request: gr.Request):
        """Start the first-start job if the app has not (ZeroGPU: its GPU calls need an event); in a
        public demo, sweep visitors' expired uploads."""
        if startup is not None and not startup.started:
            startup.start()
        if access.public and sweeps.due():
            try:
                engine.expire_uploads()
            except VisualSearchError:
                pass  # the store is down: the header says so; a later visit sweeps
        running = bool(startup and startup.status.running)  # before the count (see tick)
        return header(request), gr.Timer(active=running)

    # Stored images and thumbnails are served straight from the data dir, never copied into gradio's
    # cache: a deleted image then answers 404 at once, and a page of tiles costs no copies.
    gr.set_static_paths([engine.settings.thumbs_dir, engine.settings.images_dir])
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nFind pictures by describing what you want to see.")
        page, signed_in = build_access(access, demo)  # page: load events, after a visitor's id is known
        header_md = gr.Markdown(elem_id="collection-status")
        # polls the first-start job; stops when it is done (a public demo's, from the first visit on: a tick
        # before the visitor is known would count another's collection)
        timer = gr.Timer(1.0, active=startup is not None and not access.public)
        # this browser's upload jobs, across reloads (outside the tabs: a tab not yet opened is not mounted)
        my_uploads = gr.BrowserState([], storage_key="vs-upload-jobs")
        with gr.Tabs(overflow_behavior="wrap") as tabs:  # phones: a second row, not a menu
            build_search_tabs(engine, busy, tabs, page, access)
            build_collection_tabs(engine, busy, header, header_md, page, uploads, my_uploads, access, signed_in)
            build_explain_tab(engine, access)
        timer.tick(tick, None, [header_md, timer], api_visibility="private", show_progress="hidden")
        page.load(header, None, header_md, api_name="status")
        page.load(first_visit, None, [header_md, timer], api_visibility="private", show_progress="hidden")
    return demo

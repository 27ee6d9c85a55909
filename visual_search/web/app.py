"""The Gradio app: `build_demo(engine)` lays out the tabs; `launch_options(settings)` says what the
server may serve. One engine per process is passed in (tests pass one on a temporary data dir).

Tabs: Search · Find similar · Add images · Library · How it works. Each lives in a `ui_*.py`
module; none holds pipeline logic, they call the engine (and explain.py) and format the answer.
"""

from __future__ import annotations

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

TITLE = "Visual search"
CSS = """
#query textarea, #query input { font-size: 1.1rem; }
.gradio-container { max-width: 1280px !important; margin: auto; }
.thumbnail-item .caption-label {
  white-space: normal !important; max-width: calc(100% - 12px) !important; text-align: left;
  display: -webkit-box !important; -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden;
}
"""
BAR = 16  # characters in the text progress bar of the status line


def launch_options(settings: Settings) -> dict[str, Any]:
    """Serve only the stored images and the samples; refuse uploads above the library's own limit."""
    return {
        "allowed_paths": [str(settings.images_dir.resolve()), str(settings.sample_dir.resolve())],
        "max_file_size": settings.max_file_bytes,
        "css": CSS,
    }


def build_demo(engine: SearchEngine, startup: StartupJob | None = None, access: Access | None = None) -> gr.Blocks:
    access = access or Access(engine.settings)  # who is asking (VS_PUBLIC_DEMO: visitors, curators)

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
        running = bool(startup and startup.status.running)
        return header(request), gr.Timer(active=running)

    def first_visit():
        """Start the first-start job if the app has not (ZeroGPU: its GPU calls need an event); in a
        public demo, sweep visitors' expired uploads."""
        if startup is not None and not startup.started:
            startup.start()
        if access.public:
            try:
                engine.expire_uploads()
            except VisualSearchError:
                pass  # the store is down: the header says so; the next visit sweeps
        return gr.Timer(active=bool(startup and startup.status.running))

    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nFind pictures by describing what you want to see.")
        build_access(access, demo)
        header_md = gr.Markdown(elem_id="collection-status")
        timer = gr.Timer(1.0, active=startup is not None)  # polls the first-start job; stops when it is done
        with gr.Tabs() as tabs:
            build_search_tabs(engine, busy, tabs, access)
            build_collection_tabs(engine, busy, header, header_md, access)
            build_explain_tab(engine, access)
        timer.tick(tick, None, [header_md, timer], api_visibility="private", show_progress="hidden")
        demo.load(header, None, header_md, api_name="status")
        demo.load(first_visit, None, timer, api_visibility="private", show_progress="hidden")
    return demo

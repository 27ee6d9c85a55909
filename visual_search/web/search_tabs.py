"""The "Search" and "Find similar" tabs: a text query or an image in, ranked tiles out.

Handlers only call the engine and format what it returns (see ui_common.view).
"""

from __future__ import annotations

import gradio as gr

from ..engine import SearchEngine
from ..errors import VisualSearchError
from .visitors import Access
from .common import (
    Busy, ResultsView, alpha_slider, failure, k_slider, md, read_upload, results_details, results_gallery,
    selected_record, view,
)

# One per sample image (sample_images/), worded the way a visitor might ask.
EXAMPLES = [
    "an astronaut in a space suit", "a cat", "a cup of coffee", "a rocket on the launch pad",
    "galaxies in deep space", "a photographer with a camera", "a chinese temple", "an orange flower",
    "a raccoon", "two dogs at a door", "snowy mountains", "a stream in the forest", "a fig on a plate",
    "paint brushes", "a bird on a branch", "rowing boats at sunset", "a kite in the sky", "autumn leaves",
    "a pier in the fog", "a path through the woods",
]

def build_search_tabs(engine: SearchEngine, busy: Busy, tabs: gr.Tabs, access: Access) -> None:
    """Both tabs are built together: picking a search result opens "Find similar" with it."""
    s = engine.settings
    top = min(50, s.max_k)

    def search(query: str, k: float, alpha: float, request: gr.Request):
        visitor = access.who(request).visitor
        try:
            response = engine.search(query, k=k, alpha=alpha, visitor=visitor)
            shown = view(response, engine.count(visitor), busy(), "for")
        except VisualSearchError as exc:
            shown = ResultsView.message(failure(exc))
        return *shown.outputs(), "", gr.update(visible=False)

    def similar_to_upload(path: str | None, k: float, request: gr.Request):
        if not path:
            return ResultsView.message("Upload an image, or pick a search result, to find images like it.").outputs()
        visitor = access.who(request).visitor
        try:
            data, name = read_upload(path, s.max_file_bytes)
            response = engine.similar(data, k=k, filename=name, visitor=visitor)
            return view(response, engine.count(visitor), busy(), "like").outputs()
        except VisualSearchError as exc:
            return ResultsView.message(failure(exc)).outputs()

    def similar_to_indexed(image_id: str | None, k: float, request: gr.Request):
        if not image_id:
            return *ResultsView.message("Pick a result first.").outputs(), gr.update()
        visitor = access.who(request).visitor
        try:
            record = engine.get(image_id, visitor)
            response = engine.similar(record.id, k=k, visitor=visitor)
            return *view(response, engine.count(visitor), busy(), "like").outputs(), record.path
        except VisualSearchError as exc:
            return *ResultsView.message(failure(exc)).outputs(), gr.update()

    def pick(ids: list[str], evt: gr.SelectData):
        """A tile was selected: offer "find similar" for it."""
        try:
            record = selected_record(engine, ids, evt)
        except VisualSearchError as exc:
            return "", gr.update(visible=False), failure(exc)
        if record is None:
            return "", gr.update(visible=False), ""
        return record.id, gr.update(visible=True), f"Selected: **{md(record.filename)}** — {md(record.caption)}"

    with gr.Tab("Search", id="search"):
        with gr.Row(equal_height=True):
            query = gr.Textbox(label="Describe what you want to see", placeholder="e.g. a cat on a sofa  (Enter)",
                               scale=5, autofocus=True, max_lines=1, elem_id="query")
            go = gr.Button("Search", variant="primary", scale=1, min_width=100)
        with gr.Row():
            k = k_slider(8, top)
            alpha = alpha_slider(s.default_alpha)
        examples = gr.Examples(EXAMPLES, inputs=[query], label="Try one of these", examples_per_page=len(EXAMPLES))
        status, gallery = results_gallery("Results", "search")
        ids = gr.State([])
        picked = gr.Textbox(visible=False)  # id of the selected tile (a component, so API clients can set it)
        with gr.Row(visible=False, equal_height=True) as pick_row:
            picked_md = gr.Markdown()
            like = gr.Button("Find similar images", variant="secondary", scale=0, min_width=240)
        table = results_details("search")

    with gr.Tab("Find similar", id="similar"):
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                image = gr.Image(type="filepath", image_mode=None, label="Query image", height=260, elem_id="similar-image",
                                 sources=["upload", "clipboard"])
                k2 = k_slider(8, top)
                find = gr.Button("Find similar", variant="primary")
            with gr.Column(scale=3):
                s_status, s_gallery = results_gallery("Similar images", "similar")
                s_ids = gr.State([])
                s_picked = gr.Textbox(visible=False)
                with gr.Row(visible=False, equal_height=True) as s_pick_row:
                    s_picked_md = gr.Markdown()
                    s_like = gr.Button("Find images like this one", variant="secondary", scale=0, min_width=240)
                s_table = results_details("similar")

    search_out = [gallery, table, status, ids, picked, pick_row]
    go.click(search, [query, k, alpha], search_out, api_name="search")
    query.submit(search, [query, k, alpha], search_out, api_visibility="private")
    examples.load_input_event.then(search, [query, k, alpha], search_out, api_visibility="private")
    gallery.select(pick, [ids], [picked, pick_row, picked_md], api_visibility="private")

    similar_out = [s_gallery, s_table, s_status, s_ids]
    find.click(similar_to_upload, [image, k2], similar_out, api_name="similar")
    image.upload(similar_to_upload, [image, k2], similar_out, api_visibility="private")
    s_gallery.select(pick, [s_ids], [s_picked, s_pick_row, s_picked_md], api_visibility="private")
    s_like.click(similar_to_indexed, [s_picked, k2], similar_out + [image], api_name="similar_by_id")
    like.click(lambda: gr.Tabs(selected="similar"), None, tabs, api_visibility="private").then(
        similar_to_indexed, [picked, k2], similar_out + [image], api_visibility="private"
    )

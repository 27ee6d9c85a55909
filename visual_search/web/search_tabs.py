"""The "Search" and "Find similar" tabs: a text query or an image in, ranked tiles out.

Handlers only call the engine and format what it returns (see common.view).
"""

from __future__ import annotations

import gradio as gr

from ..engine import SearchEngine
from ..errors import NotFound, VisualSearchError
from ..search.filters import CLAUSES, Clause, SearchFilter
from ..search.searcher import SORTS
from ..records import SearchResponse
from .visitors import Access, PageLoad
from .common import (
    Busy, ResultsView, alpha_slider, failure, gone, k_slider, md, preview_originals, read_upload, results_details,
    results_gallery, selected_record, view,
)
from .inputs import uploaded_image
from .links import SHOW_IN_URL, link_params, result_rows, with_clause_params

# One per sample image (sample_images/), worded the way a visitor might ask.
SORT_LABELS = {"newest": "newest first (taken, else added)"}  # taken: from the photo's EXIF
EXAMPLES = [
    "an astronaut in a space suit", "a cat", "a cup of coffee", "a rocket on the launch pad",
    "galaxies in deep space", "a photographer with a camera", "a chinese temple", "an orange flower",
    "a raccoon", "two dogs at a door", "snowy mountains", "a stream in the forest", "a fig on a plate",
    "paint brushes", "a bird on a branch", "rowing boats at sunset", "a kite in the sky", "autumn leaves",
    "a pier in the fog", "a path through the woods",
]
# Runs in the browser after a search from the box, an example or a link: on a phone the results sit
# under the sliders, filters and examples (~1,200 px down), so they are scrolled up to just below the
# search box, which stays at the top (sticky, app.CSS) for the next query; a desktop shows them beside
# those already and does not move.
SHOW_RESULTS = """() => {
  const status = document.querySelector('#search-status');
  if (window.innerWidth > 640 || !status || !status.innerText.trim()) return [];
  const box = document.querySelector('#search-box');
  const over = box && getComputedStyle(box).position === 'sticky' ? box.getBoundingClientRect().height : 0;
  const top = status.getBoundingClientRect().top + window.scrollY - over - 8;
  if (Math.abs(window.scrollY - top) > 40) window.scrollTo({top: top, behavior: 'instant'});
  return [];
}"""

def filter_control(clause: Clause) -> gr.components.Component:
    """A clause's control in the filter row: a choice for a fixed set of values, else a text box."""
    elem_id = f"search-{clause.key}"
    if clause.choices:
        return gr.Dropdown([("any", ""), *[(c, c) for c in clause.choices]], value="", label=clause.label,
                           min_width=110, elem_id=elem_id)
    return gr.Textbox("", label=clause.label, placeholder=clause.placeholder, max_lines=1, min_width=110,
                      elem_id=elem_id)


def _with_hidden(shown: ResultsView, response: SearchResponse) -> ResultsView:
    """The status line says how many results the cut-off hid (the "Show them" button reveals them)."""
    if response.hidden:
        shown.status += (f" · {response.hidden} more below relevance {response.min_relevance:.2f} hidden")
    return shown


def _filter_note(shown: ResultsView, response: SearchResponse, clauses: tuple[str, ...]) -> ResultsView:
    """A filter that lets no image through is named as the reason, not the words; images asked for by
    file name are shown whatever their relevance, and the status says so (search/searcher.py `named`)."""
    typed = [f"{c.label.lower()} “{md(str(v).strip())}”" for c, v in zip(CLAUSES, clauses) if str(v or "").strip()]
    if response.passing == 0:
        return ResultsView.message(f"No image matches the filters ({', '.join(typed)}), whatever the words. "
                                   "Change or clear a filter.")
    if response.results and response.passing is not None and response.min_relevance == 0.0 and any(
            c.key == "name" and str(v or "").strip() for c, v in zip(CLAUSES, clauses)):
        shown.status += " · asked for by file name: shown whatever their relevance"
    return shown


def _more(response: SearchResponse | None, k: float, page: SearchResponse | None = None) -> tuple:
    """(kept response, "Show more" row, "Show hidden" row): more is offered after a full page."""
    last = page or response
    full = last is not None and len(last.results) >= int(k)
    hidden = last is not None and last.hidden > 0
    return response, gr.update(visible=full), gr.update(visible=hidden)


def build_search_tabs(engine: SearchEngine, busy: Busy, tabs: gr.Tabs, page: PageLoad, access: Access) -> None:
    """Both tabs are built together: picking a search result opens "Find similar" with it.

    A search lives in the page URL (`?q=...&k=...&alpha=...`): opening or reloading such a link runs it.
    """
    s = engine.settings
    top = min(50, s.max_k)

    def search(request: gr.Request, query: str, k: float, alpha: float, min_rel: float = s.min_relevance,
               sort: str = "relevance", *clauses: str):
        """One page of results; the response is kept so that "Show more" can append the next one, and
        the collection's version it was drawn at, so that coming back after a write draws it again.
        `clauses`: the filter row's values, one per clause of search/filters.py, in their order."""
        drawn = engine.changes
        visitor = access.who(request).visitor
        try:
            f = SearchFilter.parse(*clauses) if any(clauses) else None  # nothing typed: no filter
            response = engine.search(query, k=k, alpha=alpha, min_relevance=min_rel, sort=sort, filter=f,
                                     visitor=visitor)
        except VisualSearchError as exc:
            response = None
            shown = ResultsView.message(failure(exc))
        else:
            shown = _with_hidden(view(response, engine.count(visitor), busy(), "for", engine.thumbnail), response)
            shown = _filter_note(shown, response, clauses)
        return (*shown.outputs(), "", gr.update(visible=False), *_more(response, k), drawn)

    def redraw(request: gr.Request, drawn: int | None, *controls):
        """Back on the Search tab: results drawn before a write (an upload, an edit, a delete) are
        searched again, so no tile of a deleted image and no stale count stays on the page."""
        if drawn is None or drawn == engine.changes:
            return (gr.update(),) * len(search_out)
        out = list(search(request, *controls))
        out[2] += " · ↻ searched again: the collection changed"
        return tuple(out)

    def rerun(request: gr.Request, drawn_at: int | None, *controls):
        """A slider, Sort or Shape moved after a search: the search again with it, as a person expects
        of a control beside the results. Before the first search, or with the box emptied, nothing
        happens (no error for a control touched first)."""
        if drawn_at is None or not str(controls[0] or "").strip():
            return (gr.update(),) * len(search_out)
        return search(request, *controls)

    def show_more(request: gr.Request, shown: SearchResponse | None, query: str, k: float, alpha: float,
                  min_rel: float, sort: str, *clauses: str):
        """The next page appended: the query's vectors come from the encoders' cache, not the models."""
        if shown is None:
            return search(request, query, k, alpha, min_rel, sort, *clauses)
        drawn = engine.changes
        visitor = access.who(request).visitor
        try:
            nxt = engine.search(shown.query, k=k, alpha=alpha, min_relevance=min_rel, sort=sort,
                                filter=SearchFilter.parse(*clauses), offset=len(shown.results), visitor=visitor)
        except VisualSearchError as exc:
            return (*ResultsView.message(failure(exc)).outputs(), "", gr.update(visible=False), *_more(None, k),
                    drawn)
        both = SearchResponse(shown.query, shown.results + nxt.results, nxt.elapsed_ms, nxt.alpha, 0, nxt.hidden,
                              nxt.min_relevance)
        return (*_with_hidden(view(both, engine.count(visitor), busy(), "for", engine.thumbnail), both).outputs(), "",
                gr.update(visible=False), *_more(both, k, nxt), drawn)

    def _similar(image: str | bytes, k: float, words: str, visitor: str | None,
                 filename: str = "query image") -> SearchResponse:
        """Images like this one, or, with words, like this one refined by them (text + image in CLIP space)."""
        if (words or "").strip():
            return engine.search(words, k=k, like=image, visitor=visitor)
        return engine.similar(image, k=k, filename=filename, visitor=visitor)

    def from_link(request: gr.Request):
        """A page opened with `?q=...`: fill the controls from the link and run its search."""
        params = link_params(request.query_params, top, s.default_alpha, s.min_relevance)
        if params is None:
            return (gr.update(),) * (len(controls) + len(search_out))
        query, k, alpha, cut, sort, clauses = params
        return query, k, alpha, cut, sort, *clauses, *search(request, query, k, alpha, cut, sort, *clauses)

    def search_results(query: str, k: int = 8, alpha: float = s.default_alpha,
                       min_relevance: float = s.min_relevance, sort: str = "relevance", offset: int = 0,
                       clauses: dict | None = None, request: gr.Request = None) -> list[dict]:
        """Ranked results as data, for programs: id, filename, caption, relevance, caption_score,
        visual_score, added_at, image_url (the stored original, served by this app). Takes what the
        page takes: the cut-off, the sort, an offset (the next page) and each filter clause by its key."""
        try:
            visitor = access.who(request).visitor
            f = SearchFilter.parse(**(clauses or {}))
            response = engine.search(query, k=k, alpha=alpha, min_relevance=min_relevance, sort=sort, offset=offset,
                                     filter=f if f.active else None, visitor=visitor)
            return result_rows(response.results, request)
        except VisualSearchError as exc:
            raise gr.Error(str(exc)) from None  # the client gets the message, not a bare "error"

    def similar_to_upload(path: str | None, k: float, words: str = "", request: gr.Request = None):
        """Images like an uploaded one. The results remember what they were drawn from (see redraw_similar)."""
        if not path:
            hint = "Upload an image, or pick a search result, to find images like it."
            return *ResultsView.message(hint).outputs(), None
        drawn = {"version": engine.changes, "id": None, "path": path}
        visitor = access.who(request).visitor
        try:
            data, name = read_upload(path, s.max_file_bytes)
            response = _similar(data, k, words, visitor, name)
            shown = _with_hidden(view(response, engine.count(visitor), busy(), "like", engine.thumbnail), response)
            return *shown.outputs(), drawn
        except VisualSearchError as exc:
            return *ResultsView.message(failure(exc)).outputs(), drawn

    def similar_to_indexed(image_id: str | None, k: float, words: str = "", request: gr.Request = None):
        """Images like an indexed one; its original is shown as the query image (or cleared if it was deleted)."""
        if not image_id:
            return *ResultsView.message("Pick a result first.").outputs(), None, gr.update()
        drawn = {"version": engine.changes, "id": image_id, "path": None}
        visitor = access.who(request).visitor
        try:
            record = engine.get(access.image_id(image_id), visitor)
            response = _similar(record.id, k, words, visitor)
            shown = _with_hidden(view(response, engine.count(visitor), busy(), "like", engine.thumbnail), response)
            return *shown.outputs(), drawn, record.path
        except NotFound as exc:
            return *ResultsView.message(gone(image_id, exc)).outputs(), None, None
        except VisualSearchError as exc:
            return *ResultsView.message(failure(exc)).outputs(), drawn, gr.update()

    def redraw_similar(k: float, words: str, drawn: dict | None, request: gr.Request = None):
        """Back on the Find similar tab after a write: the same query again, for the same visitor (or: its
        image was deleted). The query image box is no input here: after a delete it names a file gradio
        refuses to read."""
        if not drawn or drawn.get("version") == engine.changes:
            return (gr.update(),) * (len(similar_out) + 1)
        if drawn.get("id"):
            return similar_to_indexed(drawn["id"], k, words, request)
        return *similar_to_upload(drawn.get("path"), k, words, request), gr.update()

    def pick(ids: list[str], evt: gr.SelectData):
        """A tile was selected: offer "find similar" for it, and its tags as filters."""
        try:
            record = selected_record(engine, ids, evt)
        except VisualSearchError as exc:
            return "", gr.update(visible=False), gone(ids[evt.index], exc), gr.update(choices=[], value=None)
        if record is None:
            return "", gr.update(visible=False), "", gr.update(choices=[], value=None)
        return (record.id, gr.update(visible=True), f"Selected: **{md(record.filename)}** — {md(record.caption)}",
                gr.update(choices=list(record.tags), value=None, visible=bool(record.tags)))

    def pick_similar(ids: list[str], evt: gr.SelectData):
        return pick(ids, evt)[:3]

    with gr.Tab("Search", id="search") as search_tab:
        with gr.Row(equal_height=True, elem_id="search-box"):
            query = gr.Textbox(label="Describe what you want to see", placeholder="e.g. a cat on a sofa  (Enter)",
                               scale=5, autofocus=True, max_lines=1, elem_id="query")
            go = gr.Button("Search", variant="primary", scale=1, min_width=100)
        with gr.Row():
            k = k_slider(8, top)
            alpha = alpha_slider(s.default_alpha)
        with gr.Row(equal_height=True, elem_id="search-filters"):
            min_rel = gr.Slider(0.0, 1.0, value=s.min_relevance, step=0.05, label="Minimum relevance", min_width=160,
                                info="results below it are hidden")
            sort = gr.Radio([(SORT_LABELS.get(v, v), v) for v in SORTS], value="relevance", label="Sort",
                            min_width=160)
            filters = {c.key: filter_control(c) for c in CLAUSES}  # one control per clause (search/filters.py)
        examples = gr.Examples(EXAMPLES, inputs=[query], label="Try one of these", examples_per_page=len(EXAMPLES))
        status, gallery = results_gallery("Results", "search")
        with gr.Row(visible=False) as hidden_row:
            reveal = gr.Button("Show the hidden results", variant="secondary", size="sm", scale=0, min_width=220)
        with gr.Row(visible=False) as more_row:
            more = gr.Button("Show more", variant="secondary", scale=0, min_width=160, elem_id="search-more")
        ids = gr.State([])
        preview_originals(engine, gallery, ids)
        kept = gr.State(None)  # the response shown, for "Show more"
        drawn = gr.State(None)  # the collection's version (engine.changes) the results were drawn at
        picked = gr.Textbox(visible=False)  # id of the selected tile (a component, so API clients can set it)
        with gr.Row(visible=False, equal_height=True) as pick_row:
            picked_md = gr.Markdown()
            picked_tags = gr.Radio([], label="Its tags: pick one to filter by it", scale=0, min_width=200)
            like = gr.Button("Find similar images", variant="secondary", scale=0, min_width=240)
        table = results_details("search")
        gr.api(with_clause_params(search_results), api_name="search_results")

    with gr.Tab("Find similar", id="similar") as similar_tab:
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                image = uploaded_image(s.max_file_bytes, s.images_dir, label="Query image", height=260,
                                       sources=["upload", "clipboard"], elem_id="similar-image")
                k2 = k_slider(8, top)
                words = gr.Textbox("", label="Refine with words", placeholder="e.g. at night", max_lines=1,
                                   elem_id="similar-words", info="like this image, but ...")
                find = gr.Button("Find similar", variant="primary")
            with gr.Column(scale=3):
                s_status, s_gallery = results_gallery("Similar images", "similar")
                s_ids = gr.State([])
                preview_originals(engine, s_gallery, s_ids)
                s_drawn = gr.State(None)  # {"version", "id" of the indexed query image, "path" of an uploaded one}
                s_picked = gr.Textbox(visible=False)
                with gr.Row(visible=False, equal_height=True) as s_pick_row:
                    s_picked_md = gr.Markdown()
                    s_like = gr.Button("Find images like this one", variant="secondary", scale=0, min_width=240)
                s_table = results_details("similar")

    search_in = [query, k, alpha, min_rel, sort, *filters.values()]
    search_out = [gallery, table, status, ids, picked, pick_row, kept, more_row, hidden_row, drawn]
    controls = [query, k, alpha, min_rel, sort, *filters.values()]  # what a link keeps (links.SHOW_IN_URL)
    for started in (go.click(search, search_in, search_out, api_name="search"),
                    query.submit(search, search_in, search_out, api_visibility="private"),
                    examples.load_input_event.then(search, search_in, search_out, api_visibility="private"),
                    *(filters[c.key].submit(search, search_in, search_out, api_visibility="private")
                      for c in CLAUSES if not c.choices)):  # Enter in a typed filter searches, as in the box
        started.then(None, controls, None, js=SHOW_IN_URL).then(None, None, None, js=SHOW_RESULTS)
    choices = [filters[c.key] for c in CLAUSES if c.choices]  # a pick, like Sort (typed filters: Enter or Search)
    for moved in [*(c.release for c in (k, alpha, min_rel)), *(c.input for c in (sort, *choices))]:
        moved(rerun, [drawn, *search_in], search_out, api_visibility="private").then(None, controls, None,
                                                                                     js=SHOW_IN_URL)
    page.load(from_link, None, controls + search_out, api_visibility="private").then(
        None, None, None, js=SHOW_RESULTS)
    more.click(show_more, [kept, *search_in], search_out, api_name="show_more")
    reveal.click(lambda: 0.0, None, min_rel, api_visibility="private").then(
        search, search_in, search_out, api_visibility="private")
    gallery.select(pick, [ids], [picked, pick_row, picked_md, picked_tags], api_visibility="private")
    picked_tags.input(lambda t: t or "", picked_tags, filters["tag"], api_visibility="private").then(
        search, search_in, search_out, api_visibility="private")

    search_tab.select(redraw, [drawn, *search_in], search_out, api_visibility="private")

    similar_out = [s_gallery, s_table, s_status, s_ids, s_drawn]
    find.click(similar_to_upload, [image, k2, words], similar_out, api_name="similar")
    image.upload(similar_to_upload, [image, k2, words], similar_out, api_visibility="private")
    s_gallery.select(pick_similar, [s_ids], [s_picked, s_pick_row, s_picked_md], api_visibility="private")
    s_like.click(similar_to_indexed, [s_picked, k2, words], similar_out + [image], api_name="similar_by_id")
    words.submit(similar_to_upload, [image, k2, words], similar_out, api_visibility="private")
    similar_tab.select(redraw_similar, [k2, words, s_drawn], similar_out + [image], api_visibility="private")
    like.click(lambda: gr.Tabs(selected="similar"), None, tabs, api_visibility="private").then(
        similar_to_indexed, [picked, k2, words], similar_out + [image], api_visibility="private"
    )

"""Pieces the app's tabs share: safe text for Markdown, error display, and one way to show results.

Everything a user typed or a model wrote (queries, captions, file names) reaches the page as text:
gallery captions and table cells are text components, and Markdown gets it escaped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import gradio as gr
import pandas as pd

from ..errors import NotFound, VisualSearchError
from ..library.intake import display_name, read_file
from ..records import ImageRecord, SearchResponse, SearchResult

if TYPE_CHECKING:
    from ..engine import SearchEngine

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>:])")
RESULT_COLUMNS = ["rank", "relevance", "caption score", "visual score", "word score", "caption", "why it matched",
                  "file", "tags", "added (UTC)"]
# The "why it matched" column is markdown: the words found are bold.
TILE_TEXT = 60  # characters of the text in the picture a tile shows (the Library shows it all)
RESULT_TYPES = ["number", "number", "number", "number", "number", "str", "markdown", "str", "str", "str"]
Busy = Callable[[], str | None]  # says why the collection may look incomplete (e.g. first-start indexing)


def md(text: object) -> str:
    """User or model text made inert for Markdown: no HTML, no links, no formatting."""
    return md_piece(" ".join(str(text).split()))


def md_piece(text: str) -> str:
    """`md` for a piece of a line: its spaces kept as they are."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def code(text: object) -> str:
    """Operator-given names (model ids, paths) as a code span: shown literally, nothing rendered."""
    return "`" + " ".join(str(text).replace("`", "'").split()) + "`"


DELETED = "That image was deleted from the collection."


def failure(exc: VisualSearchError) -> str:
    """A library error for the status line next to what the user did (never a traceback). No toast:
    toasts of every tab piled up over each other, and each said what its status line already said."""
    return f"⚠️ {md(exc)}"


def gone(image_id: str | None, exc: VisualSearchError) -> str:
    """An id the page itself got from a tile is a full id: when it is not found, it was deleted."""
    if isinstance(exc, NotFound) and len((image_id or "").strip()) == 64:
        return f"⚠️ {DELETED}"
    return failure(exc)


def results_table(results: Sequence[SearchResult] = ()) -> pd.DataFrame:
    rows = [
        [rank, round(r.relevance, 2), round(r.caption_score, 2), round(r.visual_score, 2), round(r.word_score, 2),
         r.record.caption, why(r, "**", "**", md_piece), r.record.filename, ", ".join(r.record.tags), r.record.added_at[:16]]
        for rank, r in enumerate(results, 1)
    ]
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def why(result: SearchResult, before: str = "«", after: str = "»", escape=lambda s: s,
        fields: Sequence[str] | None = None) -> str:
    """Which words matched where: `file name: «black cat» at night.jpg · text in picture: «BAKERY»`
    (only `fields` when given)."""
    return " · ".join(m.marked(before, after, escape=escape) for m in result.matched
                      if fields is None or m.field in fields)


def tile_label(result: SearchResult) -> str:
    """`0.87 | a cat laying on a couch  #cat — file name: «black cat» at night.jpg`: the caption is on
    every tile already, so only words matched elsewhere are added."""
    r = result
    elsewhere = why(r, fields=[m.field for m in r.matched if m.field != "caption"])
    text = " ".join(r.record.ocr_text.split())
    if text and not any(m.field == "text" for m in r.matched):  # the words in the picture, matched or not
        elsewhere = " · ".join(x for x in (elsewhere, f"text in picture: {text[:TILE_TEXT]}"
                                                      f"{'…' * (len(text) > TILE_TEXT)}") if x)
    return f"{r.relevance:.2f} | {r.record.caption}{tag_line(r.record.tags)}" + (f" — {elsewhere}" if elsewhere else "")


def read_upload(path: str, max_bytes: int) -> tuple[bytes, str]:
    """A file gradio received: its bytes (size-checked) and the name the browser sent, cleaned for display."""
    return read_file(Path(path), max_bytes), display_name(Path(path).name)


def selected_record(engine: "SearchEngine", ids: list[str], evt: gr.SelectData) -> ImageRecord | None:
    """The record behind a selected tile; None when the selection is not a tile of `ids`."""
    index = evt.index if isinstance(evt.index, int) else -1
    return engine.get(ids[index]) if 0 <= index < len(ids) else None


@dataclass
class ResultsView:
    """What a results block shows: tiles, table, status line, and the ids behind the tiles."""

    gallery: list[tuple[str, str]]
    table: pd.DataFrame
    status: str
    ids: list[str]

    def outputs(self) -> tuple:
        return self.gallery, self.table, self.status, self.ids

    @classmethod
    def message(cls, status: str) -> "ResultsView":
        return cls([], results_table(), status, [])


def view(response: SearchResponse, count: int, busy: str | None, what: str,
         tile: Callable[[ImageRecord], object] = lambda record: record.path) -> ResultsView:
    """Tiles `0.87 | a cat laying on a couch`, the details table and the status line, or an empty state.

    `what` is "for" (a text query) or "like" (an image query); `tile` gives the picture shown for a
    record (the app passes `engine.thumbnail`: light tiles, the original only in the preview). What scores below the minimum relevance
    never reaches here: the engine leaves it out and counts it (`response.hidden`).
    """
    if count == 0:
        return ResultsView.message(
            f"⏳ {md(busy)}: results appear as images are indexed." if busy
            else "The index is empty: add images in the **Add images** tab."
        )
    results = response.results  # the engine left out what is below the minimum relevance
    if response.missing_phrases:
        quoted = " and ".join(f"“{md(p)}”" for p in response.missing_phrases)
        return ResultsView.message(f"No image holds {quoted} as written: a quoted phrase must appear in the "
                                   "picture's text, file name, caption, tags or details. Leave out the quotes "
                                   "to search by meaning.")
    if not results:
        hint = ("Try other words, or move the caption ⟷ visual weight." if what == "for"
                else "Nothing in the collection looks much like it.")
        return ResultsView.message(f"Nothing relevant {what} “{md(response.query)}” among {count:,} images. {hint}")
    tiles = [(str(tile(r.record)), tile_label(r)) for r in results]
    n = len(tiles)
    status = (f"**{n} result{'s' * (n != 1)}** {what} “{md(response.query)}” · {response.elapsed_ms:.0f} ms · "
              f"{count:,} images searched")
    if busy:
        status += f" · ⏳ {md(busy)}"
    return ResultsView(tiles, results_table(results), status, [r.record.id for r in results])


def tag_line(tags: Sequence[str]) -> str:
    """Tags under a tile's caption: `  #cat #sofa` (empty when there are none)."""
    return ("  " + " ".join(f"#{t}" for t in tags)) if tags else ""


def results_gallery(label: str, name: str) -> tuple[gr.Markdown, gr.Gallery]:
    """Status line and result tiles (elem_ids `{name}-status`, `{name}-gallery`)."""
    status = gr.Markdown(elem_id=f"{name}-status")
    # No download buttons: they would save the 384 px thumbnails a gallery holds, not the originals
    # (the preview shows the original, which the browser saves as it saves any picture)
    gallery = gr.Gallery(label=label, columns=4, height="auto", object_fit="cover", allow_preview=True,
                         interactive=False, elem_id=f"{name}-gallery", elem_classes=["tiles"],
                         buttons=["fullscreen"])
    return status, gallery


# Runs in the browser once the server has said which original a selected tile shows: the gallery's
# preview swaps the tile's thumbnail for the stored original, fetched now and shown once it has
# loaded (a format the browser cannot show, such as HEIC, keeps the thumbnail). The URL is the
# thumbnail's own with the original's path, so it goes wherever gradio's file route is (a Space's
# proxy included). Nothing happens when the preview has moved on to another tile meanwhile.
SHOW_ORIGINAL = """(path) => {
  const id = (path || '').split('/').pop().split('.')[0];
  const shown = () => document.querySelector('#%s img[data-testid="detailed-image"]');
  const img = shown();
  const route = '/gradio_api/file=';
  if (!id || !img || !img.src.includes(id) || !img.src.includes(route)) return [];
  const url = img.src.slice(0, img.src.indexOf(route) + route.length)
    + path.split('/').map(encodeURIComponent).join('/');
  const original = new Image();
  original.onload = () => { const now = shown(); if (now && now.src.includes(id)) now.src = url; };
  original.src = url;
  return [];
}"""


def preview_originals(engine: "SearchEngine", gallery: gr.Gallery, ids: gr.State) -> None:
    """The gallery's preview shows the selected tile's stored original: grids download thumbnails
    only, a preview downloads the one original it shows (and a deleted one answers 404, as ever)."""
    original = gr.Textbox(visible=False)

    def original_of(tile_ids: list[str], evt: gr.SelectData) -> str:
        try:
            record = selected_record(engine, tile_ids, evt)
        except VisualSearchError:
            return ""
        return record.path if record is not None else ""

    gallery.select(original_of, [ids], original, api_visibility="private", show_progress="hidden").then(
        None, original, None, js=SHOW_ORIGINAL % gallery.elem_id, api_visibility="private")


def results_details(name: str) -> gr.Dataframe:
    """The details table, folded away: rank, relevance, both channel scores, caption, file."""
    with gr.Accordion("Details: scores of each result", open=False):
        return gr.Dataframe(value=results_table(), interactive=False, wrap=True, datatype=RESULT_TYPES,
                            elem_id=f"{name}-table")


def k_slider(value: int = 8, maximum: int = 50) -> gr.Slider:
    return gr.Slider(1, maximum, value=value, step=1, label="Number of results (top-k)")


def alpha_slider(value: float) -> gr.Slider:
    return gr.Slider(
        0.0, 1.0, value=value, step=0.05, label="caption ⟷ visual weight",
        info="1 = captions only (the four-stage pipeline); 0 = CLIP picture match only",
    )

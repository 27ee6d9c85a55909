"""The "Add images" and "Library" tabs: grow the collection, browse it, correct captions, delete.

Uploaded files reach the engine as (display name, gradio's temp file): the name a browser sent is
shown, never used as a path. The engine reads each file in turn and checks its size and content
(intake.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import gradio as gr
import pandas as pd

from ..engine import SearchEngine
from ..errors import VisualSearchError
from ..intake import ACCEPTED_FORMATS, display_name
from ..records import ImageRecord
from .common import Busy, failure, md, selected_record, tag_line
from .visitors import Access
from ..visibility import check_may_change

OUTCOME_COLUMNS = ["file", "outcome", "caption or reason"]
LIBRARY_COLUMNS = ["file", "caption", "edited", "added (UTC)", "id", "tags"]
LIBRARY_TILES = 500  # most recent images shown as tiles; the table lists them all
NOTHING_PICKED = "Select an image to correct its caption or delete it."


def matching(records: list[ImageRecord], find: str | None) -> list[ImageRecord]:
    """The records whose file name or caption contains every word of `find` (any case)."""
    words = (find or "").casefold().split()
    return [r for r in records if all(w in f"{r.filename} {r.caption}".casefold() for w in words)]


def build_collection_tabs(engine: SearchEngine, busy: Busy, header: Callable[..., str], header_md: gr.Markdown,
                          access: Access) -> None:
    s = engine.settings

    def add_images(files: list[str] | None, request: gr.Request, profile: gr.OAuthProfile | None,
                   progress=gr.Progress()):
        """Index uploads one by one, with progress; one outcome row per file. A public-demo visitor's
        uploads are theirs alone; a curator's join the shared collection."""
        if not files:
            return pd.DataFrame([], columns=OUTCOME_COLUMNS), "Choose image files to add.", header(request)
        who = access.who(request, profile)
        if busy():
            progress(0, desc="waiting for the sample images to finish indexing")
        try:
            report = engine.index_files(
                [(display_name(Path(path).name), path) for path in files],
                progress=lambda done, total, label: progress((done, total), desc=f"indexing {label}"),
                visitor=None if who.admin else who.visitor,
            )
        except VisualSearchError as exc:
            return pd.DataFrame([], columns=OUTCOME_COLUMNS), failure(exc), header(request)
        rows = ([[a.path, "indexed", a.caption] for a in report.added]
                + [[d.path, "duplicate: already indexed", _caption_of(d.id)] for d in report.duplicates]
                + [[f.path, "rejected", f.error] for f in report.failed])
        status = (f"**{len(report.added)} indexed**, {len(report.duplicates)} duplicate"
                  f"{'s' * (len(report.duplicates) != 1)}, {len(report.failed)} rejected · "
                  f"{report.count:,} images in the collection")
        if report.added:
            status += " · new images are searchable now"
        return pd.DataFrame(rows, columns=OUTCOME_COLUMNS), status, header(request)

    def _caption_of(image_id: str) -> str:
        try:
            return engine.get(image_id).caption
        except VisualSearchError:
            return ""

    def library(find: str = "", request: gr.Request = None):
        """Tiles (newest first), the full table, and the ids behind the tiles; only the images whose
        file name or caption contains `find`, when given."""
        everything = engine.list(access.who(request).visitor)[::-1]
        records = matching(everything, find)
        tiles = [(str(engine.thumbnail(r)), r.caption + tag_line(r.tags)) for r in records[:LIBRARY_TILES]]
        table = pd.DataFrame([[r.filename, r.caption, "yes" if r.caption_edited else "", r.added_at[:16], r.id,
                               ", ".join(r.tags)] for r in records], columns=LIBRARY_COLUMNS)
        note = f"**{len(everything):,} images**"
        if (find or "").strip():
            note += f" · {len(records):,} with “{md(find.strip())}” in the name or caption"
        if len(records) > LIBRARY_TILES:
            note += f" (the {LIBRARY_TILES} newest shown as tiles)"
        return tiles, table, note, [r.id for r in records[:LIBRARY_TILES]]

    def pick(ids: list[str], evt: gr.SelectData):
        try:
            record = selected_record(engine, ids, evt)
        except VisualSearchError as exc:
            return "", "", failure(exc), ""
        if record is None:
            return "", "", "", ""
        return (record.id, record.caption, f"**{md(record.filename)}** · {record.width} x {record.height} px",
                ", ".join(record.tags))

    def set_caption(image_id: str, text: str, find: str = "", request: gr.Request = None,
                    profile: gr.OAuthProfile | None = None):
        if not (image_id or "").strip():
            return "Select an image first.", *library(find, request)
        who = access.who(request, profile)
        try:
            record = engine.set_caption(image_id, text, visitor=who.visitor, admin=who.admin)
            status = f"Caption saved for **{md(record.filename)}**: searchable by its new words now."
        except VisualSearchError as exc:
            status = failure(exc)
        return status, *library(find, request)

    def set_tags(image_id: str, text: str, find: str = "", request: gr.Request = None,
                 profile: gr.OAuthProfile | None = None):
        """Tags typed as `cat, sofa`: they replace the image's tags and are kept through model changes."""
        if not (image_id or "").strip():
            return "Select an image first.", *library(find, request)
        who = access.who(request, profile)
        try:
            record = engine.set_tags(image_id, (text or "").split(","), visitor=who.visitor, admin=who.admin)
            status = f"Tags saved for **{md(record.filename)}**: {md(', '.join(record.tags) or 'none')}."
        except VisualSearchError as exc:
            status = failure(exc)
        return status, *library(find, request)

    def ask_delete(image_id: str, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """The first click only asks: which image, and that it cannot be undone (and refuses at once what
        this person may not delete: nothing to confirm)."""
        who = access.who(request, profile)
        try:
            record = engine.get(image_id, who.visitor) if (image_id or "").strip() else None
            if record is not None:
                check_may_change(record, who.visitor, who.admin)
        except VisualSearchError as exc:
            return failure(exc), gr.update(visible=False), ""
        if record is None:
            return "Select an image first.", gr.update(visible=False), ""
        return "", gr.update(visible=True), (f"Delete **{md(record.filename)}** for good? Its stored original, "
                                             "caption and vectors are removed; this cannot be undone.")

    def delete(image_id: str, find: str = "", request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        if not (image_id or "").strip():
            return ("Select an image first.", "", "", gr.update(), gr.update(visible=False), *library(find, request),
                    header(request))
        who = access.who(request, profile)
        try:
            record = engine.remove(image_id, visitor=who.visitor, admin=who.admin)
            status = f"Deleted **{md(record.filename)}**."
        except VisualSearchError as exc:
            status = failure(exc)
        return (status, "", "", NOTHING_PICKED, gr.update(visible=False), *library(find, request), header(request))

    with gr.Tab("Add images", id="add"):
        gr.Markdown(f"Add {ACCEPTED_FORMATS} files (up to {s.max_file_mb:g} MB each). Each one is "
                    "captioned and embedded, then searchable at once; the same picture is never indexed twice.")
        with gr.Group(elem_id="add-images"):
            files = gr.File(label="Images to add", file_count="multiple", height=160)
        add_status = gr.Markdown()
        outcome = gr.Dataframe(value=pd.DataFrame([], columns=OUTCOME_COLUMNS), label="What happened to each file",
                               elem_id="add-outcome",
                               interactive=False, wrap=True)

    with gr.Tab("Library", id="library") as library_tab:
        with gr.Row(equal_height=True):
            lib_note = gr.Markdown()
            find = gr.Textbox("", label="Find by file name or caption", placeholder="e.g. dog, IMG_2041  (Enter)",
                              max_lines=1, elem_id="library-find")
        with gr.Row():
            with gr.Column(scale=3):
                tiles = gr.Gallery(label="Every indexed image (select one to edit it)", columns=5, height=520,
                                   object_fit="cover", allow_preview=False, interactive=False,
                                   elem_id="library-gallery")
            with gr.Column(scale=2, min_width=260):
                picked_md = gr.Markdown(NOTHING_PICKED)
                # The selected image's id: not shown, but a component, so API clients name the image with it
                # (its id, or an id prefix of 8+ characters as the table and the CLI show).
                image_id = gr.Textbox(label="image", visible=False)
                caption = gr.Textbox(label="Caption", lines=3, max_length=500, elem_id="library-caption")
                tags = gr.Textbox(label="Tags (comma-separated)", max_lines=1, elem_id="library-tags")
                with gr.Row():
                    save = gr.Button("Save caption", variant="primary")
                    save_tags = gr.Button("Save tags", variant="secondary")
                    remove = gr.Button("Delete image…", variant="stop")
                with gr.Group(visible=False, elem_id="library-confirm") as confirm:
                    confirm_md = gr.Markdown()
                    with gr.Row():
                        yes = gr.Button("Yes, delete it", variant="stop", elem_id="library-delete")
                        no = gr.Button("Keep it", variant="secondary")
                lib_status = gr.Markdown()
        with gr.Accordion("All images as a table", open=False):
            table = gr.Dataframe(value=pd.DataFrame([], columns=LIBRARY_COLUMNS), interactive=False, wrap=True)
        ids = gr.State([])

    lib_out = [tiles, table, lib_note, ids]
    files.upload(add_images, [files], [outcome, add_status, header_md], api_name="add_images")
    library_tab.select(library, [find], lib_out, api_name="library")
    find.submit(library, [find], lib_out, api_visibility="private")
    tiles.select(pick, [ids], [image_id, caption, picked_md, tags], api_visibility="private").then(
        lambda: gr.update(visible=False), None, confirm, api_visibility="private")
    save_tags.click(set_tags, [image_id, tags], [lib_status, *lib_out], api_name="set_tags")
    save.click(set_caption, [image_id, caption, find], [lib_status, *lib_out], api_name="set_caption")
    remove.click(ask_delete, [image_id], [lib_status, confirm, confirm_md], api_visibility="private")
    no.click(lambda: gr.update(visible=False), None, confirm, api_visibility="private")
    yes.click(delete, [image_id, find], [lib_status, image_id, caption, picked_md, confirm, *lib_out, header_md],
              api_name="delete")

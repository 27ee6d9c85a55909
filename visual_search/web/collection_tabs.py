"""The "Add images" and "Library" tabs: grow the collection, browse it, correct captions, delete.

Uploaded files reach the engine as (display name, gradio's temp file): the name a browser sent is
shown, never used as a path. The engine reads each file in turn and checks its size and content
(library/intake.py).
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Callable, Sequence

import gradio as gr
import pandas as pd

from ..engine import SearchEngine
from ..errors import VisualSearchError
from ..library.intake import ACCEPTED_FORMATS, display_name
from ..library.metadata import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS
from ..stages.ocr import MAX_OCR_CHARS
from ..records import ImageRecord
from ..demo.visibility import check_may_change
from .common import Busy, failure, gone, md, selected_record, tag_line
from .uploads import UploadJob, UploadJobs
from .visitors import Access, PageLoad

OUTCOME_COLUMNS = ["file", "outcome", "caption or reason"]
LIBRARY_COLUMNS = ["file", "caption", "edited", "added (UTC)", "id", "tags", "text in picture", "taken", "place",
                   "camera"]
LIBRARY_TILES = 500  # most recent images shown as tiles; the table lists them all
NOTHING_PICKED = "Select an image to correct its caption, tags or text, or delete it."
# Runs in the browser after a tile is selected: the editor comes into view when it is not (on a phone
# it sits below the whole grid; beside the grid it is sticky and stays in view).
SHOW_EDITOR = """() => {
  const editor = document.querySelector('#library-editor');
  const r = editor ? editor.getBoundingClientRect() : null;
  if (r && (r.top < 0 || r.top > window.innerHeight - 120)) editor.scrollIntoView({block: 'start'});
  return [];
}"""


def details(record: ImageRecord) -> str:
    """What the file says about itself (library/metadata.py), as read: one line each, only what it says."""
    lines = [(label, value) for label, value in (
        ("Taken", record.taken_at.replace("T", " ")), ("Place", record.place), ("Camera", record.camera),
        ("Title", record.title), ("Description", record.description), ("Keywords", ", ".join(record.keywords)),
        ("Left out", "; ".join(record.metadata_notes))) if value]
    return "".join(f"  \n{label}: {md(value)}" for label, value in lines)


def visible_tags(text: str | None) -> list[str]:
    """Tags as typed (`cat, sofa`), without control or format characters (a right-to-left override
    would make a tag read as another on every page that shows it)."""
    return ["".join(ch for ch in tag if unicodedata.category(ch)[0] != "C") for tag in (text or "").split(",")]


def matching(records: list[ImageRecord], find: str | None) -> list[ImageRecord]:
    """The records whose file name or caption contains every word of `find` (any case)."""
    words = (find or "").casefold().split()
    return [r for r in records if all(w in f"{r.filename} {r.caption}".casefold() for w in words)]


def job_rows(jobs: Sequence[UploadJob]) -> pd.DataFrame:
    """One outcome row per file handled so far, newest upload first."""
    return pd.DataFrame([list(row) for job in reversed(jobs) for row in job.rows], columns=OUTCOME_COLUMNS)


def job_status(jobs: Sequence[UploadJob]) -> str:
    """The uploads' state in words: progress while one runs, the tally when all are done."""
    if not jobs:
        return ""
    added, dups, failed, left = (sum(getattr(j, n) for j in jobs) for n in ("added", "duplicates", "failed", "not_added"))
    count = max(jobs, key=lambda j: (j.done, j.count)).count
    running = [j for j in jobs if j.running]
    if running:
        done, total = sum(j.done for j in jobs), sum(j.total for j in jobs)
        now = next((j.current for j in running if j.current), "")
        text = f"⏳ **Indexing {done:,} of {total:,} files**" + (f" · {md(now)}" if now else "")
        return text + f" · {added:,} indexed so far · it goes on if you leave or reload the page."
    text = (f"**{added} indexed**, {dups} duplicate{'s' * (dups != 1)}, {failed} rejected"
            + (f", {left} not added" if left else "") + f" · {count:,} images in the collection")
    if added:
        text += " · new images are searchable now"
    errors = [j.error for j in jobs if j.error]
    return text + "".join(f" · ⚠️ {md(e)}" for e in errors)


def build_collection_tabs(engine: SearchEngine, busy: Busy, header: Callable[..., str], header_md: gr.Markdown,
                          page: PageLoad, uploads: UploadJobs, mine: gr.BrowserState, access: Access,
                          signed_in: Sequence = ()) -> None:
    """`signed_in`: the curator sign-in's events (visitors.build_access), after which the editor is rechecked."""
    s = engine.settings

    def owner(request: gr.Request | None, profile: gr.OAuthProfile | None) -> str | None:
        """Whose the uploads are: a public-demo visitor's own, or (a curator's, or local use) shared."""
        who = access.who(request, profile)
        return None if who.admin else who.visitor

    def add_images(files: list[str] | None, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """Index every given file and answer when all are done (the API's way; the page's is send_new)."""
        if not files:
            return pd.DataFrame([], columns=OUTCOME_COLUMNS), "Choose image files to add.", header(request)
        job = uploads.wait(uploads.start(_named(files), owner(request, profile), _viewer(request, profile)).id)
        return job_rows([job]), job_status([job]), header(request)

    def send_new(files: list[str] | None, in_box: list[str], mine: list[str], request: gr.Request = None,
                 profile: gr.OAuthProfile | None = None):
        """Files added to the box: only those not sent before go to a new job, which runs on its own.
        The page keeps the job's id (in the browser, so a reload finds it) and polls its progress."""
        files = list(files or [])
        new = [f for f in files if f not in set(in_box or [])]
        if not new:
            return *show_jobs(mine, request)[:3], files, mine, gr.update()
        running = [i for i in (mine or []) if (j := uploads.get(i)) is not None and j.running]
        mine = [*running, uploads.start(_named(new), owner(request, profile), _viewer(request, profile)).id]
        return *show_jobs(mine, request)[:3], files, mine, gr.Timer(active=True)

    def show_jobs(mine: list[str] | None, request: gr.Request = None):
        """The page's uploads as the registry knows them; the poll stops once none runs."""
        jobs = [j for j in (uploads.get(i) for i in (mine or [])) if j is not None]
        if not jobs:
            return gr.update(), gr.update(), header(request), gr.Timer(active=False)
        return job_rows(jobs), job_status(jobs), header(request), gr.Timer(active=any(j.running for j in jobs))

    def _viewer(request: gr.Request | None, profile: gr.OAuthProfile | None) -> str | None:
        """Whose view the job's counts and captions are told in: a curator's as a visitor's, never another's uploads."""
        return access.who(request, profile).visitor

    def _named(files: list[str]) -> list[tuple[str, str]]:
        return [(display_name(Path(path).name), path) for path in files]

    def library(find: str = "", request: gr.Request = None):
        """Tiles (newest first), the full table, and the ids behind the tiles; only the images whose
        file name or caption contains `find`, when given."""
        everything = engine.list(access.who(request).visitor)[::-1]  # a public demo's visitor: their own marked
        records = matching(everything, find)
        visitor = access.who(request).visitor
        tiles = [(str(engine.thumbnail(r)), ("★ yours · " if visitor and r.owner == visitor else "") + r.caption
                  + tag_line(r.tags)) for r in records[:LIBRARY_TILES]]
        table = pd.DataFrame([[r.filename, r.caption, "yes" if r.caption_edited else "", r.added_at[:16], r.id,
                               ", ".join(r.tags), r.ocr_text, r.taken_at[:16], r.place, r.camera] for r in records],
                             columns=LIBRARY_COLUMNS)
        note = f"**{len(everything):,} images**"
        if (find or "").strip():
            note += f" · {len(records):,} with “{md(find.strip())}” in the name or caption"
        if len(records) > LIBRARY_TILES:
            note += f" (the {LIBRARY_TILES} newest shown as tiles)"
        return tiles, table, note, [r.id for r in records[:LIBRARY_TILES]]

    def pick(ids: list[str], evt: gr.SelectData, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """A tile selected: its caption, tags and text in the editor, which is read-only (boxes and
        buttons off, and why) for an image this person may not change: a public demo's shared images."""
        try:
            record = selected_record(engine, ids, evt)
        except VisualSearchError as exc:
            gone_note = gone(ids[evt.index] if isinstance(evt.index, int) else "", exc)
            return "", "", gone_note, "", "", "", "", *_editable(True)
        if record is None:
            return "", "", "", "", "", "", "", *_editable(True)
        may = _may_change(record, request, profile)
        return (record.id, gr.update(value=record.caption, interactive=may), _about(record, may),
                *(gr.update(value=v, interactive=may) for v in (", ".join(record.tags), record.ocr_text,
                                                                  record.title, record.description)),
                *_editable(may))

    def _may_change(record: ImageRecord, request: gr.Request | None, profile: gr.OAuthProfile | None) -> bool:
        who = access.who(request, profile)
        try:
            check_may_change(record, who.visitor, who.admin)
        except VisualSearchError:
            return False
        return True

    def _about(record: ImageRecord, may: bool) -> str:
        about = f"**{md(record.filename)}** · {record.width} x {record.height} px"
        return (about if may else f"{about} · 🔒 {access.read_only_note()}") + details(record)

    def recheck(image_id: str, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """After a curator sign-in: the selected image's editor turns on where it now may."""
        try:
            record = engine.get(access.image_id(image_id), access.who(request).visitor) if image_id else None
        except VisualSearchError:
            record = None
        if record is None:
            return (gr.update(),) * 10
        may = _may_change(record, request, profile)
        return (*(gr.update(interactive=may) for _ in range(5)), _about(record, may), *_editable(may))

    def _editable(may: bool) -> tuple:
        """Save caption, Save tags, Save text & details, Delete: on only where a save would be allowed."""
        return (gr.update(interactive=may),) * 4

    def set_caption(image_id: str, text: str, find: str = "", request: gr.Request = None,
                    profile: gr.OAuthProfile | None = None):
        if not (image_id or "").strip():
            return "Select an image first.", *library(find, request)
        who = access.who(request, profile)
        try:
            record = engine.set_caption(access.image_id(image_id), text, visitor=who.visitor, admin=who.admin)
            status = f"Caption saved for **{md(record.filename)}**: searchable by its new words now."
        except VisualSearchError as exc:
            status = failure(exc)
        return status, *kept(image_id, find, request)

    def kept(image_id: str, find: str, request: gr.Request | None) -> tuple:
        """The Library after a save: the same Find filter, and the saved image still the selected tile
        (a redraw keeps gradio's selected index, which would point at whatever tile now has it)."""
        tile_list, table, note, tile_ids = library(find, request)
        full = [i for i in tile_ids if i == image_id or (len(image_id) >= 8 and i.startswith(image_id))]
        at = tile_ids.index(full[0]) if full else None
        return gr.Gallery(value=tile_list, selected_index=at), table, note, tile_ids

    def set_tags(image_id: str, text: str, find: str = "", request: gr.Request = None,
                 profile: gr.OAuthProfile | None = None):
        """Tags typed as `cat, sofa`: they replace the image's tags and are kept through model changes."""
        if not (image_id or "").strip():
            return "Select an image first.", *library(find, request), gr.update()
        who = access.who(request, profile)
        try:
            record = engine.set_tags(access.image_id(image_id), visible_tags(text), visitor=who.visitor,
                                     admin=who.admin)
            status = f"Tags saved for **{md(record.filename)}**: {md(', '.join(record.tags) or 'none')}."
            saved = ", ".join(record.tags)  # as stored (lower case, no duplicates): the box says so
        except VisualSearchError as exc:
            status, saved = failure(exc), gr.update()
        return status, *kept(image_id, find, request), saved

    def set_text(image_id: str, text: str, title: str = "", description: str = "", find: str = "",
                 request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """The words printed in the picture, the title and the description, as a person corrects them:
        kept through OCR model changes and when the file is read again."""
        if not (image_id or "").strip():
            return "Select an image first.", *library(find, request), *(gr.update(),) * 3
        who = access.who(request, profile)
        try:
            key = access.image_id(image_id)
            engine.set_details(key, title=title or "", description=description or "", visitor=who.visitor,
                               admin=who.admin)
            record = engine.set_ocr_text(key, text or "", visitor=who.visitor, admin=who.admin)
            status = (f"Text and details saved for **{md(record.filename)}**: searchable by their words now.")
            saved = (record.ocr_text, record.title, record.description)
        except VisualSearchError as exc:
            status, saved = failure(exc), (gr.update(),) * 3
        return status, *kept(image_id, find, request), *saved

    def still_there(image_id: str, request: gr.Request = None):
        """Back on the tab: a selection whose image was deleted meanwhile is dropped, and says why."""
        if not (image_id or "").strip():
            return (gr.update(),) * 8
        try:
            engine.get(access.image_id(image_id), access.who(request).visitor)
        except VisualSearchError as exc:
            return "", "", f"{gone(image_id, exc)} {NOTHING_PICKED}", "", "", "", "", gr.update(visible=False)
        return (gr.update(),) * 8

    def ask_delete(image_id: str, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """The first click only asks: which image, and that it cannot be undone (and refuses at once what
        this person may not delete: nothing to confirm)."""
        who = access.who(request, profile)
        try:
            record = engine.get(access.image_id(image_id), who.visitor) if (image_id or "").strip() else None
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
            return ("Select an image first.", "", "", gr.update(), "", "", "", gr.update(visible=False),
                    *library(find, request), header(request))
        who = access.who(request, profile)
        try:
            record = engine.remove(access.image_id(image_id), visitor=who.visitor, admin=who.admin)
            status = f"Deleted **{md(record.filename)}**."
        except VisualSearchError as exc:
            status = failure(exc)
        return (status, "", "", NOTHING_PICKED, "", "", "", gr.update(visible=False), *library(find, request),
                header(request))

    with gr.Tab("Add images", id="add"):
        gr.Markdown(f"Add {ACCEPTED_FORMATS} files (up to {s.max_file_mb:g} MB each). Each one is "
                    "captioned and embedded, then searchable at once; the same picture is never indexed twice.")
        with gr.Group(elem_id="add-images"):
            files = gr.File(label="Images to add", file_count="multiple", height=160)
        add_status = gr.Markdown(elem_id="add-status")
        send_all = gr.Button(visible=False)  # the API's /add_images: every file given, answered when done
        in_box = gr.State([])  # the files of the box already sent
        poll = gr.Timer(1.0, active=False)
        outcome = gr.Dataframe(value=pd.DataFrame([], columns=OUTCOME_COLUMNS), label="What happened to each file",
                               elem_id="add-outcome", interactive=False, wrap=True,
                               column_widths=["28%", "24%", "48%"])  # sized to the box: a long reason wraps

    with gr.Tab("Library", id="library") as library_tab:
        with gr.Row(equal_height=True):
            lib_note = gr.Markdown()
            find = gr.Textbox("", label="Find by file name or caption", placeholder="e.g. dog, IMG_2041  (Enter)",
                              max_lines=1, elem_id="library-find")
        with gr.Row():
            with gr.Column(scale=3):
                tiles = gr.Gallery(label="Every indexed image (select one to edit it)", columns=5, height="auto",
                                   object_fit="cover", allow_preview=False, interactive=False,
                                   elem_id="library-gallery", buttons=["fullscreen"])
            with gr.Column(scale=2, min_width=260, elem_id="library-editor"):
                picked_md = gr.Markdown(NOTHING_PICKED)
                # The selected image's id: not shown, but a component, so API clients name the image with it
                # (its id, or an id prefix of 8+ characters as the table and the CLI show).
                image_id = gr.Textbox(label="image", visible=False)
                caption = gr.Textbox(label="Caption", lines=3, max_length=500, elem_id="library-caption")
                tags = gr.Textbox(label="Tags (comma-separated)", max_lines=1, elem_id="library-tags")
                text = gr.Textbox(label="Text in the picture (read by OCR; correct it here)", lines=2,
                                  max_length=MAX_OCR_CHARS, elem_id="library-text")
                with gr.Row():
                    title = gr.Textbox(label="Title", max_lines=1, max_length=MAX_TITLE_CHARS,
                                       elem_id="library-title")
                    description = gr.Textbox(label="Description", lines=1, max_length=MAX_DESCRIPTION_CHARS,
                                             elem_id="library-description")
                with gr.Row():
                    save = gr.Button("Save caption", variant="primary")
                    save_tags = gr.Button("Save tags", variant="secondary")
                    save_text = gr.Button("Save text & details", variant="secondary")
                    remove = gr.Button("Delete image…", variant="stop")
                with gr.Group(visible=False, elem_id="library-confirm") as confirm:
                    confirm_md = gr.Markdown()
                    with gr.Row():
                        yes = gr.Button("Yes, delete it", variant="stop", elem_id="library-delete")
                        no = gr.Button("Keep it", variant="secondary")
                lib_status = gr.Markdown(elem_id="library-status")
        with gr.Accordion("All images as a table", open=False):
            table = gr.Dataframe(value=pd.DataFrame([], columns=LIBRARY_COLUMNS), interactive=False, wrap=True)
        ids = gr.State([])

    lib_out = [tiles, table, lib_note, ids]
    send_all.click(add_images, [files], [outcome, add_status, header_md], api_name="add_images")
    files.upload(send_new, [files, in_box, mine], [outcome, add_status, header_md, in_box, mine, poll],
                 api_visibility="private")
    files.delete(lambda f: list(f or []), files, in_box, api_visibility="private")
    files.clear(lambda: [], None, in_box, api_visibility="private")
    jobs_out = [outcome, add_status, header_md, poll]
    poll.tick(show_jobs, mine, jobs_out, api_visibility="private", show_progress="hidden")
    page.load(show_jobs, mine, jobs_out, api_visibility="private", show_progress="hidden")
    library_tab.select(library, [find], lib_out, api_name="library").then(
        still_there, image_id, [image_id, caption, picked_md, tags, text, title, description, confirm],
        api_visibility="private")
    find.submit(library, [find], lib_out, api_visibility="private")
    tiles.select(pick, [ids], [image_id, caption, picked_md, tags, text, title, description, save, save_tags,
                               save_text, remove],
                 api_visibility="private").then(
        lambda: gr.update(visible=False), None, confirm, api_visibility="private").then(
        None, None, None, js=SHOW_EDITOR, api_visibility="private")
    save_tags.click(set_tags, [image_id, tags, find], [lib_status, *lib_out, tags], api_name="set_tags")
    save.click(set_caption, [image_id, caption, find], [lib_status, *lib_out], api_name="set_caption")
    save_text.click(set_text, [image_id, text, title, description, find],
                    [lib_status, *lib_out, text, title, description], api_name="set_text")
    for event in signed_in:
        event.then(recheck, image_id, [caption, tags, text, title, description, picked_md, save, save_tags,
                                       save_text, remove],
                   api_visibility="private")
    remove.click(ask_delete, [image_id], [lib_status, confirm, confirm_md], api_visibility="private")
    no.click(lambda: gr.update(visible=False), None, confirm, api_visibility="private")
    yes.click(delete, [image_id, find], [lib_status, image_id, caption, picked_md, text, title, description, confirm,
                                         *lib_out, header_md],
              api_name="delete")

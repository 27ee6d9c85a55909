"""The "How it works" tab, for workshops: the four stages run one at a time, with their numbers
and pictures. All computing is in explain.py; this module lays it out."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from .. import explain
from ..stages import rank
from ..engine import SearchEngine
from ..errors import VisualSearchError
from .inputs import uploaded_image
from .common import alpha_slider, code, failure, md, read_upload
from .visitors import Access

INTRO = """
**Four stages** turn a pile of pictures into something you can search by describing it:

1. **Understanding images** (`stages/caption.py`): a captioning model (BLIP) writes a sentence for each picture.
2. **Storing understanding** (`stages/embed.py`, `stages/store.py`): the sentence becomes a vector, a list of numbers
   that stands for its meaning, kept in a vector database (Chroma).
3. **Facilitating search** (`stages/query.py`): your query goes through the *same* text model, so it becomes a vector
   of the same kind.
4. **Generating results** (`stages/rank.py`): the vectors closest to the query's (cosine similarity) are turned
   into a relevance between 0 and 1 and ranked. A second channel compares the query with the pictures
   themselves (CLIP); the caption ⟷ visual weight mixes the two.

Beside the meaning, a **word channel** (`stages/words.py`) finds the query's words among the words each picture
carries: the text printed in it (read by OCR, `stages/ocr.py`), its file name, what its owner typed (title,
description, keywords), its tags, place and camera. A photo of a sign reading “BAKERY” is found by *bakery* though
its caption never says so; a "quoted phrase" must appear as written.
"""
BROWSER_SHOWS = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp"}  # originals an <img> displays as they are
MAP_SIZE = (1000, 560)
MAP_LABELS = 8  # captions labelled on the map: those nearest the query
BLUE, ORANGE, GREY = (76, 120, 168), (235, 110, 20), (120, 120, 120)
BREAKDOWN_COLUMNS = ["rank", "relevance", "caption cosine", "caption relevance", "visual cosine",
                     "visual relevance", "file", "caption", "word relevance", "words matched"]

def _vector_frame(values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"component": np.arange(len(values)), "value": values.astype(float)})


def _axis_to_last(frame):
    """The chart's axis ends at the vector's last component (0..383, not a rounded 0..400). A second,
    private step: the API's answer stays the plain data."""
    # gradio hands the plot's value back as PlotData or its dict ({"columns", "data", ...}): the rows are "data"
    rows = frame.get("data") if isinstance(frame, dict) else getattr(frame, "data", frame)
    n = len(rows) if rows is not None else 0
    return gr.update(x_lim=[0, n - 1]) if n > 1 else gr.update()

def _vector_md(title: str, v: explain.VectorSummary) -> str:
    first = ", ".join(f"{x:+.3f}" for x in v.first)
    return (f"{title}: **{v.dim} numbers** from {code(_model_name(v.model))}, length (norm) **{v.norm:.3f}**. "
            f"First values: `[{first}, …]`.")

def _model_name(identity: str) -> str:
    """A model as people know it: a hub id as it is, a local folder by its last part (no server paths)."""
    where = identity.removeprefix("local-dir:")
    return Path(where).name if where.startswith(("/", "~", ".")) or "\\" in where else identity

def _image_choices(engine: SearchEngine, visitor: str | None) -> list[tuple[str, str]]:
    """The picker's entries; a file name held by more than one image gets its id's start beside it,
    so two "cat.jpg" read as two images."""
    records = engine.list(visitor)
    names = Counter(r.filename for r in records)
    return [(f"{r.filename}{f' · {r.id[:8]}' if names[r.filename] > 1 else ''} — {r.caption[:60]}", r.id)
            for r in records]


def _num(x: float, places: int) -> str:
    """A number as the table shows it: always `places` decimals ("0.50", "1.00", "0.734"), never "0.5" or "1"."""
    return f"{x:.{places}f}"

def build_explain_tab(engine: SearchEngine, access: Access) -> None:
    s = engine.settings

    def stages_1_2(upload: str | None, picked: str | None, request: gr.Request):
        """Caption one image (timed), then embed the caption and say where such vectors live."""
        empty = _vector_frame(np.zeros(0))
        visitor = access.who(request).visitor
        try:
            if picked and (not upload or Path(upload).stem == access.image_id(picked)):  # the picked one shown
                step = explain.caption_indexed(engine, access.image_id(picked), visitor)
            elif upload:
                step = explain.caption_image(engine, *read_upload(upload, s.max_file_bytes), visitor=visitor)
            else:
                return "Upload an image or pick one from the collection first.", "", empty
            vector = explain.caption_vector(engine, explain.indexed_caption(step))
            where = explain.storage(engine, visitor)
        except VisualSearchError as exc:
            return failure(exc), "", empty
        stage1 = (f"### Stage 1 · understanding the image\nThe captioner ({code(step.model)}) looked at the "
                  f"{step.width} x {step.height} picture for **{step.seconds:.2f} s** and wrote:\n\n"
                  f"> {md(step.caption)}")
        if step.stored_caption is not None and step.stored_caption != step.caption:
            stage1 += (f"\n\nThe index keeps another caption for it (corrected by a person, or written by "
                       f"an earlier model): “{md(step.stored_caption)}”")
        which = "The caption the index keeps" if step.stored_caption is not None else "The caption"
        place = "on the Chroma server" if s.chroma_url else "in the app's data folder (embedded Chroma)"
        stage2 = (f"### Stage 2 · storing understanding\n{_vector_md(f'{which} becomes a vector', vector)}\n\n"
                  f"Caption vectors are stored in the Chroma collection {code(where.collection)} {place}, "
                  f"which holds **{where.count:,}** of them today. Two captions that mean "
                  "similar things get vectors that point in similar directions.")
        return stage1, stage2, _vector_frame(vector.values)

    def stages_3_4(query: str, k: float, alpha: float, request: gr.Request):
        """Encode the query, then show how each top result's cosines became its relevance."""
        blank = pd.DataFrame([], columns=BREAKDOWN_COLUMNS)
        nothing = ("", _vector_frame(np.zeros(0)), "", blank, _parts_frame([]), draw_map(None, ""), [])
        try:
            step = explain.encode_query(engine, query)
            visitor = access.who(request).visitor
            result = explain.breakdown(engine, query, k=k, alpha=alpha, visitor=visitor)
            cmap = explain.caption_map(engine, step.caption_vector.values, visitor=visitor)
        except VisualSearchError as exc:
            return failure(exc), *nothing[1:]
        took = ("came from the query cache (it was asked recently), computed by the same text model as the "
                "captions" if step.cached else f"went through the same text model as the captions in "
                f"{step.seconds * 1000:.0f} ms")
        stage3 = (f"### Stage 3 · facilitating search\nThe query “{md(step.text)}” {took}. "
                  f"{_vector_md('Query vector', step.caption_vector)}\n\n"
                  f"For the visual channel it also went through CLIP's text tower: {step.visual_vector.dim} numbers.")
        table = pd.DataFrame(
            [[r.rank, _num(r.relevance, 2), _num(r.caption_cosine, 3), _num(r.caption_relevance, 2),
              _num(r.visual_cosine, 3), _num(r.visual_relevance, 2), r.filename, r.caption, _num(r.words, 2),
              r.matched] for r in result.rows],
            columns=BREAKDOWN_COLUMNS,
        )
        # thumbnails (WebP), as every grid shows: a HEIC original is a broken image in a browser
        tiles = [(str(_thumbnail(r, visitor)), f"#{r.rank} · {r.relevance:.2f} | {r.caption}") for r in result.rows]
        return (stage3, _vector_frame(step.caption_vector.values), _stage4_md(result), table,
                _parts_frame(result.rows, result.alpha), draw_map(cmap, step.text), tiles)

    def _thumbnail(row: explain.RelevanceRow, visitor: str | None) -> str:
        try:
            return str(engine.thumbnail(engine.get(row.id, visitor)))
        except VisualSearchError:
            return row.path

    def refresh_choices(request: gr.Request):
        return gr.update(choices=_image_choices(engine, access.who(request).visitor))

    def show_picked(image_id: str | None, request: gr.Request):
        """The picked image appears in the image box: stages 1-2 then run on exactly what is shown. Only
        an image this visitor may see, named by its full id in a public demo."""
        if not image_id:
            return gr.update()
        try:
            record = engine.get(access.image_id(image_id), access.who(request).visitor)
            # a format a browser cannot show (HEIC, TIFF...) is shown by its thumbnail; stage 1 still
            # reads the stored original
            return record.path if Path(record.path).suffix.lower() in BROWSER_SHOWS else str(engine.thumbnail(record))
        except VisualSearchError as exc:
            failure(exc)
            return gr.update()

    with gr.Tab("How it works", id="how") as tab:
        gr.Markdown(INTRO)
        gr.Markdown("## Stages 1–2: indexing one image")
        with gr.Row():
            upload = uploaded_image(s.max_file_bytes, s.images_dir, s.thumbs_dir, label="Upload an image", height=220,
                                    elem_id="explain-image",
                                    sources=["upload", "clipboard"])
            with gr.Column():
                picked = gr.Dropdown(label="…or pick an indexed image", choices=[], value=None, allow_custom_value=True,
                                     info="refreshed each time this tab opens")
                run12 = gr.Button("Run stages 1 and 2", variant="primary")
        with gr.Row():
            stage1 = gr.Markdown()
            stage2 = gr.Markdown()
        caption_plot = gr.LinePlot(x="component", y="value", label="The caption's vector, component by component")
        gr.Markdown("## Stages 3–4: answering a query")
        with gr.Row(equal_height=True):
            query = gr.Textbox(label="Query", placeholder="e.g. a dog at the door", scale=3, max_lines=1,
                               elem_id="explain-query")
            k = gr.Slider(1, 10, value=5, step=1, label="Top results to explain")
            alpha = alpha_slider(s.default_alpha)
        run34 = gr.Button("Run stages 3 and 4", variant="primary")
        stage3 = gr.Markdown(elem_id="stage3")
        query_plot = gr.LinePlot(x="component", y="value", label="The query's vector, component by component")
        stage4 = gr.Markdown()
        ranked = gr.Gallery(label="The results explained, best first", columns=5, height="auto",
                            object_fit="cover", allow_preview=False, interactive=False,
                            elem_id="explain-gallery", elem_classes=["tiles"], buttons=["fullscreen"])
        breakdown = gr.Dataframe(value=pd.DataFrame([], columns=BREAKDOWN_COLUMNS), interactive=False, wrap=True,
                                 elem_id="explain-table",
                                 column_widths=["5%", "9%", "8%", "9%", "8%", "9%", "10%", "17%", "9%", "16%"])
        parts = gr.BarPlot(x="result", y="share of relevance", color="channel", sort=None,
                           color_map={"caption": "#4c78a8", "visual": "#f58518", "words": "#54a24b"},
                           label="Where each relevance comes from (blue: the caption part, orange: the visual "
                                 "part, green: what the word channel added)")
        gr.Markdown("**The collection on a map.** Each dot is one caption vector, squeezed from hundreds of numbers "
                    "to two (PCA, the two directions along which the captions differ most): nearby dots are "
                    "captions that mean similar things. The query lands among them, joined to the captions "
                    "nearest to it (with their cosine).")
        cmap = gr.Image(type="pil", label="Caption vectors on a map (PCA)", interactive=False, format="png",
                        elem_id="caption-map")

    tab.select(refresh_choices, None, picked, api_visibility="private")
    run12.click(stages_1_2, [upload, picked], [stage1, stage2, caption_plot], api_name="explain_image").then(
        _axis_to_last, caption_plot, caption_plot, api_visibility="private")
    picked.input(show_picked, picked, upload, api_visibility="private")
    outputs = [stage3, query_plot, stage4, breakdown, parts, cmap, ranked]
    for event in (run34.click(stages_3_4, [query, k, alpha], outputs, api_name="explain_query"),
                  query.submit(stages_3_4, [query, k, alpha], outputs, api_visibility="private")):
        event.then(_axis_to_last, query_plot, query_plot, api_visibility="private")

def _stage4_md(result: explain.Breakdown) -> str:
    cap, vis, a = result.caption_calibration, result.visual_calibration, result.alpha
    text = ("### Stage 4 · generating results\nEach stored vector is compared with the query's by **cosine "
            "similarity** (1 = same direction). A cosine becomes a **relevance** from 0 to 1 by a calibration: "
            f"at or below its *floor* it counts as 0, at or above its *ceiling* as 1 (`stages/rank.py`). Captions: "
            f"floor {cap.floor:.2f}, ceiling {cap.ceiling:.2f}, set for the query's length in words (a short "
            f"query scores lower against a whole caption, matching or not). Pictures (CLIP): floor {vis.floor:.2f}, "
            f"ceiling {vis.ceiling:.2f}.\n\nThe final score is **{a:.2f} × caption relevance + {1 - a:.2f} × visual "
            "relevance**: the *meaning*.\n\nBeside it, a **word channel** looks the query's words up in the words "
            "each image carries: the text printed in it, its file name, title, description, keywords, tags, "
            "place and camera (a full-text index, `stages/words.py`; the caption's words are the caption "
            "channel's, not counted twice). Its relevance, the share "
            "of the query's words found (rarer words count more), joins the meaning as independent evidence: "
            f"**1 − (1 − meaning) × (1 − {rank.WORD_WEIGHT:.2f} × words)**. An image without the words keeps "
            "its meaning's score exactly.")
    if not result.rows:
        return text + "\n\nThe index is empty: nothing to rank yet."
    top = result.rows[0]
    text += (f"\n\nFor the best result, “{md(top.caption)}”: caption "
             f"`{explain.relevance_formula(top.caption_cosine, cap)}`, visual "
             f"`{explain.relevance_formula(top.visual_cosine, vis)}`, so "
             f"{a:.2f} × {top.caption_relevance:.2f} + {1 - a:.2f} × {top.visual_relevance:.2f} = "
             f"**{top.meaning:.2f}**" + (f"; its words ({md(top.matched)}) score {top.words:.2f}, so "
                                          f"`{explain.fusion_formula(top)}`." if top.words else
                                          ", and none of the query's words is among its own: that is its relevance."))
    return text

def _parts_frame(rows: list[explain.RelevanceRow], alpha: float = 0.5) -> pd.DataFrame:
    """Each result's relevance split into its caption and visual parts (a stacked bar each)."""
    data = []
    for r in rows:
        label = f"#{r.rank} {r.filename[:24]}"
        data.append([label, "caption", alpha * r.caption_relevance])
        data.append([label, "visual", (1 - alpha) * r.visual_relevance])
        data.append([label, "words", r.relevance - r.meaning])  # what the word channel added
    return pd.DataFrame(data, columns=["result", "channel", "share of relevance"])

def draw_map(cmap: explain.CaptionMap | None, query: str) -> Image.Image:
    """The caption vectors as dots; the query as an orange diamond, joined to its nearest captions,
    which are labelled with their words and cosine (nearest = highest cosine in the full space)."""
    w, h = MAP_SIZE
    image = Image.new("RGB", MAP_SIZE, "white")
    draw = ImageDraw.Draw(image)
    font, big = ImageFont.load_default(size=13), ImageFont.load_default(size=15)
    if cmap is None or not len(cmap.ids):
        draw.text((w / 2, h / 2), "No caption vectors yet: the collection is empty.", fill=GREY, font=big, anchor="mm")
        return image
    everything = cmap.points if cmap.query is None else np.vstack([cmap.points, cmap.query])
    lo, hi = everything.min(axis=0), everything.max(axis=0)
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    pad = 60

    def at(p: np.ndarray) -> tuple[float, float]:
        x, y = (p - lo) / span
        return pad + x * (w - 2 * pad), h - pad - y * (h - 2 * pad)  # y grows upwards, as on paper

    near = [] if cmap.cosines is None else list(np.argsort(-cmap.cosines)[:MAP_LABELS])
    q = at(cmap.query) if cmap.query is not None else None
    lines = [(q, at(cmap.points[i])) for i in near] if q else []
    for a, b in lines:
        draw.line([a, b], fill=(250, 200, 150), width=2)
    for i, p in enumerate(cmap.points):
        x, y = at(p)
        r = 6 if i in near else 4
        draw.ellipse([x - r, y - r, x + r, y + r], fill=BLUE if i in near else (150, 170, 200))
    placed: list[tuple[float, float, float, float]] = []

    def crossed(box: tuple[float, float, float, float]) -> bool:
        """Whether a query-to-caption line runs through `box` (sampled along each line)."""
        return any(box[0] - 2 <= a[0] + (b[0] - a[0]) * t <= box[2] + 2 and box[1] - 2 <= a[1] + (b[1] - a[1]) * t
                   <= box[3] + 2 for a, b in lines for t in np.linspace(0.05, 1.0, 40))

    def label(x: float, y: float, text: str, fill, f, clear: bool = False) -> None:
        """Text beside its point: right of it, left, above or below, whichever overlaps no other label
        (and, when `clear`, no line); when all do, the nearest free place further down, joined to the point
        by a thin line. A `clear` label that cannot avoid every line gets a white ground."""
        side = -1 if x > w * 0.6 else 1  # the side with room first
        spots = [(12 * side, 0, "lm" if side > 0 else "rm"), (-12 * side, 0, "rm" if side > 0 else "lm"),
                 (0, -14, "ms"), (0, 14, "mt")]
        spots += [(12 * side, 15 * n, "lm" if side > 0 else "rm") for n in range(1, 10)]
        for dx, dy, anchor in spots:
            box = draw.textbbox((x + dx, y + dy), text, font=f, anchor=anchor)
            inside = box[0] >= 0 and box[2] <= w and box[1] >= 0 and box[3] <= h - 28
            if inside and not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                                  for b in placed) and not (clear and crossed(box)):
                break
        placed.append(box)
        if clear:
            draw.rectangle([box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2], fill="white")
        if abs(dy) > 14:
            draw.line([(x, y), (x + dx - 2 * side, y + dy)], fill=(190, 190, 190), width=1)
        draw.text((x + dx, y + dy), text, fill=fill, font=f, anchor=anchor)

    if q:
        draw.polygon([(q[0], q[1] - 10), (q[0] + 10, q[1]), (q[0], q[1] + 10), (q[0] - 10, q[1])], fill=ORANGE)
        label(*q, f"your query: {_short(query)}", ORANGE, big, clear=True)
    for i in near:
        label(*at(cmap.points[i]), f"{cmap.cosines[i]:.2f}  {_short(cmap.captions[i])}", (40, 40, 40), font)
    ex = cmap.explained
    draw.text((12, h - 18), f"across: the direction along which captions differ most ({ex[0]:.0%} of the spread)",
              fill=GREY, font=font, anchor="lm")
    draw.text((w - 12, h - 18), f"up: the next one ({ex[1]:.0%})", fill=GREY, font=font, anchor="rm")
    return image

def _short(text: str, n: int = 42) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"

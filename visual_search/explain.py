"""The four stages, one step at a time, for people learning how the search works (the app's
"How it works" tab). Plain functions that run one stage and return what it produced, with the
numbers a workshop wants to look at: time taken, vector size and norm, cosine -> relevance.

Nothing here changes the index; every number comes from the same code the engine uses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .stages import rank, words
from .library.intake import load_image
from .stages.query import clean_text
from .stages.store import CAPTION
from .demo.visibility import where_for
from .library.edits import held

if TYPE_CHECKING:
    from .engine import SearchEngine

FIRST_VALUES = 8  # how many leading vector components a summary shows
MAP_LIMIT = 2000  # most caption vectors projected on the 2-D map (the most recent are kept)


@dataclass(frozen=True)
class CaptionStep:
    """Stage 1: what the captioner said about one image, and how long it took."""

    caption: str
    seconds: float
    model: str
    width: int
    height: int
    stored_caption: str | None = None  # the caption in the index, when the image is indexed


@dataclass(frozen=True)
class VectorSummary:
    """A vector described for people: its size, its length and its first values."""

    values: np.ndarray  # the whole vector (float32)
    dim: int
    norm: float
    first: tuple[float, ...]
    model: str = ""


@dataclass(frozen=True)
class Storage:
    """Stage 2: where caption vectors live."""

    collection: str
    where: str  # the data dir (embedded Chroma) or the server URL
    count: int


@dataclass(frozen=True)
class QueryStep:
    """Stage 3: the query, cleaned, and its vector on both channels."""

    text: str
    caption_vector: VectorSummary  # through the caption text encoder
    visual_vector: VectorSummary  # through CLIP's text tower
    seconds: float
    cached: bool = False  # the vectors came from the query cache: `seconds` timed no model


@dataclass(frozen=True)
class RelevanceRow:
    """Stage 4 for one result: cosine -> relevance on each channel, then the hybrid sum."""

    rank: int
    id: str
    filename: str
    caption: str
    caption_cosine: float
    caption_relevance: float
    visual_cosine: float
    visual_relevance: float
    relevance: float  # fuse(meaning, words): stages/rank.py
    path: str = ""  # the stored original, for a thumbnail
    words: float = 0.0  # the word channel's relevance (stages/words.py)
    matched: str = ""  # which words matched where, e.g. "file name: «black cat» at night.jpg"
    alpha: float = 1.0

    @property
    def meaning(self) -> float:
        """alpha * caption_relevance + (1 - alpha) * visual_relevance: the relevance before the words."""
        return float(rank.hybrid(self.caption_relevance, self.visual_relevance, self.alpha))


@dataclass(frozen=True)
class Breakdown:
    rows: list[RelevanceRow]
    alpha: float
    caption_calibration: rank.Calibration
    visual_calibration: rank.Calibration
    elapsed_ms: float


@dataclass(frozen=True)
class CaptionMap:
    """Caption vectors projected on their two main directions (PCA), with the query among them."""

    ids: list[str]
    captions: list[str]
    points: np.ndarray  # (n, 2)
    query: np.ndarray | None  # (2,) or None
    explained: tuple[float, float]  # share of the variance each axis keeps
    cosines: np.ndarray | None = None  # (n,) cosine of each caption vector with the query (full dimension)


def summarize(vector: np.ndarray, model: str = "", n_first: int = FIRST_VALUES) -> VectorSummary:
    v = np.asarray(vector, dtype=np.float32).ravel()
    return VectorSummary(v, int(v.size), float(np.linalg.norm(v)), tuple(float(x) for x in v[:n_first]), model)


def caption_image(engine: "SearchEngine", data: bytes, filename: str = "image",
                  visitor: str | None = None) -> CaptionStep:
    """Stage 1 on uploaded bytes: checked like any upload, captioned, timed. Nothing is stored."""
    s = engine.settings
    image = load_image(data, filename, s.max_file_bytes, s.max_pixels)
    if not engine.models.loaded("captioner"):
        engine.captioner  # noqa: B018 - loaded before the clock starts: the step, not the model load, is timed
    t0 = time.perf_counter()
    caption = engine.compute.caption([image.image])[0]  # on ZeroGPU: in a GPU worker, hand-over included
    seconds = time.perf_counter() - t0
    stored = held(engine.catalog, image.id, visitor)  # another visitor's copy: never shown
    return CaptionStep(caption, seconds, engine.models.caption_model, image.width, image.height,
                       stored.caption if stored else None)


def caption_indexed(engine: "SearchEngine", image_id: str, visitor: str | None = None) -> CaptionStep:
    """Stage 1 again on an indexed image's stored original (its stored caption is shown beside)."""
    record = engine.get(image_id, visitor)
    return caption_image(engine, Path(record.path).read_bytes(), record.filename, visitor)


def caption_vector(engine: "SearchEngine", caption: str) -> VectorSummary:
    """Stage 2: the caption through the text encoder, the vector the index stores for it."""
    return summarize(engine.queries.caption(caption), engine.models.text_identity)


def indexed_caption(step: CaptionStep) -> str:
    """The caption stage 2 embeds: the one the index keeps (maybe corrected by a person), else the new one."""
    return step.stored_caption if step.stored_caption is not None else step.caption


def storage(engine: "SearchEngine", visitor: str | None = None) -> Storage:
    store = engine.store
    return Storage(store.names[CAPTION], store.where, engine.count(visitor))


def encode_query(engine: "SearchEngine", query: str) -> QueryStep:
    """Stage 3: the query cleaned as search() cleans it, through the same encoders."""
    text = clean_text(query, engine.settings.max_query_chars)
    queries = engine.queries
    cached = queries.is_cached(text)
    t0 = time.perf_counter()
    caption_vec, visual_vec = queries.encode(text)
    seconds = time.perf_counter() - t0
    return QueryStep(text, summarize(caption_vec, engine.models.text_identity),
                     summarize(visual_vec, engine.models.visual_identity), seconds, cached)


def breakdown(engine: "SearchEngine", query: str, k: int = 5, alpha: float | None = None,
              visitor: str | None = None) -> Breakdown:
    """Stage 4: the engine's own search, with each result's cosines and relevances side by side."""
    response = engine.search(query, k=k, alpha=alpha, min_relevance=0.0, visitor=visitor)  # explains all k
    rows = [
        RelevanceRow(n, r.record.id, r.record.filename, r.record.caption, r.caption_cosine, r.caption_score,
                     r.visual_cosine, r.visual_score, r.relevance, r.record.path, r.word_score,
                     " · ".join(m.marked("«", "»") for m in r.matched if words.WEIGHTS[m.field] > 0),
                     response.alpha)
        for n, r in enumerate(response.results, 1)
    ]
    calibration = engine.queries.calibration_for(response.query)  # the one the search used: by query length
    return Breakdown(rows, response.alpha, calibration, rank.CLIP_TEXT_IMAGE, response.elapsed_ms)


def relevance_formula(cosine: float, calibration: rank.Calibration) -> str:
    """The calibration written out for one cosine, e.g. `clamp((0.52 - 0.10) / (0.80 - 0.10), 0, 1) = 0.60`
    (clamp: below 0 counts as 0, above 1 as 1)."""
    value = float(rank.relevance(cosine, calibration))
    return (f"clamp(({cosine:.2f} - {calibration.floor:.2f}) / ({calibration.ceiling:.2f} - "
            f"{calibration.floor:.2f}), 0, 1) = {value:.2f}")


def fusion_formula(row: RelevanceRow) -> str:
    """The word channel's share written out for one result, e.g.
    `1 - (1 - 0.12) × (1 - 0.85 × 1.00) = 0.87`."""
    return (f"1 - (1 - {row.meaning:.2f}) × (1 - {rank.WORD_WEIGHT:.2f} × {row.words:.2f}) = "
            f"{float(rank.fuse(row.meaning, row.words)):.2f}")


def pca_2d(
    vectors: np.ndarray, extra: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, tuple[float, float]]:
    """Project rows on their two main directions (SVD of the centred matrix); `extra` goes the same way.

    Signs are fixed (largest loading positive) so the same data always draws the same picture.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        return np.zeros((0, 2)), None if extra is None else np.zeros(2), (0.0, 0.0)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    axes = np.zeros((2, x.shape[1]))
    axes[: min(2, len(vt))] = vt[:2]
    for row in axes:
        if row[np.argmax(np.abs(row))] < 0:
            row *= -1
    var = s**2
    total = float(var.sum()) or 1.0
    explained = tuple(float(var[i] / total) if i < len(var) else 0.0 for i in range(2))
    points = (x - mean) @ axes.T
    projected = None if extra is None else (np.asarray(extra, np.float64).ravel() - mean) @ axes.T
    return points, projected, explained  # type: ignore[return-value]


def caption_map(engine: "SearchEngine", query_vector: np.ndarray | None = None, limit: int = MAP_LIMIT,
                visitor: str | None = None) -> CaptionMap:
    """Every caption vector `visitor` may see (up to `limit`) on a 2-D map, the query placed among them."""
    store = engine.store
    ids = sorted(store.ids(CAPTION, where_for(visitor)))
    records = store.records(ids)
    ids = sorted(ids, key=lambda i: records.get(i, {}).get("added_at", ""))[-limit:]
    vectors = store.embeddings(CAPTION, ids)
    ids = [i for i in ids if i in vectors]
    matrix = np.stack([vectors[i] for i in ids]) if ids else np.zeros((0, 0))
    points, query, explained = pca_2d(matrix, query_vector)
    cosines = None if query_vector is None or not ids else rank.cosine(query_vector, matrix)
    return CaptionMap(ids, [records.get(i, {}).get("caption", "") for i in ids], points, query, explained, cosines)

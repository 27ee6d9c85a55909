"""Stage 4 - generating results: cosine similarity -> relevance in [0, 1], and the hybrid score.

Relevance is a linear rescaling of cosine similarity between two calibration points, clipped:

    relevance = clip((cosine - floor) / (ceiling - floor), 0, 1)

`floor` is the cosine at or below which a pair is "not relevant" (0.00); `ceiling` the cosine at or
above which it is "as relevant as can be" (1.00). Each kind of comparison has its own pair, because
cosines of different models and modalities live in different bands: MiniLM caption-vs-query cosines
spread over [0, 1], while CLIP text-vs-image cosines of a matching pair rarely pass 0.35.
`python -m visual_search evaluate` prints the values a labelled data set suggests.

A query of an image plus words (`search "at night" --like IMAGE`) is one CLIP vector, the sum of
the two unit vectors, normalised:  q = (v_image + v_text) / |v_image + v_text|. Then
cos(q, x) = (cos(v_image, x) + cos(v_text, x)) / |v_image + v_text|, so its calibration follows
from the two it combines (`combine()`): floor = (floor_ii + floor_ti) / n, ceiling = (ceiling_ii +
ceiling_ti) / n with n = |v_image + v_text|. The caption channel scores the words alone.

The hybrid score is `alpha * caption_relevance + (1 - alpha) * visual_relevance`; alpha = 1 is the
pure four-stage (caption) pipeline, alpha = 0 pure CLIP. Both terms are in [0, 1], so is the sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Calibration:
    floor: float  # cosine that maps to relevance 0.00
    ceiling: float  # cosine that maps to relevance 1.00

    def __post_init__(self) -> None:
        if not self.ceiling > self.floor:
            raise ValueError("calibration ceiling must be above its floor")


# Sentence-embedding caption vs query (all-MiniLM-L6-v2), set from data:
#   python -m visual_search evaluate sample_images docs/sample_captions.csv --reference-captions
#   (20 images, 40 queries, 760 incorrect pairs; 2026-12-01): incorrect pairs p95 = 0.326 -> floor 0.33,
#   correct pairs p90 = 0.725 (p5 = 0.434, so a correct pair is practically never 0) -> ceiling 0.71
#   as the command suggests. The old guess (0.10 / 0.80) left 63% of unrelated pairs above 0.
CAPTION_TEXT = Calibration(floor=0.33, ceiling=0.71)
# CLIP text tower used as the caption encoder (VS_TEXT_MODEL=clip): CLIP text-text cosines are high
# even for unrelated sentences (~0.5-0.6), so the band starts higher.
CLIP_TEXT_TEXT = Calibration(floor=0.55, ceiling=0.95)
# CLIP text query vs image (ViT-B-32 laion2b): non-matching pairs ~0.05-0.18, good matches 0.28-0.35.
CLIP_TEXT_IMAGE = Calibration(floor=0.15, ceiling=0.33)
# CLIP image vs image: unrelated photos ~0.3-0.5, near duplicates > 0.9, the same image exactly 1.0.
CLIP_IMAGE_IMAGE = Calibration(floor=0.50, ceiling=1.00)


def combine(image_vector: np.ndarray, text_vector: np.ndarray) -> tuple[np.ndarray, Calibration]:
    """The image-plus-words query vector in CLIP space and the calibration its cosines need."""
    a, b = _unit_rows(np.atleast_2d(np.asarray(image_vector, np.float64)))[0], _unit_rows(
        np.atleast_2d(np.asarray(text_vector, np.float64)))[0]
    n = float(np.linalg.norm(a + b)) or 1.0
    cal = Calibration(floor=(CLIP_IMAGE_IMAGE.floor + CLIP_TEXT_IMAGE.floor) / n,
                      ceiling=(CLIP_IMAGE_IMAGE.ceiling + CLIP_TEXT_IMAGE.ceiling) / n)
    return ((a + b) / n).astype(np.float32), cal


def relevance(cosine: np.ndarray | float, calibration: Calibration) -> np.ndarray:
    """Map cosine similarity to relevance in [0, 1] (monotonic, 1.00 at or above the ceiling)."""
    c = np.asarray(cosine, dtype=np.float64)
    return np.clip((c - calibration.floor) / (calibration.ceiling - calibration.floor), 0.0, 1.0)


def hybrid(caption_relevance: np.ndarray, visual_relevance: np.ndarray, alpha: float) -> np.ndarray:
    """alpha * caption + (1 - alpha) * visual; alpha = 1 is the pure caption pipeline."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must be in [0, 1]")
    return alpha * np.asarray(caption_relevance) + (1.0 - alpha) * np.asarray(visual_relevance)


def cosine_matrix(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Cosine of every query row against every vector row, (n_queries, n_vectors); no need to normalise."""
    q = _unit_rows(np.atleast_2d(np.asarray(queries, dtype=np.float64)))
    m = _unit_rows(np.asarray(vectors, dtype=np.float64).reshape(-1, q.shape[1]))
    return np.clip(q @ m.T, -1.0, 1.0)


def cosine(query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Cosine of one query against rows of `vectors`."""
    if len(vectors) == 0:
        return np.zeros(0)
    return cosine_matrix(np.ravel(query), vectors)[0]


def _unit_rows(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return m / norms


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first; ties keep input order (stable)."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    return order[:k]

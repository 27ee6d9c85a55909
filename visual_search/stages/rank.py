"""Stage 4 - generating results: cosine similarity -> relevance in [0, 1], and the hybrid score.

Relevance is a linear rescaling of cosine similarity between two calibration points, clipped:

    relevance = clip((cosine - floor) / (ceiling - floor), 0, 1)

`floor` is the cosine at or below which a pair is "not relevant" (0.00); `ceiling` the cosine at or
above which it is "as relevant as can be" (1.00). Each kind of comparison has its own pair, because
cosines of different models and modalities live in different bands: MiniLM caption-vs-query cosines
spread over [0, 1], while CLIP text-vs-image cosines of a matching pair rarely pass 0.35.
`python -m visual_search evaluate` prints the values a labelled data set suggests.

The caption channel's calibration also depends on the query's length in words (`for_query`). A
short query scores lower against a twelve-word caption than a caption does, matching or not ("a
dog" vs "two brown dogs peeking out of a wooden doorway": 0.32), so the floor set from
caption-vs-caption pairs hid most one- and two-word queries. Short queries have their own
calibrations; between the last of them and LONG_QUERY_WORDS words the floor and ceiling move
linearly to the caption calibration. Figures beside CAPTION_TEXT.

A query of an image plus words (`search "at night" --like IMAGE`) is one CLIP vector, the sum of
the two unit vectors, normalised:  q = (v_image + v_text) / |v_image + v_text|. Then
cos(q, x) = (cos(v_image, x) + cos(v_text, x)) / |v_image + v_text|, so its calibration follows
from the two it combines (`combine()`): floor = (floor_ii + floor_ti) / n, ceiling = (ceiling_ii +
ceiling_ti) / n with n = |v_image + v_text|. The caption channel scores the words alone.

The hybrid score is `alpha * caption_relevance + (1 - alpha) * visual_relevance`; alpha = 1 is the
pure four-stage (caption) pipeline, alpha = 0 pure CLIP. Both terms are in [0, 1], so is the sum.

The word channel (stages/words.py: the words printed in the picture, the file name, the owner's
keywords...) joins the meaning as independent evidence, a noisy OR:

    relevance = 1 - (1 - meaning) * (1 - WORD_WEIGHT * words)

in [0, 1] again, never below the meaning alone (an image that carries none of the words keeps its
score exactly: semantic queries rank as before), and an image carrying every word of the query in a
field of weight 1 scores at least WORD_WEIGHT whatever its caption says. Figures beside WORD_WEIGHT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# From this many words on, a query is calibrated as a caption is (see CAPTION_TEXT).
LONG_QUERY_WORDS = 6


@dataclass(frozen=True)
class Calibration:
    floor: float  # cosine that maps to relevance 0.00
    ceiling: float  # cosine that maps to relevance 1.00
    # Calibrations of queries of 1, 2, ... words; () = the same for every length.
    short: tuple["Calibration", ...] = ()

    def __post_init__(self) -> None:
        if not self.ceiling > self.floor:
            raise ValueError("calibration ceiling must be above its floor")

    def for_query(self, text: str) -> "Calibration":
        """The calibration of a query of this text's length (words as `clean_text` leaves them)."""
        return self.for_words(len(text.split()))

    def for_words(self, words: int) -> "Calibration":
        """short[words - 1]; past the short ones, a straight line to (floor, ceiling) at LONG_QUERY_WORDS."""
        if not self.short:
            return self
        if words <= len(self.short):
            return self.short[max(words, 1) - 1]
        last, n = self.short[-1], len(self.short)
        t = (words - n) / max(1, LONG_QUERY_WORDS - n)
        if t >= 1:
            return self
        return Calibration(round(last.floor + t * (self.floor - last.floor), 4),
                           round(last.ceiling + t * (self.ceiling - last.ceiling), 4))


# Sentence-embedding caption vs query (all-MiniLM-L6-v2), set from data:
#   python -m visual_search evaluate sample_images docs/sample_captions.csv --reference-captions
#   (20 images, 40 queries, 760 incorrect pairs; 2026-12-01): incorrect pairs p95 = 0.326 -> floor 0.33,
#   correct pairs p90 = 0.725 (p5 = 0.434, so a correct pair is practically never 0) -> ceiling 0.71
#   as the command suggests. The old guess (0.10 / 0.80) left 63% of unrelated pairs above 0.
#
# Short queries, from the labelled query set docs/sample_queries.csv (35 one- to three-word queries
# with their relevant samples, 12 long ones, 8 nonsense; the samples indexed with the first caption
# of docs/sample_captions.csv; 2026-12-04):
#   words  relevant pairs: p10   p50   p90  |  unrelated pairs: p50   p95   p99   nonsense max
#   1                     0.22  0.35  0.60  |                  0.11  0.24  0.34   0.23 (16 more words)
#   2                     0.32  0.56  0.74  |                  0.13  0.31  0.37   0.20
#   6+                    0.62  0.78  0.85  |                  0.12  0.30  0.39
# Matches of a one-word query spread from 0.18 to 0.70 and overlap unrelated pairs; no line through
# them parts the two. So for 1 and 2 words the default cut-off (relevance 0.2, config.py) sits at the
# p95 of unrelated pairs of that length (0.25 and 0.31) instead of 0.2 above it, with the ceiling at
# p90 of relevant pairs: floor = (p95 - 0.2 * ceiling) / 0.8, to two decimals. That shows 84% of the set's relevant
# short pairs instead of 58%, at a cost of about one unrelated image per short query over 20
# (docs/benchmarks.md, "Short queries"); nonsense words stay below. From LONG_QUERY_WORDS words on,
# matches score far above unrelated pairs and the caption calibration keeps its stricter floor.
#   python -m visual_search evaluate sample_images docs/sample_captions.csv --reference-captions \
#       --queries docs/sample_queries.csv
CAPTION_TEXT = Calibration(floor=0.33, ceiling=0.71,
                           short=(Calibration(floor=0.16, ceiling=0.60), Calibration(floor=0.21, ceiling=0.71)))
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


# How much carrying all of a query's words counts: an image whose file name or printed text holds
# every word scores >= WORD_WEIGHT (well above the 0.2 cut-off, and above any meaning below it).
# From the data (python benchmarks/word_channel.py; docs/benchmarks.md, "Words and meaning"):
#   a word printed in one of 50 generated photos (read by the real OCR, among the 20 samples, caption
#   weight 0.5) puts that photo first for 46/50 queries at 0.5, 48/50 at 0.7, 0.85 and 1.0; an image whose words hold the query partly (one of two
#   words: ~0.5) must still rank below a strong meaning, so 1.0 (a word match always wins) is out;
#   0.85 sits inside the plateau with room on both sides.
#   R@1 / MRR of the other hand-written sample captions as queries: 1.000 / 1.000 at caption weight 1,
#   0.900 / 0.940 at 0.5 on the meaning alone, the same fused with the words for neutral file names
#   (IMG_0001.jpg...), 0.950 / 0.969 with the samples' descriptive names: never lower.
#   The labelled query set (docs/sample_queries.csv, weight 1): 38/45 short pairs shown, nonsense 0,
#   the same with and without the word channel.
WORD_WEIGHT = 0.85


def fuse(meaning: np.ndarray | float, words: np.ndarray | float) -> np.ndarray:
    """The one relevance of meaning (the hybrid) and the word channel, both in [0, 1]: a noisy OR."""
    m = np.asarray(meaning, dtype=np.float64)
    return 1.0 - (1.0 - m) * (1.0 - WORD_WEIGHT * np.asarray(words, dtype=np.float64))


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

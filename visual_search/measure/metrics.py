"""Retrieval metrics for `evaluate`: where does the correct image land for each query?

Every query has exactly one correct image. Its rank is computed from a full score matrix
(queries x images), so the figures are exact, not estimated from a candidate pool. Ties are broken
the way the search breaks them (a second score, e.g. the raw cosine), and any tie left after that
counts against the correct image: a channel that gives every image the same score ranks last,
not first.
"""

from __future__ import annotations

import numpy as np

RECALL_AT = (1, 5, 10)


def ranks_of_correct(scores: np.ndarray, correct: np.ndarray, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """1-based rank of the correct column in each row of `scores` (higher score = better).

    `correct[i]` is the column of row i's correct image. `tiebreak` (same shape) orders images
    with equal scores; remaining ties rank the correct image after the others.
    """
    scores = np.asarray(scores)
    correct = np.asarray(correct, dtype=np.int64)
    if scores.ndim != 2 or correct.shape != (scores.shape[0],):
        raise ValueError("scores must be (queries, images) and correct one column per query")
    rows = np.arange(scores.shape[0])
    mine = scores[rows, correct][:, None]
    better = scores > mine
    tied = scores == mine
    if tiebreak is not None:
        tiebreak = np.asarray(tiebreak)
        mine_t = tiebreak[rows, correct][:, None]
        better |= tied & (tiebreak > mine_t)
        tied &= tiebreak == mine_t
    # `tied` includes the correct image itself: rank = better + ties (pessimistic on full ties)
    return better.sum(axis=1) + tied.sum(axis=1)


def recall_at(ranks: np.ndarray, k: int) -> float:
    """Share of queries whose correct image is in the top k."""
    ranks = np.asarray(ranks)
    return float(np.mean(ranks <= k)) if ranks.size else 0.0


def mean_reciprocal_rank(ranks: np.ndarray) -> float:
    ranks = np.asarray(ranks, dtype=np.float64)
    return float(np.mean(1.0 / ranks)) if ranks.size else 0.0


def median_rank(ranks: np.ndarray) -> float:
    ranks = np.asarray(ranks)
    return float(np.median(ranks)) if ranks.size else 0.0


def summarize(ranks: np.ndarray) -> dict[str, float]:
    """{"recall@1", "recall@5", "recall@10", "mrr", "median_rank"} of one channel."""
    out = {f"recall@{k}": recall_at(ranks, k) for k in RECALL_AT}
    out["mrr"] = mean_reciprocal_rank(ranks)
    out["median_rank"] = median_rank(ranks)
    return out


PERCENTILES = (5, 25, 50, 75, 95, 99)
DISTRIBUTION_COLUMNS = ("mean", *(f"p{p}" for p in PERCENTILES))  # the keys of distribution() besides "n"


def distribution(values: np.ndarray, percentiles: tuple[int, ...] = PERCENTILES) -> dict[str, float]:
    """Mean and percentiles of a set of scores (for correct vs incorrect pair cosines)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if not values.size:
        return {"n": 0}
    out: dict[str, float] = {"n": int(values.size), "mean": float(values.mean())}
    out.update({f"p{p}": float(v) for p, v in zip(percentiles, np.percentile(values, percentiles))})
    return out

"""Retrieval metrics on hand-made rankings whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from visual_search.measure.metrics import (
    distribution,
    mean_reciprocal_rank,
    median_rank,
    ranks_of_correct,
    recall_at,
    summarize,
)


def test_rank_of_the_correct_image_in_each_row():
    scores = np.array([
        [0.9, 0.5, 0.1],  # correct 0 is best -> 1
        [0.2, 0.8, 0.3],  # correct 2 is second -> 2
        [0.1, 0.7, 0.7],  # correct 1 ties with 2 -> counted after it -> 2
        [0.4, 0.4, 0.4],  # all tied -> last -> 3
    ])
    assert ranks_of_correct(scores, np.array([0, 2, 1, 0])).tolist() == [1, 2, 2, 3]


def test_tiebreak_orders_equal_scores_like_the_search_does():
    # Relevance clipped at 1.0 for every image; the raw cosine decides, as the search's candidate order does.
    scores = np.ones((2, 3))
    cosine = np.array([[0.9, 0.8, 0.95], [0.5, 0.6, 0.7]])
    assert ranks_of_correct(scores, np.array([0, 2]), cosine).tolist() == [2, 1]
    # equal score AND equal tiebreak: still counted against the correct image
    assert ranks_of_correct(scores, np.array([1, 1]), np.zeros((2, 3))).tolist() == [3, 3]


def test_recall_mrr_median_on_known_ranks():
    ranks = np.array([1, 2, 3, 10, 11])
    assert recall_at(ranks, 1) == pytest.approx(0.2)
    assert recall_at(ranks, 5) == pytest.approx(0.6)
    assert recall_at(ranks, 10) == pytest.approx(0.8)
    assert mean_reciprocal_rank(ranks) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 10 + 1 / 11) / 5)
    assert median_rank(ranks) == 3
    assert median_rank(np.array([1, 2, 3, 4])) == 2.5
    assert summarize(ranks) == {
        "recall@1": pytest.approx(0.2), "recall@5": pytest.approx(0.6), "recall@10": pytest.approx(0.8),
        "mrr": pytest.approx(mean_reciprocal_rank(ranks)), "median_rank": 3.0,
    }


def test_perfect_and_empty_rankings():
    assert summarize(np.ones(7, dtype=int)) == {
        "recall@1": 1.0, "recall@5": 1.0, "recall@10": 1.0, "mrr": 1.0, "median_rank": 1.0}
    assert summarize(np.array([], dtype=int))["recall@1"] == 0.0


def test_distribution_of_scores():
    d = distribution(np.arange(101) / 100)
    assert d["n"] == 101 and d["mean"] == pytest.approx(0.5)
    assert d["p5"] == pytest.approx(0.05) and d["p50"] == pytest.approx(0.5) and d["p95"] == pytest.approx(0.95)
    assert distribution(np.array([])) == {"n": 0}


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        ranks_of_correct(np.ones(3), np.array([0]))
    with pytest.raises(ValueError):
        ranks_of_correct(np.ones((2, 3)), np.array([0]))

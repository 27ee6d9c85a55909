"""Stage 4: relevance in [0, 1], monotonic in cosine, hybrid between the channels."""

from __future__ import annotations

import numpy as np
import pytest

from visual_search.stages import rank as ranking
from visual_search.stages.rank import Calibration, cosine, hybrid, relevance, top_k

CALIBRATIONS = [ranking.CAPTION_TEXT, ranking.CLIP_TEXT_TEXT, ranking.CLIP_TEXT_IMAGE, ranking.CLIP_IMAGE_IMAGE]


@pytest.mark.parametrize("cal", CALIBRATIONS)
def test_relevance_is_bounded_and_monotonic(cal):
    cos = np.linspace(-1, 1, 2001)
    rel = relevance(cos, cal)
    assert rel.min() == 0.0 and rel.max() == 1.0
    assert np.all(np.diff(rel) >= 0)
    assert relevance(cal.floor, cal) == 0.0 and relevance(cal.ceiling, cal) == 1.0
    assert 0.0 < relevance((cal.floor + cal.ceiling) / 2, cal) < 1.0


def test_identical_image_is_fully_relevant():
    assert relevance(1.0, ranking.CLIP_IMAGE_IMAGE) == 1.0


def test_calibration_must_have_ceiling_above_floor():
    with pytest.raises(ValueError):
        Calibration(floor=0.5, ceiling=0.5)


def test_hybrid_is_a_weighted_mean_within_bounds():
    cap, vis = np.array([1.0, 0.0, 0.4]), np.array([0.0, 1.0, 0.8])
    assert np.allclose(hybrid(cap, vis, 1.0), cap)
    assert np.allclose(hybrid(cap, vis, 0.0), vis)
    assert np.allclose(hybrid(cap, vis, 0.5), [0.5, 0.5, 0.6])
    with pytest.raises(ValueError):
        hybrid(cap, vis, 1.5)


def test_cosine_and_top_k():
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    c = cosine(np.array([3.0, 0.0]), vectors)
    assert np.allclose(c, [1.0, 0.0, np.sqrt(0.5)])
    assert list(top_k(c, 2)) == [0, 2]
    assert len(cosine(np.ones(2), np.zeros((0, 2)))) == 0


def test_short_queries_have_their_own_calibration_and_long_ones_the_captions():
    cal = ranking.CAPTION_TEXT
    assert cal.for_query("dogs") == cal.short[0] and cal.for_query("a dog") == cal.short[1]
    long = cal.for_query("two brown dogs peeking out of a wooden doorway")
    assert (long.floor, long.ceiling) == (cal.floor, cal.ceiling)
    floors = [cal.for_words(n).floor for n in range(1, ranking.LONG_QUERY_WORDS + 2)]
    assert floors == sorted(floors) and floors[-1] == cal.floor  # the floor rises with the length, then stays
    assert all(round(f, 2) == f for f in floors)  # How it works writes them to two decimals: exactly these
    # the default cut-off (0.2) of one- and two-word queries sits at the p95 of their unrelated pairs
    assert relevance(0.25, cal.for_words(1)) > 0.2 > relevance(0.24, cal.for_words(1))
    assert relevance(0.32, cal.for_words(2)) > 0.2 > relevance(0.30, cal.for_words(2))


def test_a_calibration_without_short_ones_is_the_same_for_every_length():
    assert ranking.CLIP_TEXT_TEXT.for_query("a") is ranking.CLIP_TEXT_TEXT
    assert ranking.CLIP_TEXT_TEXT.for_words(30) is ranking.CLIP_TEXT_TEXT

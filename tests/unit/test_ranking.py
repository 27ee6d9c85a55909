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

"""retrieval.gather on a real Chroma store with vectors placed by hand: the hybrid best is found even
when it is first on neither channel, and a filter is applied inside each channel's query."""

from __future__ import annotations

import numpy as np
import pytest

from visual_search import Settings
from visual_search.search import candidates as retrieval
from visual_search.stages.rank import Calibration
from visual_search.records import ImageRecord
from visual_search.stages.store import VectorStore, make_client

IDENTITY = Calibration(floor=0.0, ceiling=1.0)  # relevance = cosine, to read the numbers easily


def _unit(cos: float) -> list[float]:
    """A vector at cosine `cos` to (1, 0, 0)."""
    return [cos, float(np.sqrt(1 - cos * cos)), 0.0]


@pytest.fixture
def store(tmp_path) -> VectorStore:
    """A: first on captions, last on pictures; B the reverse; C second on both; D, E far on both."""
    cosines = {"a": (1.0, 0.0), "b": (0.0, 1.0), "c": (0.9, 0.9), "d": (0.3, 0.3), "e": (0.2, 0.25)}
    records = [ImageRecord(id=i * 64, path=f"{i}.jpg", filename=f"{i}.jpg", caption=i, width=1, height=1,
                           added_at="2026-12-01T00:00:00+00:00", tags=("odd",) if i in "ace" else ())
               for i in cosines]
    s = VectorStore(make_client(Settings(data_dir=tmp_path)), "captions-test", "visual-test")
    s.upsert_captions(records, np.array([_unit(c) for c, _ in cosines.values()], np.float32))
    s.upsert_visual(records, np.array([_unit(v) for _, v in cosines.values()], np.float32))
    return s


def _query(alpha: float) -> retrieval.Query:
    q = np.array([1.0, 0.0, 0.0], np.float32)
    return retrieval.Query(q, q, IDENTITY, IDENTITY, alpha)


@pytest.fixture
def shallow(monkeypatch):
    """Start each channel at a depth of exactly the results needed."""
    monkeypatch.setattr(retrieval, "CANDIDATE_POOL", 1)
    monkeypatch.setattr(retrieval, "POOL_PER_RESULT", 1)


def test_the_hybrid_best_is_found_when_it_is_first_on_neither_channel(store, shallow):
    found = retrieval.gather(store, _query(0.5), need=1, min_relevance=0.0, complete=False)
    assert found.ids[0] == "c" * 64 and found.total[0] == pytest.approx(0.9)


def test_a_capped_depth_is_what_makes_it_inexact(store, shallow, monkeypatch):
    monkeypatch.setattr(retrieval, "MAX_POOL", 1)  # the test above can fail: without deepening, A or B wins
    found = retrieval.gather(store, _query(0.5), need=1, min_relevance=0.0, complete=False)
    assert found.ids[0] != "c" * 64


def test_complete_gathers_every_image_above_the_cut_off(store, shallow):
    found = retrieval.gather(store, _query(0.5), need=1, min_relevance=0.4, complete=True)
    above = {i[0] for i, t in zip(found.ids, found.total) if t >= 0.4}
    assert above == {"a", "b", "c"}


def test_a_filter_works_inside_each_channels_query(store, shallow):
    for alpha in (0.0, 0.5, 1.0):
        found = retrieval.gather(store, _query(alpha), need=2, min_relevance=0.0, complete=False,
                                 where={"tags": {"$contains": "odd"}})
        assert {i[0] for i in found.ids} <= {"a", "c", "e"} and len(found.ids) >= 2
    only = retrieval.gather(store, _query(0.5), need=3, min_relevance=0.0, complete=False, ids=["e" * 64, "d" * 64])
    assert [i[0] for i in only.ids] == ["d", "e"]


@pytest.mark.parametrize("alpha,complete", [(1.0, False), (0.5, False), (0.5, True)])
def test_word_finds_are_ranked_exactly_whatever_deepens(tmp_path, shallow, alpha, complete):
    """300 images, a third of them carrying the query's words (some with a strong meaning, some with
    none): the page is the brute-force best of fuse(meaning, words), lanes and word list deepened as needed."""
    from visual_search.stages import rank
    from visual_search.stages.words import WordMatches, parse

    rng = np.random.default_rng(7)
    n, dim = 300, 16
    records = [ImageRecord(id=f"{i:064x}", path=f"{i}.jpg", filename=f"{i}.jpg", caption="c", width=1, height=1,
                           added_at="2026-12-01T00:00:00+00:00") for i in range(n)]
    cap, vis = (rng.standard_normal((n, dim)).astype(np.float32) for _ in range(2))
    cap /= np.linalg.norm(cap, axis=1, keepdims=True)
    vis /= np.linalg.norm(vis, axis=1, keepdims=True)
    s = VectorStore(make_client(Settings(data_dir=tmp_path)), "captions-w", "visual-w")
    s.upsert_captions(records, cap)
    s.upsert_visual(records, vis)
    words = {r.id: float(w) for r, w in zip(records, rng.choice([0.0, 0.0, 0.3, 0.6, 1.0], n)) if w > 0}
    q = np.zeros(dim, np.float32)
    q[0] = 1.0
    query = retrieval.Query(q, q, Calibration(0.1, 0.6), Calibration(0.1, 0.6), alpha,
                            WordMatches(parse("word"), words))
    meaning = rank.hybrid(rank.relevance(cap @ q, query.caption_cal), rank.relevance(vis @ q, query.visual_cal), alpha)
    truth = rank.fuse(meaning, np.array([words.get(r.id, 0.0) for r in records]))
    found = retrieval.gather(s, query, need=10, min_relevance=0.3, complete=complete)
    if complete:
        assert {i for i, t in zip(found.ids, found.total) if t >= 0.3} == {
            r.id for r, t in zip(records, truth) if t >= 0.3}
    else:
        assert np.allclose(found.total[:10], np.sort(truth)[::-1][:10])

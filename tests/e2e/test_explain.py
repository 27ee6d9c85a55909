"""explain.py: the numbers the "How it works" tab shows come from the real pipeline and add up."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from visual_search import InvalidQuery
from visual_search.stages import rank as ranking
from visual_search.explain import (
    breakdown, caption_image, caption_indexed, caption_map, caption_vector, encode_query, pca_2d,
    relevance_formula, storage, summarize,
)
from visual_search.stages.store import CAPTION

from conftest import SAMPLES


def test_summarize_reports_size_norm_and_first_values():
    s = summarize(np.array([3.0, 4.0, 0.0, 0.0]), "m", n_first=2)
    assert (s.dim, s.norm, s.first, s.model) == (4, pytest.approx(5.0), (3.0, 4.0), "m")


def test_pca_places_a_query_like_its_twin_and_keeps_the_main_spread():
    rng = np.random.default_rng(0)
    # 30 points spread along one direction in 16-d, a little noise elsewhere
    direction = rng.normal(size=16)
    x = np.outer(np.linspace(-1, 1, 30), direction) + 0.01 * rng.normal(size=(30, 16))
    points, query, explained = pca_2d(x, x[7])
    assert points.shape == (30, 2)
    np.testing.assert_allclose(query, points[7], atol=1e-9)  # the same vector lands on the same spot
    assert explained[0] > 0.95  # nearly all variance on the first axis
    assert np.corrcoef(points[:, 0], np.linspace(-1, 1, 30))[0, 1] ** 2 > 0.99
    again, _, _ = pca_2d(x)
    np.testing.assert_allclose(again, points)  # same data, same picture (fixed signs)


def test_pca_handles_tiny_collections():
    assert pca_2d(np.zeros((0, 0)))[0].shape == (0, 2)
    one, q, explained = pca_2d(np.ones((1, 8)), np.zeros(8))
    assert one.shape == (1, 2) and q.shape == (2,) and explained == (0.0, 0.0)


def test_relevance_formula_matches_ranking():
    cal = ranking.CAPTION_TEXT
    text = relevance_formula(0.52, cal)
    assert text == f"clamp((0.52 - {cal.floor:.2f}) / ({cal.ceiling:.2f} - {cal.floor:.2f}), 0, 1) = " \
                   f"{float(ranking.relevance(0.52, cal)):.2f}"


def test_stages_one_and_two_on_an_upload_and_an_indexed_image(engine):
    data = (SAMPLES / "cat.jpg").read_bytes()
    step = caption_image(engine, data, "cat.jpg")
    assert step.caption and step.seconds > 0 and step.stored_caption is None
    with Image.open(SAMPLES / "cat.jpg") as im:
        assert (step.width, step.height) == im.size
    assert engine.count() == 0  # explaining never indexes

    engine.index_bytes([("cat.jpg", data)])
    record = engine.list()[0]
    engine.set_caption(record.id, "a tabby cat with green eyes")
    again = caption_indexed(engine, record.id[:12])
    assert again.caption == step.caption  # the captioner is deterministic
    assert again.stored_caption == "a tabby cat with green eyes"

    vec = caption_vector(engine, "a tabby cat with green eyes")
    assert vec.dim == engine.text_encoder.dim and vec.norm == pytest.approx(1.0, abs=1e-4)
    stored = engine.store.embeddings(CAPTION, [record.id])[record.id]
    np.testing.assert_allclose(vec.values, stored, atol=1e-5)  # what stage 2 shows is what the index holds
    where = storage(engine)
    assert where.collection == engine.store.names[CAPTION] and where.count == 1
    assert where.where == str(engine.settings.chroma_dir)  # the index folder (VS_INDEX_DIR)


def test_stages_three_and_four_add_up(engine):
    files = ["cat.jpg", "coffee_cup.jpg", "mountains.jpg"]
    engine.index_bytes([(f, (SAMPLES / f).read_bytes()) for f in files])
    captions = {"cat.jpg": "a cat lying on a sofa", "coffee_cup.jpg": "a cup of coffee on a saucer",
                "mountains.jpg": "snowy mountains above a meadow"}
    for r in engine.list():
        engine.set_caption(r.id, captions[r.filename])

    q = encode_query(engine, "  a  kitten ")
    assert q.text == "a kitten"
    assert q.caption_vector.dim == engine.text_encoder.dim and q.visual_vector.dim == engine.clip.dim

    result = breakdown(engine, "a kitten", k=3, alpha=0.7)
    assert [r.rank for r in result.rows] == [1, 2, 3]
    assert result.rows[0].filename == "cat.jpg"  # real MiniLM semantics on the caption channel
    assert result.caption_calibration == ranking.CAPTION_TEXT.for_words(2)  # a two-word query's own (issue 24)
    for r in result.rows:
        assert r.caption_relevance == pytest.approx(float(ranking.relevance(r.caption_cosine,
                                                                            result.caption_calibration)))
        assert r.visual_relevance == pytest.approx(float(ranking.relevance(r.visual_cosine, ranking.CLIP_TEXT_IMAGE)))
        assert r.meaning == pytest.approx(0.7 * r.caption_relevance + 0.3 * r.visual_relevance)
        assert r.relevance == pytest.approx(float(ranking.fuse(r.meaning, r.words)))  # the word channel joins

    cmap = caption_map(engine, q.caption_vector.values)
    assert sorted(cmap.captions) == sorted(captions.values())
    assert cmap.points.shape == (3, 2) and cmap.query.shape == (2,)
    # Three points span the PCA plane exactly, so on the map the query keeps its order of distances:
    # nearest to the caption with the highest cosine.
    distance = {c: float(np.linalg.norm(p - cmap.query)) for c, p in zip(cmap.captions, cmap.points)}
    assert min(distance, key=distance.get) == "a cat lying on a sofa"

    with pytest.raises(InvalidQuery):
        encode_query(engine, "   ")
    with pytest.raises(InvalidQuery):
        breakdown(engine, "cat", alpha=2)


def test_no_line_of_the_map_crosses_the_query_label():
    """The lines from the query to its nearest captions used to run through "your query: ..." (issue 24)."""
    from visual_search.explain import CaptionMap
    from visual_search.web.explain_tab import MAP_SIZE, ORANGE, draw_map

    angles = np.linspace(-0.6, 0.6, 8)  # every neighbour to the right of the query, where its label goes first
    points = np.vstack([[[0.0, 0.0]], np.c_[np.cos(angles), np.sin(angles)] * [3.0, 1.0], [[-3.0, -1.0]]])
    cmap = CaptionMap([str(i) for i in range(len(points))], [f"caption {i}" for i in range(len(points))],
                      points, np.array([0.0, 0.0]), (0.6, 0.3), np.r_[0.1, np.linspace(0.9, 0.5, 8), 0.0])
    image = np.asarray(draw_map(cmap, "a query long enough to be crossed"))
    line = np.all(image == (250, 200, 150), axis=-1)
    assert line.sum() > 500  # the lines are drawn
    lo, hi = points.min(axis=0), points.max(axis=0)  # where the map puts the query: 60 px margins
    qx = 60 + (0 - lo[0]) / (hi[0] - lo[0]) * (MAP_SIZE[0] - 120)
    qy = MAP_SIZE[1] - 60 - (0 - lo[1]) / (hi[1] - lo[1]) * (MAP_SIZE[1] - 120)
    text = np.argwhere(np.all(image == ORANGE, axis=-1))
    text = text[np.hypot(text[:, 1] - qx, text[:, 0] - qy) > 12]  # the label's glyphs, not the diamond
    (top, left), (bottom, right) = text.min(axis=0), text.max(axis=0)
    assert right - left > 100  # the label was found
    assert not line[top:bottom + 1, left:right + 1].any()


def test_the_vector_charts_axis_ends_at_the_last_component():
    """384 values on an axis to 383, not a rounded 400 (issue 24), whatever form gradio hands the value in."""
    import gradio as gr

    from visual_search.web.explain_tab import _axis_to_last, _vector_frame

    frame = _vector_frame(np.linspace(-0.1, 0.1, 384))
    plot = gr.LinePlot(x="component", y="value")
    payload = plot.postprocess(frame)
    for given in (frame, payload, payload.model_dump(), plot.preprocess(payload)):
        assert _axis_to_last(given)["x_lim"] == [0, 383], type(given)
    assert "x_lim" not in _axis_to_last(None)

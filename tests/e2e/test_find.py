"""Finding what you mean (issue 11): the relevance cut-off, sort by newest, exact filters, pages,
tags as a filter, image + words. On the sample images with their hand-written captions
(docs/sample_captions.csv) and the real MiniLM, through the library and the CLI's --json."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from conftest import SAMPLES, human_captions
from visual_search import SearchEngine
from visual_search.search import candidates as retrieval
from visual_search.stages import rank as ranking
from visual_search.cli import main
from visual_search.errors import InvalidQuery
from visual_search.search.filters import SearchFilter
from visual_search.search.searcher import check_sort

NONSENSE = "xyzzy qwerty"
UNRELATED = "a quarterly financial report spreadsheet"


@pytest.fixture(scope="module")
def samples(tmp_path_factory, tiny_settings, shared_models) -> SearchEngine:
    """The 20 samples, indexed in three batches a second apart (distinct added_at), human captions.
    The engine has the default cut-off (VS_MIN_RELEVANCE's default, 0.2)."""
    engine = SearchEngine(tiny_settings(tmp_path_factory.mktemp("find") / "data"), **shared_models)
    files = sorted(SAMPLES.glob("*.jpg"))
    for start in range(0, len(files), 7):
        if start:
            time.sleep(1.05)
        engine.index_paths(files[start : start + 7])
    captions = human_captions()
    for record in engine.list():
        engine.set_caption(record.id, captions[record.filename])
    return engine


def _id(engine: SearchEngine, filename: str) -> str:
    return next(r.id for r in engine.list() if r.filename == filename)


def _cli(capsys, engine: SearchEngine, monkeypatch, *argv: str) -> dict:
    monkeypatch.setenv("VS_DATA_DIR", str(engine.settings.data_dir))
    code = main(list(argv) + ["--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_default_cut_off_is_documented_and_unrelated_text_scores_zero(samples):
    assert samples.settings.min_relevance == 0.2
    assert ranking.relevance(0.326, ranking.CAPTION_TEXT) == 0.0  # p95 of unrelated pairs (stages/rank.py)
    everything = samples.search(UNRELATED, k=20, alpha=1.0, min_relevance=0.0).results
    assert len(everything) == 20 and all(r.caption_score == 0.0 for r in everything)
    for text in (NONSENSE, UNRELATED):
        response = samples.search(text, k=10, alpha=1.0)
        assert response.results == [] and response.hidden == 10  # nothing passes; the page says what it hid


def test_a_cat_at_min_relevance_04_is_the_cat_and_nothing_below(samples, capsys, monkeypatch, model_env):
    response = samples.search("a cat", k=10, alpha=1.0, min_relevance=0.4)
    assert [r.record.filename for r in response.results][:1] == ["cat.jpg"]
    assert all(r.relevance >= 0.4 for r in response.results) and response.hidden > 0
    for key in ("VS_CAPTION_MODEL", "VS_TEXT_MODEL", "VS_CLIP_MODEL"):
        monkeypatch.setenv(key, model_env[key])
    doc = _cli(capsys, samples, monkeypatch, "search", "a cat", "--alpha", "1", "--min-relevance", "0.4")
    assert doc["results"][0]["filename"] == "cat.jpg" and all(r["relevance"] >= 0.4 for r in doc["results"])
    assert doc["min_relevance"] == 0.4 and doc["hidden"] == response.hidden
    first = doc["results"][0]
    assert first["tags"] == [] and datetime.fromisoformat(first["added_at"]).tzinfo is not None


def test_newest_first_orders_the_same_results_by_date(samples):
    best = samples.search("a photo outdoors", k=20, min_relevance=0.0)
    newest = samples.search("a photo outdoors", k=20, min_relevance=0.0, sort="newest")
    stamps = [r.record.added_at for r in newest.results]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == 3
    assert {r.record.id for r in newest.results} == {r.record.id for r in best.results}
    cut = samples.search("two dogs", k=20, alpha=1.0, min_relevance=0.3, sort="newest")
    assert cut.results and all(r.relevance >= 0.3 for r in cut.results)  # newest among those above the cut-off


def test_date_filters(samples):
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()
    assert samples.search("a cat", k=5, min_relevance=0.0, filter=SearchFilter.parse(after=tomorrow)).results == []
    before = samples.search("a cat", k=20, min_relevance=0.0, filter=SearchFilter.parse(before=tomorrow)).results
    assert len(before) == 20
    last = max(r.added_at for r in samples.list())
    newest = samples.search("a cat", k=20, min_relevance=0.0, filter=SearchFilter.parse(after=last)).results
    assert {r.record.added_at for r in newest} == {last} and len(newest) == 6  # the third batch (20 = 7 + 7 + 6)
    with pytest.raises(InvalidQuery, match="ISO date"):
        SearchFilter.parse(after="next tuesday")


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_name_filter_is_exact_even_when_the_pool_is_smaller_than_the_collection(samples, monkeypatch, alpha):
    monkeypatch.setattr(retrieval, "CANDIDATE_POOL", 2)  # an unfiltered pool would hold 2 of the 20 images
    only = SearchFilter.parse(name="MOUNTAIN")
    got = samples.search("a cat", k=3, alpha=alpha, min_relevance=0.0, filter=only).results
    assert [r.record.filename for r in got] == ["mountains.jpg"]
    tree_ish = samples.search("a cat", k=20, alpha=alpha, min_relevance=0.0, filter=SearchFilter.parse(name="_")).results
    assert {r.record.filename for r in tree_ish} == {r.filename for r in samples.list() if "_" in r.filename}


def test_tag_filter_on_both_channels_and_tags_from_the_cli(samples, capsys, monkeypatch, model_env):
    for key in ("VS_CAPTION_MODEL", "VS_TEXT_MODEL", "VS_CLIP_MODEL"):
        monkeypatch.setenv(key, model_env[key])
    monkeypatch.setenv("VS_DATA_DIR", str(samples.settings.data_dir))
    dogs, raccoon = _id(samples, "dogs_at_door.jpg"), _id(samples, "raccoon.jpg")
    assert main(["tags", dogs[:12], "Animal", "dog"]) == 0
    samples.set_tags(raccoon, ["animal"])
    capsys.readouterr()
    listed = {r["id"]: r["tags"] for r in _cli(capsys, samples, monkeypatch, "list")}
    assert listed[dogs] == ["animal", "dog"] and listed[raccoon] == ["animal"]
    monkeypatch.setattr(retrieval, "CANDIDATE_POOL", 2)
    for alpha in (0.0, 1.0):
        got = samples.search("a cat", k=5, alpha=alpha, min_relevance=0.0, filter=SearchFilter.parse(tag="ANIMAL"))
        assert {r.record.id for r in got.results} == {dogs, raccoon}
    doc = _cli(capsys, samples, monkeypatch, "search", "a cat", "--tag", "dog", "--min-relevance", "0")
    assert [r["id"] for r in doc["results"]] == [dogs] and doc["results"][0]["tags"] == ["animal", "dog"]
    main(["tags", dogs, "--clear"])
    assert samples.get(dogs).tags == () and samples.get(dogs).tags_edited
    assert samples.search("a cat", k=5, min_relevance=0.0, filter=SearchFilter.parse(tag="dog")).results == []
    samples.set_tags(raccoon, [])


@pytest.mark.parametrize("sort", ["relevance", "newest"])
def test_pages_never_repeat_or_skip_an_image(samples, monkeypatch, sort):
    monkeypatch.setattr(retrieval, "CANDIDATE_POOL", 4)  # deeper pages need deeper candidate lists
    whole = [r.record.id for r in samples.search("a forest", k=20, min_relevance=0.0, sort=sort).results]
    pages = [samples.search("a forest", k=3, offset=o, min_relevance=0.0, sort=sort) for o in range(0, 24, 3)]
    seen = [r.record.id for p in pages for r in p.results]
    assert seen == whole and len(set(seen)) == 20
    assert pages[-1].results == [] and pages[-1].offset == 18 + 3


def test_offset_from_the_cli(samples, capsys, monkeypatch, model_env):
    for key in ("VS_CAPTION_MODEL", "VS_TEXT_MODEL", "VS_CLIP_MODEL"):
        monkeypatch.setenv(key, model_env[key])
    first = _cli(capsys, samples, monkeypatch, "search", "boats", "-k", "2", "--min-relevance", "0")
    second = _cli(capsys, samples, monkeypatch, "search", "boats", "-k", "2", "--offset", "2", "--min-relevance", "0")
    both = _cli(capsys, samples, monkeypatch, "search", "boats", "-k", "4", "--min-relevance", "0")
    assert [r["id"] for r in first["results"] + second["results"]] == [r["id"] for r in both["results"]]
    assert second["offset"] == 2
    with pytest.raises(InvalidQuery, match="offset"):
        samples.search("boats", offset=-1)


def test_words_refine_an_image(samples, capsys, monkeypatch, model_env):
    """The visual channel searches with image + words combined in CLIP space; captions score the words."""
    cat = _id(samples, "cat.jpg")
    liked = samples.search("a sleepy animal", k=5, alpha=0.0, min_relevance=0.0, like=cat).results
    image = samples.store.embeddings("visual", [cat])[cat]
    words = samples.clip.encode_texts(["a sleepy animal"])[0]
    stored = samples.store.embeddings("visual", [r.record.id for r in liked])
    norm = np.linalg.norm(image / np.linalg.norm(image) + words)
    for r in liked:
        x = stored[r.record.id]
        expected = (ranking.cosine(image, x[None])[0] + ranking.cosine(words, x[None])[0]) / norm
        assert r.visual_cosine == pytest.approx(expected, abs=1e-4)
    data = (SAMPLES / "cat.jpg").read_bytes()
    by_bytes = samples.search("a sleepy animal", k=5, alpha=0.0, min_relevance=0.0, like=data).results
    assert [r.record.id for r in by_bytes] == [r.record.id for r in liked]
    coffee = samples.search("a cup of coffee", k=1, alpha=1.0, like=cat).results
    assert coffee[0].record.filename == "coffee_cup.jpg"  # the caption channel scores the words alone
    for key in ("VS_CAPTION_MODEL", "VS_TEXT_MODEL", "VS_CLIP_MODEL"):
        monkeypatch.setenv(key, model_env[key])
    doc = _cli(capsys, samples, monkeypatch, "search", "a sleepy animal", "--like", str(SAMPLES / "cat.jpg"),
               "--alpha", "0", "--min-relevance", "0", "-k", "5")
    assert [r["id"] for r in doc["results"]] == [r.record.id for r in liked]


def test_combined_query_vector_and_its_calibration():
    rng = np.random.default_rng(0)
    image, text = rng.normal(size=8), rng.normal(size=8)
    q, cal = ranking.combine(image, text)
    u, t = image / np.linalg.norm(image), text / np.linalg.norm(text)
    n = np.linalg.norm(u + t)
    assert np.isclose(np.linalg.norm(q), 1.0) and np.allclose(q, (u + t) / n, atol=1e-6)
    x = rng.normal(size=8)
    x /= np.linalg.norm(x)
    assert np.isclose(ranking.cosine(q, x[None])[0], (u @ x + t @ x) / n, atol=1e-6)
    floor = (ranking.CLIP_IMAGE_IMAGE.floor + ranking.CLIP_TEXT_IMAGE.floor) / n
    assert np.isclose(cal.floor, floor) and np.isclose(cal.ceiling, (1.0 + ranking.CLIP_TEXT_IMAGE.ceiling) / n)


def test_filter_where_clauses():
    f = SearchFilter.parse(after="2026-12-01", before="2026-12-02", name=" Cat ", tag=" Red  Car ")
    assert f.where() == {"$and": [{"added_ts": {"$gte": 1796083200}}, {"added_ts": {"$lt": 1796169600}},
                                  {"tags": {"$contains": "red car"}}]}
    assert f.needs_ids and f.name == "Cat"
    assert SearchFilter().where() is None and not SearchFilter().active
    with pytest.raises(InvalidQuery, match="earlier"):
        SearchFilter.parse(after="2026-12-02", before="2026-12-01")
    with pytest.raises(InvalidQuery, match="Sort by"):
        check_sort("oldest")


"""The app's API for issue 11's options, launched in-process and driven through gradio_client: the
cut-off and what it hid, newest first, the filter row, Show more, tags in the Library, refine with words."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from gradio_client import Client

from conftest import captioned_samples, launch_app

FILE, TAGS, ADDED = 7, 8, 9  # columns of the results table (web/common.RESULT_COLUMNS)


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_settings, shared_models):
    engine = captioned_samples(tiny_settings(tmp_path_factory.mktemp("app-find") / "data"), shared_models)
    demo = launch_app(engine)
    yield engine, Client(demo.local_url, verbose=False)
    demo.close()


def _search(client, query, k=8, alpha=1.0, min_rel=0.2, sort="relevance", after="", before="", name="", tag=""):
    gallery, table, status, _ = client.predict(query, k, alpha, min_rel, sort, after, before, name, tag,
                                               api_name="/search")
    return gallery, table["data"] if table["data"] != [[]] else [], status


def test_the_cut_off_hides_and_says_so(app):
    _, client = app
    gallery, rows, status = _search(client, "a cat", min_rel=0.4)
    assert rows[0][FILE] == "cat.jpg" and all(r[1] >= 0.4 for r in rows) and len(gallery) == len(rows)
    assert "below relevance 0.40 hidden" in status
    gallery, rows, status = _search(client, "xyzzy qwerty")  # the default cut-off
    assert gallery == [] and rows == [] and "8 more below relevance 0.20 hidden" in status
    _, rows, _ = _search(client, "xyzzy qwerty", min_rel=0.0)  # what "Show the hidden results" asks
    assert len(rows) == 8


def test_results_carry_tags_and_dates_and_sort_newest(app):
    engine, client = app
    _, rows, _ = _search(client, "a photo", k=20, min_rel=0.0, sort="newest")
    added = [r[ADDED] for r in rows]
    assert len(rows) == 20 and added == sorted(added, reverse=True) and all(r[TAGS] == "" for r in rows)


def test_the_filter_row(app):
    engine, client = app
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()
    gallery, rows, status = _search(client, "a cat", min_rel=0.0, after=tomorrow)
    assert rows == [] and gallery == []
    _, rows, _ = _search(client, "a cat", k=20, min_rel=0.0, before=tomorrow, name="FOREST")
    assert sorted(r[FILE] for r in rows) == ["forest_path.jpg", "forest_stream.jpg"]
    _, rows, status = _search(client, "a cat", min_rel=0.0, after="soon")
    assert rows == [] and status.startswith("⚠️ The 'after' date must be an ISO date")


def test_tags_edited_in_the_library_filter_the_search(app):
    engine, client = app
    kite = next(r.id for r in engine.list() if r.filename == "kite_in_sky.jpg")
    status, _tiles, table, _note, _stored = client.predict(kite, "Sky, toy", api_name="/set_tags")
    assert status.startswith("Tags saved") and next(r for r in table["data"] if r[4] == kite)[5] == "sky, toy"
    gallery, rows, _ = _search(client, "a cat", min_rel=0.0, tag="toy")
    assert [r[FILE] for r in rows] == ["kite_in_sky.jpg"] and rows[0][TAGS] == "sky, toy"
    assert gallery[0]["caption"].endswith("  #sky #toy")
    client.predict(kite, "", api_name="/set_tags")
    assert engine.get(kite).tags == ()


def test_show_more_appends_the_next_page(app):
    _, client = app
    _, first, _ = _search(client, "a forest", k=4, min_rel=0.0)
    gallery, table, _, _ = client.predict("a forest", 4, 1.0, 0.0, "relevance", "", "", "", "", api_name="/show_more")
    both = table["data"]
    assert len(gallery) == len(both) == 8 and [r[FILE] for r in both[:4]] == [r[FILE] for r in first]
    _, whole, _ = _search(client, "a forest", k=8, min_rel=0.0)
    assert [r[FILE] for r in both] == [r[FILE] for r in whole] and [r[0] for r in both] == list(range(1, 9))


def test_refine_with_words(app):
    engine, client = app
    cat = next(r.id for r in engine.list() if r.filename == "cat.jpg")
    _, table, status, _ = client.predict(cat, 3, "a cup of coffee", api_name="/similar_by_id")
    assert table["data"][0][FILE] == "coffee_cup.jpg"  # the words lead the caption channel
    assert "“a cup of coffee”" in status

"""The API can do what the page can (issue 24, item 10): `/search_results` takes the cut-off, the sort,
an offset and every filter clause, today's three-argument calls still work, and a shared link keeps
the cut-off and the sort. Launched in-process, driven through gradio_client."""

from __future__ import annotations

import io

import pytest
from gradio_client import Client
from PIL import Image, ImageDraw

from conftest import captioned_samples, column, launch_app
from visual_search.search.filters import CLAUSES, SearchFilter
from visual_search.web.links import SHOW_IN_URL, link_params


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_settings, shared_models):
    engine = captioned_samples(tiny_settings(tmp_path_factory.mktemp("app-api") / "data", min_relevance=0.2),
                               shared_models)
    demo = launch_app(engine)
    yield engine, Client(demo.local_url, verbose=False)
    demo.close()


def _names(rows: list[dict]) -> list[str]:
    return [r["filename"] for r in rows]


def test_search_results_lists_every_option_of_the_page(app):
    _, client = app
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/search_results"]
    names = [p["parameter_name"] for p in api["parameters"]]
    assert names == ["query", "k", "alpha", "min_relevance", "sort", "offset", *(c.key for c in CLAUSES)]
    assert all(p["parameter_has_default"] for p in api["parameters"][1:])


def test_three_arguments_still_work_with_the_default_cut_off(app):
    engine, client = app
    rows = client.predict("xyzzy qwerty", 5, 1.0, api_name="/search_results")
    assert rows == []  # the default cut-off (0.2) applies, as on the page
    rows = client.predict("a cat", 5, 1.0, api_name="/search_results")
    assert _names(rows)[0] == "cat.jpg"
    # what the photo carries and why it matched (issue 23): the file name holds "cat"
    assert {"ocr_text", "taken_at", "place", "camera", "word_score", "matched"} <= rows[0].keys()
    assert [(m["label"], m["words"]) for m in rows[0]["matched"] if m["field"] == "name"] == [("file name", ["cat"])]


def test_the_cut_off_sort_and_offset(app):
    _, client = app
    everything = client.predict("a cat", 5, 1.0, 0.0, api_name="/search_results")
    assert len(everything) == 5
    strict = client.predict("a cat", 5, 1.0, min_relevance=0.5, api_name="/search_results")
    assert _names(strict) == ["cat.jpg"] and strict[0]["relevance"] >= 0.5
    newest = client.predict("a photo", 20, 1.0, 0.0, "newest", api_name="/search_results")
    added = [r["added_at"] for r in newest]
    assert len(newest) == 20 and added == sorted(added, reverse=True)
    first8 = client.predict("a forest", 8, 1.0, 0.0, api_name="/search_results")
    page2 = client.predict("a forest", 4, 1.0, 0.0, "relevance", 4, api_name="/search_results")
    assert _names(page2) == _names(first8)[4:]
    with pytest.raises(Exception, match="Sort by relevance or newest"):
        client.predict("a cat", 5, 1.0, 0.0, "oldest", api_name="/search_results")


def test_every_filter_clause(app):
    engine, client = app
    rows = client.predict("a cat", 20, 1.0, 0.0, name="FOREST", api_name="/search_results")
    assert sorted(_names(rows)) == ["forest_path.jpg", "forest_stream.jpg"]
    kite = next(r for r in engine.list() if r.filename == "kite_in_sky.jpg")
    engine.set_tags(kite.id, ["toy"])
    try:
        assert _names(client.predict("a cat", 20, 1.0, 0.0, tag="toy", api_name="/search_results")) == [
            "kite_in_sky.jpg"]
    finally:
        engine.set_tags(kite.id, [])
    assert client.predict("a cat", 20, 1.0, 0.0, after="2999-01-01", api_name="/search_results") == []
    shapes = {r.filename: r for r in engine.list()}
    for row in client.predict("a cat", 20, 1.0, 0.0, orientation="portrait", api_name="/search_results"):
        record = shapes[row["filename"]]
        assert record.height > record.width
    with pytest.raises(Exception, match="ISO date"):
        client.predict("a cat", 5, 1.0, 0.0, after="soon", api_name="/search_results")


def test_a_link_keeps_the_cut_off_and_the_sort():
    got = link_params({"q": "a cat", "min_relevance": "0.45", "sort": "newest", "tag": "pet"}, 50, 0.5, 0.2)
    assert got is not None and got[3:5] == (0.45, "newest") and "pet" in got[5]
    got = link_params({"q": "a cat", "min_relevance": "7", "sort": "oldest"}, 50, 0.5, 0.2)
    assert got is not None and got[3:5] == (0.2, "relevance")  # a hand-edited link falls back to the defaults
    assert "'min_relevance'" in SHOW_IN_URL and "'sort'" in SHOW_IN_URL


def _page(client, query: str, **clauses: str) -> tuple[list[str], str]:
    """The Search tab at the default cut-off (0.2), weight 1: (file names shown, status line)."""
    given = {c.key: clauses.get(c.key, "") for c in CLAUSES}
    _, table, status, _ = client.predict(query, 8, 1.0, 0.2, "relevance", *given.values(), api_name="/search")
    return (column(table, "file") if table["data"] != [[]] else []), status


def test_a_filter_that_removes_everything_is_named_not_the_words(app):
    engine, client = app
    shown, status = _page(client, "a dog", tag="dog")  # no image has the tag
    assert shown == [] and status.startswith("No image matches the filters (tag “dog”)")
    assert "Nothing relevant" not in status
    shown, status = _page(client, "a dog", after="2027-01-01")
    assert shown == [] and "No image matches the filters (added after “2027-01-01”)" in status.replace("\\", "")  # markdown escapes
    assert engine.search("a dog", k=5, filter=SearchFilter.parse(tag="dog")).passing == 0
    kite = next(r for r in engine.list() if r.filename == "kite_in_sky.jpg")
    engine.set_tags(kite.id, ["toy"])
    try:  # an image passes, the words find nothing: that is the words'
        shown, status = _page(client, "xyzzy qwerty", tag="toy")
        assert shown == [] and status.startswith("Nothing relevant for “xyzzy qwerty”")
        assert engine.search("xyzzy qwerty", k=5, alpha=1.0, filter=SearchFilter.parse(tag="toy")).passing != 0
    finally:
        engine.set_tags(kite.id, [])


def test_an_image_asked_for_by_name_is_not_hidden_behind_the_cut_off(app):
    engine, client = app
    board = Image.new("RGB", (240, 240), "white")
    draw = ImageDraw.Draw(board)
    for i in range(8):
        for j in range(8):
            if (i + j) % 2:
                draw.rectangle((i * 30, j * 30, i * 30 + 29, j * 30 + 29), fill="black")
    data = io.BytesIO()
    board.save(data, "PNG")
    added = engine.index_bytes([("chessboard.png", data.getvalue())]).added[0]
    engine.set_caption(added.id, "a black and white checkered pattern")
    try:
        shown, status = _page(client, "a dog", name="chessboard")
        assert shown == ["chessboard.png"] and "asked for by file name" in status
        rows = client.predict("a dog", 5, 1.0, name="chessboard", api_name="/search_results")
        assert [r["filename"] for r in rows] == ["chessboard.png"] and rows[0]["relevance"] < 0.2
        assert _page(client, "a dog")[0][:1] != ["chessboard.png"]  # without the name, the cut-off holds
        broad, _ = _page(client, "a dog", name="_")  # 16 images have "_": a filter like the others
        assert "forest_path.jpg" not in broad and all(n in {"dogs_at_door.jpg", "bird_on_tree.jpg"} for n in broad)
    finally:
        engine.remove(added.id)

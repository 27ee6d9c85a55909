"""A filter clause added through its declaration alone (search/filters.py): portrait / landscape /
square, from the stored width and height. Its CLI flag, app control, link parameter and in-memory
mask come from the declaration; images indexed before the clause existed are backfilled by
`reconcile` from their records, without running a model."""

from __future__ import annotations

import io
import json

import pytest
from gradio_client import Client
from PIL import Image

from conftest import column, launch_app
from visual_search import InvalidQuery, SearchEngine
from visual_search.cli import main
from visual_search.search.filters import SearchFilter
from visual_search.stages.store import CAPTION, VISUAL

SIZES = {"wide.png": (96, 64), "tall.png": (64, 96), "box.png": (80, 80), "nearly-box.png": (80, 79)}
EXPECTED = {"landscape": {"wide.png"}, "portrait": {"tall.png"}, "square": {"box.png", "nearly-box.png"}}


def _png(size: tuple[int, int], shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (shade, 255 - shade, 90)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def shapes(engine: SearchEngine) -> SearchEngine:
    engine.index_bytes([(name, _png(size, 40 * i)) for i, (name, size) in enumerate(SIZES.items())])
    return engine


def _names(engine: SearchEngine, **clauses) -> set[str]:
    response = engine.search("a picture", k=10, min_relevance=0.0, filter=SearchFilter.parse(**clauses))
    return {r.record.filename for r in response.results}


@pytest.mark.parametrize("in_memory", [False, True])
def test_orientation_filters_by_the_upright_shape(shapes, in_memory):
    if in_memory:
        shapes.load_facets()
    for shape, names in EXPECTED.items():
        assert _names(shapes, orientation=shape) == names
    assert _names(shapes, orientation="") == set(SIZES)
    with pytest.raises(InvalidQuery, match="portrait, landscape, square"):
        SearchFilter.parse(orientation="round")


def test_images_indexed_before_the_clause_are_backfilled(shapes):
    store = shapes.store
    ids = [r.id for r in shapes.list()]
    for kind in (CAPTION, VISUAL):  # as an index written before the column existed
        store._guard(lambda kind=kind: store._cols[kind].update(ids=ids, metadatas=[{"orientation": None}] * len(ids)))
    assert _names(shapes, orientation="portrait") == set()  # Chroma decides: the column is missing
    assert shapes.reconcile() == len(ids)  # no model runs: the vectors come from the catalog
    assert _names(shapes, orientation="portrait") == {"tall.png"}
    assert shapes.reconcile() == 0


def test_the_cli_flag_comes_from_the_declaration(shapes, capsys):
    assert main(["search", "a picture", "--json", "--min-relevance", "0", "--orientation", "square"]) == 0
    found = {r["filename"] for r in json.loads(capsys.readouterr().out)["results"]}
    assert found == EXPECTED["square"]
    with pytest.raises(SystemExit):
        main(["search", "a picture", "--orientation", "round"])


def test_the_app_control_and_link_come_from_the_declaration(shapes):
    demo = launch_app(shapes)
    try:
        config = Client(demo.local_url, verbose=False).config
        control = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "search-orientation")
        assert control["type"] == "dropdown" and control["props"]["label"] == "Shape"
        assert [v for _, v in control["props"]["choices"]] == ["", "portrait", "landscape", "square"]
        client = Client(demo.local_url, verbose=False)
        _, table, _, _ = client.predict("a picture", 10, 1.0, 0.0, "relevance", "", "", "", "", "portrait",
                                        api_name="/search")
        assert column(table, "file") == ["tall.png"]
    finally:
        demo.close()


def test_a_link_carries_every_clause():
    from visual_search.web.links import SHOW_IN_URL, link_params

    query, k, alpha, cut, sort, clauses = link_params({"q": "a cat", "orientation": "portrait", "tag": "pet"}, 50,
                                                      0.5, 0.2)
    assert (query, k, alpha, cut, sort) == ("a cat", 8, 0.5, 0.2, "relevance")
    assert SearchFilter.parse(*clauses) == SearchFilter(orientation="portrait", tag="pet")
    assert '"orientation"' in SHOW_IN_URL  # the page writes it into the address bar too

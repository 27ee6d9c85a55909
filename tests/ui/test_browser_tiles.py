"""Tiles in a real browser (Debian chromium driven by playwright), at desktop and phone size: grids
download thumbnails only, a gallery's preview shows the stored original of the tile picked (and a
deleted one answers 404), the Library's tiles box grows with the page instead of scrolling inside
itself, and no tab scrolls sideways. One app for the module, on 40 generated photos, each of its own
width, so a picture's natural size says which file it is."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from visual_search import SearchEngine

from browser import CHROMIUM, DESKTOP, PHONE, TABS, browser, hidden_results, open_tab, page_width
from conftest import REPO, launch_app
from images import picture

ARTIFACTS = REPO / "test-artifacts"
PHOTOS = 40  # at 5+ tiles a row on a desktop, 8 rows: more than the Library's old 520-px box held
FILE_ROUTE = "/gradio_api/file="
ID = re.compile(r"[0-9a-f]{64}")
PREVIEW = "img[data-testid='detailed-image']"
LOADED = """imgs => imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)"""

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium")


def _photo(i: int) -> bytes:
    """A smooth 4:3-ish JPEG, 640 + 8i pixels wide: bigger than a thumbnail, and unique in width."""
    buf = io.BytesIO()
    picture((32, 24), seed=900 + i).resize((640 + 8 * i, 480), Image.Resampling.BICUBIC).save(buf, "JPEG", quality=85)
    return buf.getvalue()


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_settings, shared_models):
    settings = tiny_settings(tmp_path_factory.mktemp("tiles") / "data", min_relevance=0.0)
    engine = SearchEngine(settings, **shared_models)
    engine.index_bytes([(f"photo_{i:02d}.jpg", _photo(i)) for i in range(PHOTOS)])
    demo = launch_app(engine)
    yield engine, demo.local_url
    demo.close()


def _path(url: str) -> str:
    """The file a gradio file URL names."""
    from urllib.parse import unquote

    return unquote(url[url.index(FILE_ROUTE) + len(FILE_ROUTE):])


def _grid(page, gallery: str) -> list[dict]:
    """The grid's pictures, once loaded (they load lazily: each is scrolled to): file and natural width."""
    imgs = page.locator(f"{gallery} .grid-container .thumbnail-item img")
    imgs.first.wait_for()
    for i in range(imgs.count()):
        imgs.nth(i).scroll_into_view_if_needed()
    page.wait_for_function(f"() => ({LOADED})([...document.querySelectorAll('{gallery} .grid-container img')])")
    return imgs.evaluate_all("els => els.map(e => ({src: e.src, width: e.naturalWidth}))")


def _assert_thumbnails(engine: SearchEngine, grid: list[dict]) -> None:
    for img in grid:
        path = Path(_path(img["src"]))
        assert path.parent.parent == engine.settings.thumbs_dir and path.suffix == ".webp", path
        assert img["width"] <= 384, img


def _preview_original(page, engine: SearchEngine, gallery: str, nth: int):
    """Pick the grid's `nth` tile: its preview must come to show the stored original. Returns the record."""
    tile = page.locator(f"{gallery} .grid-container .thumbnail-item").nth(nth)
    image_id = ID.search(tile.locator("img").get_attribute("src")).group(0)
    record = engine.get(image_id)
    tile.click()
    return _wait_original(page, gallery, record), record


def _wait_original(page, gallery: str, record) -> str:
    preview = page.locator(f"{gallery} {PREVIEW}")
    preview.wait_for()
    page.wait_for_function("([sel, width]) => { const i = document.querySelector(sel);"
                           " return i && i.complete && i.naturalWidth === width; }",
                           arg=[f"{gallery} {PREVIEW}", record.width])
    src = preview.get_attribute("src")
    assert _path(src) == record.path, src
    size = preview.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert size == [record.width, record.height]
    return src


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_preview_shows_the_stored_original_and_the_grids_only_thumbnails(app, tmp_path, viewport):
    engine, url = app
    with browser(tmp_path / "profile", viewport) as context:
        page = context.new_page()
        fetched: list[str] = []
        page.on("request", lambda r: fetched.append(_path(r.url)) if FILE_ROUTE in r.url else None)
        page.goto(f"{url}?q=a+photo&k=8&alpha=1", wait_until="load")
        page.locator("#search-status", has_text="“a photo”").wait_for()
        grid = _grid(page, "#search-gallery")
        assert len(grid) == 8
        _assert_thumbnails(engine, grid)
        assert not [f for f in fetched if not f.endswith(".webp")], fetched  # a page of results: thumbnails only

        src, record = _preview_original(page, engine, "#search-gallery", 1)
        # no button that would save a thumbnail as if it were the picture
        assert page.locator("#search-gallery button[aria-label*='ownload']").count() == 0
        # the preview's own strip of tiles picks the next one: its original follows
        page.locator("#search-gallery .preview .thumbnail-small").nth(2).click()
        nxt = engine.get(ID.search(grid[2]["src"]).group(0))
        _wait_original(page, "#search-gallery", nxt)
        originals = [f for f in fetched if not f.endswith(".webp")]
        assert originals == [record.path, nxt.path], originals  # each previewed original once, nothing else
        _assert_thumbnails(engine, _grid(page, "#search-gallery"))
        page.screenshot(path=str(ARTIFACTS / f"browser-preview-{viewport['width']}.png"), full_page=True)

        # Find similar: the same
        page.locator("#search-gallery .preview button[aria-label='Close']").click()
        page.get_by_role("button", name="Find similar images").click()
        page.locator("#similar-status", has_text="like").wait_for()
        _assert_thumbnails(engine, _grid(page, "#similar-gallery"))
        src, record = _preview_original(page, engine, "#similar-gallery", 3)
        # a deleted image's original, the URL the preview showed, answers 404
        assert page.request.get(src).status == 200
        engine.remove(record.id)
        assert page.request.get(src).status == 404


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_library_grows_with_the_page_and_no_tab_scrolls_sideways(app, tmp_path, viewport):
    engine, url = app
    with browser(tmp_path / "profile", viewport) as context:
        page = context.new_page()
        page.goto(url, wait_until="load")
        page.locator("#collection-status", has_text="in the collection").wait_for()
        open_tab(page, "library")
        grid = _grid(page, "#library-gallery")
        assert len(grid) == engine.count() >= PHOTOS - 2
        _assert_thumbnails(engine, grid)
        assert hidden_results(page, "#library-gallery", captions=False) == []
        # the last tile is reached by scrolling the page, and selecting it shows its editor
        last = page.locator("#library-gallery .thumbnail-item").last
        last.scroll_into_view_if_needed()
        last.click()
        page.locator("#library-caption textarea").wait_for()
        page.wait_for_function("() => { const r = document.querySelector('#library-caption textarea')"
                               ".getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; }")
        page.screenshot(path=str(ARTIFACTS / f"browser-library-{viewport['width']}.png"), full_page=True)
        for key in TABS:
            open_tab(page, key)
            page.wait_for_timeout(300)  # the tab's layout settles
            assert page_width(page) <= viewport["width"], (key, page_width(page))

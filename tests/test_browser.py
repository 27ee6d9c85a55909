"""The app in a real browser (Debian chromium driven by playwright): first start, a search by typing
and Enter, an upload in the Add images tab, a caption correction in the Library, and finding the
uploaded image by searching. Screenshots go to test-artifacts/ for people to look at."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from visual_search import SearchEngine
from visual_search.web.startup import StartupJob

from conftest import REPO, SAMPLES, launch_app

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
N_SAMPLES = len(list(SAMPLES.glob("*.jpg")))
TILE = re.compile(r"^\d\.\d\d \| .+")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium "
                                "(apt-get install -y chromium); the browser test needs it")


@pytest.fixture(scope="module")
def url(tmp_path_factory, tiny_settings, shared_models):
    """The app on an empty data dir, first-start job running in the background as app.py runs it."""
    engine = SearchEngine(tiny_settings(tmp_path_factory.mktemp("browser") / "data"), **shared_models)
    job = StartupJob(engine).start()
    demo = launch_app(engine, job)
    yield demo.local_url
    demo.close()
    job.join(30)


@pytest.fixture
def page(url, tmp_path):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(url)
        yield page
        context.close()


def _tiles(page, gallery: str) -> list[str]:
    """Captions of the tiles a gallery shows (each tile's image carries its caption as alt text)."""
    return page.locator(f"{gallery} .thumbnail-item img").evaluate_all("els => els.map(e => e.alt)")


def _search(page, query: str) -> None:
    box = page.locator("#query textarea, #query input").first
    box.fill(query)
    box.press("Enter")


def test_type_a_query_press_enter_and_see_captioned_tiles(page):
    # the first-start job indexes the samples while the page is up; the status line follows it
    page.locator("#collection-status", has_text=f"{N_SAMPLES} images in the collection").wait_for(timeout=90_000)
    _search(page, "a cat")
    page.locator("#search-status", has_text="“a cat”").wait_for()
    page.locator("#search-gallery .thumbnail-item").first.wait_for()
    tiles = _tiles(page, "#search-gallery")
    assert tiles and all(TILE.match(t) for t in tiles), tiles
    # the caption label under each tile is text, as written
    assert page.locator("#search-gallery").get_by_text(tiles[0], exact=True).count() >= 1
    page.screenshot(path=str(ARTIFACTS / "browser-search.png"), full_page=True)


def test_upload_an_image_then_find_it_by_searching(page, tmp_path):
    from playwright.sync_api import expect

    picture = tmp_path / "purple_triangle.png"
    image = Image.new("RGB", (160, 120), (250, 230, 60))
    ImageDraw.Draw(image).polygon([(20, 110), (80, 10), (140, 110)], fill=(120, 30, 160))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    picture.write_bytes(buf.getvalue())

    page.get_by_role("tab", name="Add images").click()
    page.locator("#add-images input[type=file]").set_input_files(str(picture))
    row = page.locator("#add-outcome", has_text="purple_triangle.png")
    row.wait_for(timeout=60_000)
    page.locator("#add-outcome", has_text="indexed").wait_for()
    page.screenshot(path=str(ARTIFACTS / "browser-add.png"), full_page=True)

    # the tiny test captioner writes word salad: correct the caption in the Library, as a person would
    page.get_by_role("tab", name="Library").click()
    page.locator("#library-gallery .thumbnail-item").first.wait_for()
    page.locator("#library-gallery .thumbnail-item").first.click()  # newest first
    page.locator("#library-caption textarea").first.wait_for()
    expect(page.get_by_text("purple_triangle.png · 160 x 120 px")).to_be_visible()  # the selection has loaded
    expect(page.locator("#library-caption textarea")).not_to_have_value("")
    page.locator("#library-caption textarea").fill("a purple triangle on a <i>yellow</i> background")
    page.get_by_role("button", name="Save caption").click()
    page.get_by_text("Caption saved for").wait_for()
    page.screenshot(path=str(ARTIFACTS / "browser-library.png"), full_page=True)

    page.get_by_role("tab", name="Search").click()
    weight = page.get_by_label("number input for caption ⟷ visual weight")
    weight.fill("1")
    weight.press("Enter")
    _search(page, "purple triangle")
    page.locator("#search-status", has_text="“purple triangle”").wait_for()
    first = _tiles(page, "#search-gallery")[0]
    assert first.endswith("| a purple triangle on a <i>yellow</i> background"), first
    # shown as the words typed, never as HTML: no <i> element appears anywhere in the results
    assert page.locator("#search-gallery i, #search-table i, #search-status i").count() == 0
    assert page.locator("#search-gallery .caption-label", has_text="<i>yellow</i>").count() == 1
    page.screenshot(path=str(ARTIFACTS / "browser-found.png"), full_page=True)

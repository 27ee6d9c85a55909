"""The app in a real browser (Debian chromium driven by playwright): first start, a search by typing
and Enter, an upload in the Add images tab, a caption correction in the Library, and finding the
uploaded image by searching; every result readable without scrolling inside a box, no tab wider
than a phone, a search shared as a link, a delete that asks first. Screenshots go to
test-artifacts/ for people to look at."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image, ImageDraw

from visual_search import SearchEngine
from visual_search.web.startup import StartupJob

from browser import CHROMIUM, DESKTOP, PHONE, TABS, browser, hidden_results, open_tab, page_width
from conftest import REPO, SAMPLES, launch_app

ARTIFACTS = REPO / "test-artifacts"
N_SAMPLES = len(list(SAMPLES.glob("*.jpg")))
TILE = re.compile(r"^\d\.\d\d \| .+")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium "
                                "(apt-get install -y chromium); the browser test needs it")


@pytest.fixture(scope="module")
def url(tmp_path_factory, tiny_settings, shared_models):
    """The app on an empty data dir, first-start job running in the background as app.py runs it."""
    # the tiny models' scores mean nothing: ask for every result (as conftest's model_env does)
    settings = tiny_settings(tmp_path_factory.mktemp("browser") / "data", min_relevance=0.0)
    engine = SearchEngine(settings, **shared_models)
    job = StartupJob(engine).start()
    demo = launch_app(engine, job)
    yield demo.local_url
    demo.close()
    job.join(30)


@pytest.fixture
def page(url, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    with browser(tmp_path / "profile", DESKTOP) as context:
        page = context.new_page()
        page.goto(url, wait_until="load")
        yield page


def _ready(page) -> None:
    """The first-start job is done: the status line under the title counts the images, no job running."""
    page.wait_for_function("""() => { const s = document.querySelector('#collection-status');
        return s && / images in the collection/.test(s.innerText) && !s.innerText.includes('⏳'); }""",
                           timeout=90_000)


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
    # every button has a name a screen reader can say (gradio's "add more" one was its raw key)
    names = page.locator("button").evaluate_all("els => els.map(e => e.getAttribute('aria-label') || e.innerText)")
    assert not [n for n in names if re.fullmatch(r"[a-z_]+\.[a-z_.]+", (n or "").strip())], names
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
    assert "| a purple triangle on a <i>yellow</i> background" in first, first  # as text, not HTML
    # shown as the words typed, never as HTML: no <i> element appears anywhere in the results
    assert page.locator("#search-gallery i, #search-table i, #search-status i").count() == 0
    assert page.locator("#search-gallery .caption-label", has_text="<i>yellow</i>").count() == 1
    page.screenshot(path=str(ARTIFACTS / "browser-found.png"), full_page=True)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_result_is_readable_and_no_tab_is_wider_than_the_window(url, tmp_path, viewport):
    """At 8 and at 50 results, no box holding the tiles scrolls by itself and no caption is cut;
    on every tab, after a search, the page is no wider than the window (a phone never scrolls sideways)."""
    with browser(tmp_path / "profile", viewport) as context:
        page = context.new_page()
        for k in (8, 50):
            page.goto(f"{url}?q=a+photo&k={k}&alpha=1", wait_until="load")
            _ready(page)
            page.locator("#search-status", has_text="“a photo”").wait_for()
            page.locator("#search-gallery .thumbnail-item img").first.wait_for()
            shown = page.locator("#search-gallery .thumbnail-item").count()
            assert shown >= min(k, N_SAMPLES - 1), shown
            assert hidden_results(page, "#search-gallery") == []
        page.screenshot(path=str(ARTIFACTS / f"browser-results-{viewport['width']}.png"), full_page=True)
        for key in TABS:
            open_tab(page, key)
            page.wait_for_timeout(300)  # the tab's layout settles
            assert page_width(page) <= viewport["width"], (key, page_width(page))
        # How it works with its tables, plots and map filled in
        page.locator("#explain-query textarea, #explain-query input").first.fill("a photo")
        page.get_by_role("button", name="Run stages 3 and 4").click()
        page.locator("#stage3", has_text="Stage 3").wait_for(timeout=60_000)
        page.locator("#explain-gallery .thumbnail-item img").first.wait_for()
        page.wait_for_timeout(500)
        assert page_width(page) <= viewport["width"], ("how, explained", page_width(page))
        assert hidden_results(page, "#explain-gallery") == []


def test_a_search_lives_in_the_link_a_reload_keeps_it_and_opening_it_runs_it(url, page):
    _ready(page)
    box = page.locator("#query textarea, #query input").first
    box.fill("two dogs")
    box.press("Enter")
    page.locator("#search-status", has_text="“two dogs”").wait_for()
    page.wait_for_function("() => new URL(location.href).searchParams.get('q') === 'two dogs'")
    shared = page.url
    assert "alpha=" in shared and "k=8" in shared
    page.reload(wait_until="load")
    page.locator("#search-status", has_text="“two dogs”").wait_for()
    assert box.input_value() == "two dogs"

    # a colleague opens a link with its own weight and k: the controls say so and the search runs
    page.goto(f"{url}?q=a%20cat&k=3&alpha=0.25", wait_until="load")
    page.locator("#search-status", has_text="“a cat”").wait_for()
    assert page.get_by_label("number input for Number of results (top-k)").first.input_value() == "3"
    assert page.get_by_label("number input for caption ⟷ visual weight").first.input_value() == "0.25"
    assert page.locator("#search-gallery .thumbnail-item").count() <= 3


def test_delete_in_the_library_asks_first(page):
    from playwright.sync_api import expect

    _ready(page)
    open_tab(page, "library")
    page.locator("#library-gallery .thumbnail-item").first.wait_for()
    before = page.locator("#library-gallery .thumbnail-item").count()
    page.locator("#library-gallery .thumbnail-item").nth(1).click()
    expect(page.locator("#library-caption textarea")).not_to_have_value("")
    assert page.locator("#library-id").count() == 0  # no 64-character id field to edit
    page.get_by_role("button", name="Delete image…").click()
    question = page.locator("#library-confirm", has_text="for good?").first  # a gr.Group repeats its id
    question.wait_for()
    page.get_by_role("button", name="Keep it").click()
    question.wait_for(state="hidden")
    assert page.locator("#library-gallery .thumbnail-item").count() == before  # asking deleted nothing

    page.get_by_role("button", name="Delete image…").click()
    page.get_by_role("button", name="Yes, delete it").click()
    page.locator("#library-status", has_text="Deleted ").wait_for()  # the delete's own status, not any "deleted"
    expect(page.locator("#library-gallery .thumbnail-item")).to_have_count(before - 1)


def test_how_it_works_shows_the_image_picked_from_the_collection(page):
    _ready(page)
    open_tab(page, "how")
    page.get_by_label("…or pick an indexed image").first.click()
    page.get_by_role("option").first.click()
    page.locator("#explain-image img").first.wait_for()  # the picked original is shown in the image box
    page.get_by_role("button", name="Run stages 1 and 2").click()
    page.get_by_text("Stage 2 · storing understanding").wait_for(timeout=60_000)
    assert page.get_by_text("The caption the index keeps becomes a vector").count() == 1

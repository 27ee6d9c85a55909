"""The page after the collection changes, in a real browser (Debian chromium driven by playwright):
a deleted image answers 404 at every URL the page or the API gave for it, and no view shows it;
a "similar" on an image deleted meanwhile says so in words; an upload is a job the server keeps:
a reload finds it, the count moves as its images land, and a file added to the box is the only one
sent. One app for the module, on a small collection of generated pictures."""

from __future__ import annotations

import re
import threading

import pytest
from gradio_client import Client

from visual_search import SearchEngine
from visual_search.web.uploads import UploadJobs

from browser import CHROMIUM, DESKTOP, PHONE, browser, open_tab, search, set_weight
from conftest import REPO, launch_app
from images import jpeg, png

ARTIFACTS = REPO / "test-artifacts"
CAPTIONS = ["a red apple on a wooden table", "a blue boat on a calm lake", "a green tree in a field",
            "a yellow house with a red door"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium")


class HeldUploads(UploadJobs):
    """The app's upload jobs, which a test can hold before each group of files (the work itself is real)."""

    def __init__(self, engine: SearchEngine) -> None:
        super().__init__(engine)
        self.gate: threading.Semaphore | None = None

    def _before_group(self, job_id: str, start: int) -> None:
        if self.gate is not None:
            assert self.gate.acquire(timeout=120), "the test never let the upload go on"


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_settings, shared_models):
    settings = tiny_settings(tmp_path_factory.mktemp("changes") / "data", min_relevance=0.0)
    engine = SearchEngine(settings, **shared_models)
    report = engine.index_bytes([(f"picture_{i}.png", png(seed=100 + i)) for i in range(len(CAPTIONS))])
    for added, caption in zip(report.added, CAPTIONS):
        engine.set_caption(added.id, caption)
    uploads = HeldUploads(engine)
    demo = launch_app(engine, None, uploads=uploads)
    yield engine, demo.local_url, uploads
    demo.close()


@pytest.fixture
def page(app, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    with browser(tmp_path / "profile", DESKTOP) as context:
        page = context.new_page()
        page.goto(app[1], wait_until="load")
        page.locator("#collection-status", has_text="in the collection").wait_for()
        yield page


def _tile(page, gallery: str, words: str):
    return page.locator(f"{gallery} .thumbnail-item").filter(has=page.locator(f"img[alt*='{words}']"))


def _status(page, url: str) -> int:
    return page.request.get(url).status


def _count(page) -> int:
    text = page.locator("#collection-status").inner_text()
    return int(re.search(r"([\d,]+) images? in the collection", text).group(1).replace(",", ""))


def test_a_deleted_image_answers_404_and_no_view_shows_it(app, page):
    from playwright.sync_api import expect

    engine, url, _ = app
    set_weight(page, "1")
    search(page, "a red apple")
    apple = _tile(page, "#search-gallery", "red apple")
    expect(apple).to_have_count(1)
    tile_url = apple.locator("img").get_attribute("src")
    apple.click()
    page.get_by_role("button", name="Find similar images").click()
    page.locator("#similar-status", has_text="like").wait_for()
    query_url = page.locator("#similar-image img").first.get_attribute("src")
    rows = Client(url, verbose=False, download_files=False).predict("a red apple", 1, 1.0, api_name="/search_results")
    original_url = rows[0]["image_url"]
    assert "red apple" in rows[0]["caption"]
    urls = {"tile": tile_url, "query image": query_url, "/search_results image_url": original_url}
    assert {k: _status(page, u) for k, u in urls.items()} == dict.fromkeys(urls, 200)

    open_tab(page, "library")
    _tile(page, "#library-gallery", "red apple").click()
    expect(page.locator("#library-caption textarea")).to_have_value(CAPTIONS[0])
    page.get_by_role("button", name="Delete image…").click()
    page.get_by_role("button", name="Yes, delete it").click()
    page.locator("#library-status", has_text="Deleted ").wait_for()  # the delete's own status, not any "deleted"
    assert {k: _status(page, u) for k, u in urls.items()} == dict.fromkeys(urls, 404)
    expect(_tile(page, "#library-gallery", "red apple")).to_have_count(0)

    # Search draws its results again: no tile of the deleted image, the count of today
    open_tab(page, "search")
    page.locator("#search-status", has_text="searched again").wait_for()
    expect(_tile(page, "#search-gallery", "red apple")).to_have_count(0)
    assert f"{len(CAPTIONS) - 1} images searched" in page.locator("#search-status").inner_text()
    # Find similar was showing images like the deleted one: it says so, and its picture is gone
    open_tab(page, "similar")
    page.locator("#similar-status", has_text="deleted from the collection").wait_for()
    expect(page.locator("#similar-image img")).to_have_count(0)
    expect(page.locator("#similar-gallery .thumbnail-item")).to_have_count(0)
    # one message, where it belongs: no toast, no warning left in the other tabs
    assert page.locator(".toast-body").count() == 0
    assert "⚠️" not in page.locator("#search-status").inner_text()
    page.screenshot(path=str(ARTIFACTS / "browser-after-delete.png"), full_page=True)


def test_similar_on_a_tile_deleted_meanwhile_says_it_was_deleted(app, page):
    from playwright.sync_api import expect

    engine, _, _ = app
    set_weight(page, "1")
    search(page, "a blue boat")
    boat = _tile(page, "#search-gallery", "blue boat")
    expect(boat).to_have_count(1)
    boat.click()
    page.get_by_role("button", name="Find similar images").wait_for()
    engine.remove(next(r.id for r in engine.list() if r.caption == CAPTIONS[1]))  # another visitor deletes it
    page.get_by_role("button", name="Find similar images").click()
    status = page.locator("#similar-status", has_text="deleted from the collection")
    status.wait_for()
    assert not re.search(r"[0-9a-f]{64}", status.inner_text())  # words, not an id
    assert page.locator(".toast-body").count() == 0


def test_a_reload_during_an_upload_shows_the_job_and_the_count_moves_as_images_land(app, page, tmp_path):
    engine, _, uploads = app
    files = []
    for i in range(10):
        files.append(tmp_path / f"upload_{i}.jpg")
        files[-1].write_bytes(jpeg(seed=200 + i, size=(96, 72)))
    before = engine.count()
    uploads.gate = threading.Semaphore(0)
    try:
        open_tab(page, "add")
        page.locator("#add-images input[type=file]").first.set_input_files([str(f) for f in files])
        page.locator("#add-status", has_text="Indexing 0 of 10 files").wait_for()
        page.reload(wait_until="load")
        # the page is new, the job is not: it is shown again, and polled
        open_tab(page, "add")
        page.locator("#add-status", has_text="Indexing 0 of 10 files").wait_for()
        uploads.gate.release()  # the first group of 8 lands; the job waits before the last 2
        page.locator("#collection-status", has_text=f"{before + 8} images in the collection").wait_for()
        page.locator("#add-status", has_text="Indexing 8 of 10 files").wait_for()
        landed = page.locator("#add-outcome").inner_text()
        assert [f.name in landed for f in files] == [True] * 8 + [False] * 2, landed
        page.screenshot(path=str(ARTIFACTS / "browser-upload-running.png"), full_page=True)
        uploads.gate.release()
        page.locator("#add-status", has_text="10 indexed").wait_for()
        assert _count(page) == before + 10 == engine.count()
    finally:
        uploads.gate = None


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_file_added_to_the_box_is_the_only_one_sent(app, tmp_path, viewport):
    engine, url, _ = app
    first, second = tmp_path / f"first_{viewport['width']}.jpg", tmp_path / f"second_{viewport['width']}.jpg"
    first.write_bytes(jpeg(seed=300 + viewport["width"]))
    second.write_bytes(jpeg(seed=301 + viewport["width"]))
    with browser(tmp_path / "profile", viewport) as context:
        page = context.new_page()
        page.goto(url, wait_until="load")
        open_tab(page, "add")
        page.locator("#add-images input[type=file]").first.set_input_files(str(first))
        page.locator("#add-status", has_text="1 indexed").wait_for()
        with page.expect_file_chooser() as chooser:
            page.get_by_role("button", name="Add more files").click()
        chooser.value.set_files(str(second))
        page.locator("#add-outcome", has_text=second.name).wait_for()
        page.locator("#add-status", has_text="1 indexed, 0 duplicates").wait_for()
        outcome = page.locator("#add-outcome").inner_text()
        assert first.name not in outcome and "duplicate" not in outcome, outcome
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        page.screenshot(path=str(ARTIFACTS / f"browser-add-second-{viewport['width']}.png"), full_page=True)

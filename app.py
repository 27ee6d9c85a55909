"""Visual search web app: `python app.py` (also the Hugging Face Spaces entry point).

Configuration comes from the environment: VS_* variables (see visual_search/config.py) and
gradio's own GRADIO_SERVER_NAME / GRADIO_SERVER_PORT.
"""

from visual_search import SearchEngine
from visual_search.gpu import ON_SPACES
from visual_search.startup import StartupJob
from visual_search.ui import build_demo, launch_options

engine = SearchEngine()
if ON_SPACES:  # ZeroGPU wants models created at start-up, outside the GPU-decorated handlers
    engine.captioner, engine.clip, engine.text_encoder  # noqa: B018
startup = StartupJob(engine).start()
demo = build_demo(engine, startup)

if __name__ == "__main__":
    demo.queue().launch(**launch_options(engine.settings))

"""The web app (Gradio): the tabs, the first-start job and ZeroGPU support. It calls the library
(`visual_search.engine`) and holds no pipeline logic; the library never imports it."""

from .app import build_demo, launch_options

__all__ = ["build_demo", "launch_options"]

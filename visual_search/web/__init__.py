"""The web app (Gradio): the tabs, the first-start job and ZeroGPU support. It calls the library
(`visual_search.engine`) and holds no pipeline logic. Like cli.py it is a front end: nothing under
stages/, search/, library/, models/ or demo/, nor engine.py, imports it."""

from .app import build_demo, launch_options

__all__ = ["build_demo", "launch_options"]

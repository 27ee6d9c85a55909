"""Hugging Face ZeroGPU: the wrap the app hands the engine for its compute functions.

On a ZeroGPU Space (`SPACES_ZERO_GPU=true`) each wrapped function runs in a forked worker process
that holds a GPU for the call; its arguments and its return value are pickled across, and nothing
it changes in memory comes back. That is why only the pure functions of `visual_search/models/compute.py`
are wrapped, never a handler that writes the catalog or Chroma. Each asks for a duration estimated
from its input (`compute.understand_seconds`...), not the default 60 s of the visitor's quota.
Everywhere else there is no wrap and the functions run in this process.
"""

from __future__ import annotations

from ..models.compute import GpuWrap
from ..config import on_zero_gpu


def gpu_wrap() -> GpuWrap | None:
    """`spaces.GPU(fn, duration=estimate)` on ZeroGPU, None elsewhere.

    Call it before any model is loaded: importing `spaces` patches torch so that models placed on
    "cuda" at start-up are moved to the GPU inside each worker.
    """
    if not on_zero_gpu():
        return None
    import spaces  # type: ignore[import-not-found]  # preinstalled on ZeroGPU Spaces

    def wrap(fn, duration):
        return spaces.GPU(fn, duration=duration)

    return wrap

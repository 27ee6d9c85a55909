"""Hugging Face ZeroGPU: the wrap the app hands the engine for its compute functions.

On a ZeroGPU Space (`SPACES_ZERO_GPU=true`) each wrapped function runs in a forked worker process
that holds a GPU for the call; its arguments and its return value are pickled across, and nothing
it changes in memory comes back. That is why only the pure functions of `visual_search/models/compute.py`
are wrapped, never a handler that writes the catalog or Chroma. Each asks for a duration estimated
from its input and the throughput measured so far (`compute.Throughput`), not the default 60 s of
the visitor's quota; images go in chunks sized from that throughput (an upload of up to 32 images
is one call), not 8 at a time.
The inputs are prepared here, in the app's process (BLIP's pixel values, CLIP's preprocessed
images: small arrays at the models' input size), and the worker does model work only; a worker may
be forked at any time, so forks keep torch to one CPU thread (models/fork_safety.py).
Everywhere else there is no wrap and the functions run in this process.
"""

from __future__ import annotations

from ..models import fork_safety
from ..models.compute import GpuWrap
from ..config import on_zero_gpu


def gpu_wrap() -> GpuWrap | None:
    """`spaces.GPU(fn, duration=estimate)` on ZeroGPU, None elsewhere.

    Call it before any model is loaded: importing `spaces` patches torch so that models placed on
    "cuda" at start-up are moved to the GPU inside each worker.
    """
    if not on_zero_gpu():
        return None
    fork_safety.install()  # every GPU worker is a fork of this process, made at any time
    import spaces  # type: ignore[import-not-found]  # preinstalled on ZeroGPU Spaces

    def wrap(fn, duration):
        return spaces.GPU(fn, duration=duration)

    return wrap

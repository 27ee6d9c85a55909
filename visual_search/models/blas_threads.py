"""numpy's BLAS (the OpenBLAS its wheel bundles) keeps to one thread in a process that runs a SearchEngine.

numpy's own matrix products here are small: a group's CLIP vectors against the tag vocabulary
(stages/tags.py), one query against a few hundred candidates (stages/rank.py). numpy's OpenBLAS still
hands them to its thread pool, and after each call those threads spin, waiting for more work, on a core
the intake's decoders or torch needed. Measured on 2 cores (12 MP phone JPEGs, instant models,
benchmarks/intake.py): 41 -> 35.5 ms per photo, 77 -> 63 ms of CPU, with one BLAS thread. torch's own
BLAS, ONNX Runtime and Chroma keep their threads. A process that sets OPENBLAS_NUM_THREADS (or
OMP_NUM_THREADS, which OpenBLAS also reads) keeps its own choice.
"""

from __future__ import annotations

import os
import threading

_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
_lock = threading.Lock()
_done = False


def numpy_blas_one_thread() -> None:
    """Limit the BLAS libraries numpy loaded to one thread, once per process, unless the environment chose."""
    global _done
    with _lock:
        if _done:
            return
        _done = True
        if any(os.environ.get(name) for name in _ENV):
            return
        from threadpoolctl import ThreadpoolController

        controller = ThreadpoolController()
        for pool in controller.lib_controllers:
            if pool.user_api == "blas" and _numpys(pool.filepath):
                pool.set_num_threads(1)


def _numpys(path: str) -> bool:
    """Whether a BLAS library came with numpy's wheel (numpy.libs/ on Linux and Windows, numpy/.dylibs/ on
    macOS), not with torch or another package that chose its own threads."""
    parts = os.path.normpath(path).split(os.sep)
    return "numpy.libs" in parts or (".dylibs" in parts and "numpy" in parts)

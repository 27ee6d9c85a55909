"""Give memory freed by the allocator back to the operating system.

glibc keeps freed heap memory for reuse by the thread arena that freed it. Captioning a group of
images allocates and frees ~100 MB of activations in chunks below its mmap threshold, so after an
indexing run the process stays ~100-140 MB larger than it needs to be (measured in
docs/benchmarks.md), and other threads (Chroma's) cannot reuse that memory. `malloc_trim(0)`
returns it. Elsewhere (macOS, musl) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache


@lru_cache(maxsize=1)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_freed_memory() -> bool:
    """Trim every malloc arena; True when it ran (a few ms for a multi-GB heap)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True

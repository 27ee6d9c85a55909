"""Hugging Face ZeroGPU support: `@gpu` is `spaces.GPU` when the `spaces` package is installed
(on a ZeroGPU Space it attaches a GPU for the duration of the call), and does nothing elsewhere.
Apply it to the UI handlers that run models."""

from __future__ import annotations

from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)

try:  # installed on Hugging Face Spaces only
    import spaces  # type: ignore[import-not-found]
except ImportError:
    spaces = None

ON_SPACES = spaces is not None


def _identity(fn: F) -> F:
    return fn


gpu: Callable[[F], F] = spaces.GPU if spaces is not None else _identity

"""Two independent calls of one search at once, when the search has a second core to itself.

A search asks two channels for the same things: two query vectors, two index queries, two reads
of the other channel's vectors. ONNX Runtime and Chroma release the GIL while they work, so each
pair can overlap instead of waiting in line (measured: docs/benchmarks.md). One extra thread per
engine: while another search holds it (concurrent visitors already keep the cores busy), a pair
runs one call after the other, as it always did, instead of queueing for the thread.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, TypeVar

A = TypeVar("A")
B = TypeVar("B")


class Lanes:
    """`both(first, second)`: `first` here, `second` on the lane thread, when it is free."""

    def __init__(self) -> None:
        self._free = threading.Semaphore(1)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    def both(self, first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
        """(first(), second()); either's exception is raised once both have finished."""
        if not self._free.acquire(blocking=False):
            return first(), second()
        try:
            later = self._thread().submit(second)
            try:
                a = first()
            except BaseException:
                wait([later])
                raise
            return a, later.result()
        finally:
            self._free.release()

    def _thread(self) -> ThreadPoolExecutor:
        """The lane's executor, made anew in a forked child (ZeroGPU's workers), where the parent's
        thread does not exist and a task submitted to its executor would never run."""
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool, self._pid = ThreadPoolExecutor(1, thread_name_prefix="vs-lane"), os.getpid()
            return self._pool


class OneLane:
    """`both` one call after the other: for callers without an engine's lanes (tests, measurements)."""

    @staticmethod
    def both(first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
        return first(), second()


SEQUENTIAL = OneLane()

"""A bounded pipeline for indexing: the next images are read, checked, decoded, thumbnailed and made
ready for the models (the processors' arrays, image by image), while the current group is in the models
and the group before it is written (`Behind`).

Pillow decodes and resizes, hashlib hashes and the models' processors run without holding the GIL,
so a few threads keep the cores busy; the model (a GPU, or torch's own threads on a CPU) works on
one group meanwhile. Bounded: at most `ahead` images are in flight, so a large upload never sits in
memory at once. Results come back in the order of the input: reports, duplicates and progress are
those of a plain loop.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 4  # models on the CPU: beyond this the writes and the model's own threads are what wait
# models on a GPU: every core but the one driving it decodes and prepares (a GPU captions hundreds of
# images a second, one core prepares ~40)
MAX_GPU_WORKERS = 16


def workers(gpu: bool = False) -> int:
    """Threads for intake work: one per core the process may use, at most MAX_WORKERS; with the models
    on a GPU of this process, all cores but one, at most MAX_GPU_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_GPU_WORKERS, cores - 1) if gpu else min(MAX_WORKERS, cores))


def ordered_map(pool: ThreadPoolExecutor | None, fn: Callable[[T], R], items: Iterable[T], ahead: int) -> Iterator[R]:
    """fn(item) for each item, in order; at most `ahead` submitted and not yet taken. No pool: a plain map."""
    if pool is None:
        yield from map(fn, items)
        return
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # the consumer stopped early (an error): what did not start never will
        for future in pending:
            future.cancel()


class Behind:
    """Jobs run one at a time, in order, on a thread of their own while the caller goes on: a group's
    catalog writes while the next group is in the models (a GPU never waits for four fsyncs a photo).
    At most one job runs behind: `submit` first waits for the one before, and raises its error there;
    leaving the block waits for the last one. `inline`: each job runs at once, in the caller's thread."""

    def __init__(self, inline: bool = False) -> None:
        self._pool = None if inline else ThreadPoolExecutor(1, thread_name_prefix="vs-write")
        self._running: Future | None = None

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        self.wait()
        if self._pool is None:
            fn(*args)
        else:
            self._running = self._pool.submit(fn, *args)

    def wait(self) -> None:
        """Until the job behind is done; its error is raised here."""
        running, self._running = self._running, None
        if running is not None:
            running.result()

    def __enter__(self) -> "Behind":
        return self

    def __exit__(self, kind, error, trace) -> None:
        try:
            if kind is None:
                self.wait()
            elif self._running is not None:  # the caller failed: the job in progress ends first, then its error
                self._running.exception()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

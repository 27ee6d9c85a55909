"""Per-visitor caps of a public demo: images and bytes kept, uploads a minute, one indexing job at a time.

`admit` checks everything before anything is written. An upload larger than what is left of the
visitor's allowance is admitted up to it, file by file in its order (20 a minute and 23 sent: the
first 20); the rest are refused with the reason, and nothing of theirs is written. The clock is
injectable so tests need no waiting.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from ..config import Settings
from ..errors import QuotaExceeded
from .recent import RecentTimes

WINDOW_S = 60.0
BUSY = ("Your earlier upload is still being added: these files were not added. "
        "Add them again once it is done.")


@dataclass(frozen=True)
class Admission:
    """How many of an upload's files, from the first, fit the visitor's allowance, and why the rest do not."""

    files: int
    refusal: str = ""  # "" when all fit


class FairShare:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._recent = RecentTimes(WINDOW_S)

    @contextmanager
    def admit(self, visitor: str, sizes: Sequence[int], held_images: int, held_bytes: int) -> Iterator[Admission]:
        """Hold the visitor's one indexing slot while the body runs, for as many of the files (their
        sizes in bytes, in order) as fit; raise QuotaExceeded when none does (or a job of theirs runs)."""
        with self._lock:
            if visitor in self._busy:
                raise QuotaExceeded(BUSY)
            now = self.clock()
            recent = self._recent.times(visitor, now)
            free_in = WINDOW_S - (now - recent[0]) if recent else WINDOW_S  # the window's first upload leaves it
            fits, refusal = self._fitting(sizes, len(recent), held_images, held_bytes, free_in)
            if fits == 0 and sizes:
                raise QuotaExceeded(refusal)
            self._recent.add(visitor, now, fits)
            self._busy.add(visitor)
        try:
            yield Admission(fits, refusal)
        finally:
            with self._lock:
                self._busy.discard(visitor)

    def _fitting(self, sizes: Sequence[int], recent: int, held_images: int, held_bytes: int,
                 free_in: float) -> tuple[int, str]:
        """How many of the files fit every cap, taken in order, and the first cap that stops the next
        one; `free_in`: seconds until the minute's first upload leaves the window."""
        s = self.settings
        total = held_bytes
        for n, size in enumerate(sizes):
            if recent + n >= s.visitor_uploads_per_minute:
                return n, (f"At most {s.visitor_uploads_per_minute} images a minute per visitor: "
                           f"try again in {max(1, round(free_in))} s.")
            if held_images + n >= s.visitor_max_images:
                return n, (f"Each visitor may keep {s.visitor_max_images} images and you have "
                           f"{held_images + n}: delete some in the Library, or add fewer.")
            if total + size > s.visitor_max_bytes:
                return n, (f"Each visitor may keep {s.visitor_max_mb:g} MB of images and you have "
                           f"{total / 2**20:.1f} MB: delete some in the Library, or add smaller files.")
            total += size
        return len(sizes), ""

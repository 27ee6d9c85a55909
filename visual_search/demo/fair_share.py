"""Per-visitor caps of a public demo: images and bytes kept, uploads a minute, one indexing job at a time.

`admit` checks everything before anything is written: a refused upload leaves nothing behind.
The clock is injectable so tests need no waiting.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from ..config import Settings
from ..errors import QuotaExceeded
from .recent import RecentTimes

WINDOW_S = 60.0


class FairShare:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._recent = RecentTimes(WINDOW_S)

    @contextmanager
    def admit(self, visitor: str, files: int, size: int, held_images: int, held_bytes: int) -> Iterator[None]:
        """Hold the visitor's one indexing slot while the body runs, or raise QuotaExceeded."""
        s = self.settings
        with self._lock:
            if visitor in self._busy:
                raise QuotaExceeded("Your previous images are still being added: wait until they are done.")
            now = self.clock()
            recent = self._recent.times(visitor, now)
            if len(recent) + files > s.visitor_uploads_per_minute:
                wait = WINDOW_S - (now - recent[0]) if recent else WINDOW_S
                raise QuotaExceeded(f"At most {s.visitor_uploads_per_minute} images a minute per visitor: "
                                    f"try again in {max(1, round(wait))} s.")
            if held_images + files > s.visitor_max_images:
                raise QuotaExceeded(f"Each visitor may keep {s.visitor_max_images} images and you have "
                                    f"{held_images}: delete some in the Library, or add fewer.")
            if held_bytes + size > s.visitor_max_bytes:
                raise QuotaExceeded(f"Each visitor may keep {s.visitor_max_mb:g} MB of images and you have "
                                    f"{held_bytes / 2**20:.1f} MB: delete some in the Library, or add smaller files.")
            self._recent.add(visitor, now, files)
            self._busy.add(visitor)
        try:
            yield
        finally:
            with self._lock:
                self._busy.discard(visitor)

"""When recent events happened, per key, over a sliding window: the memory behind the public demo's
rate limits (uploads a minute per visitor, wrong curator passwords per address and in all)."""

from __future__ import annotations

from collections import deque

FORGET_PAST = 10_000  # keys kept before those whose events have all left the window are forgotten


class RecentTimes:
    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._times: dict[str, deque[float]] = {}

    def times(self, key: str, now: float) -> deque[float]:
        """The key's event times still inside the window, oldest first (the stored deque itself, not a copy)."""
        times = self._times.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window_s:
            times.popleft()
        return times

    def add(self, key: str, now: float, n: int = 1) -> None:
        self._times.setdefault(key, deque()).extend([now] * n)
        if len(self._times) > FORGET_PAST:
            for old in [k for k, q in self._times.items() if not q or now - q[-1] >= self.window_s]:
                del self._times[old]

    def forget(self, key: str) -> None:
        self._times.pop(key, None)

    def __len__(self) -> int:
        """Keys remembered: bounded, however many visitors or addresses come and go."""
        return len(self._times)

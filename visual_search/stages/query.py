"""Stage 3 - facilitating search: check the user's query and encode it for both channels.

The query goes through the SAME text encoder as the captions (caption channel) and through CLIP's
text tower (visual channel). Repeated queries (pagination, a workshop typing the same example)
come from a small cache instead of the models.
"""

from __future__ import annotations

import math
import threading
import unicodedata
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ..errors import InvalidQuery

if TYPE_CHECKING:
    from .rank import Calibration
    from .visual import ClipEncoder
    from .embed import TextEncoder


# What to write instead of nothing, by what the text is for.
EMPTY_HINTS = {"query": "describe what you want to see, e.g. 'a dog on the beach'",
               "caption": "write what the picture shows, e.g. 'two brown dogs at a wooden door'"}


def clean_text(text: object, max_chars: int, what: str = "query") -> str:
    """Strip control characters and surplus whitespace; refuse empty or over-long text."""
    if not isinstance(text, str):
        raise InvalidQuery(f"The {what} must be text.")
    cleaned = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text)
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        raise InvalidQuery(f"The {what} is empty: {EMPTY_HINTS.get(what, 'write some words')}.")
    if len(cleaned) > max_chars:
        raise InvalidQuery(f"The {what} is {len(cleaned):,} characters long; the limit is {max_chars:,}.")
    return cleaned


def check_whole(value: object, lo: int, hi: int, what: str) -> int:
    """A whole number in [lo, hi] (a float with a fraction, or text that is not digits, is refused)."""
    try:
        number = int(value)  # type: ignore[arg-type]
        if number != value and not (isinstance(value, str) and value.strip().isdigit()):
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidQuery(f"{what} must be a whole number from {lo} to {hi:,}, got {value!r}.") from None
    if not lo <= number <= hi:
        raise InvalidQuery(f"{what} must be from {lo} to {hi:,}, got {number}.")
    return number


def check_k(k: object, max_k: int) -> int:
    return check_whole(k, 1, max_k, "The number of results")


def check_fraction(value: object, what: str) -> float:
    """A number from 0 to 1 (NaN is refused)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidQuery(f"{what} must be a number from 0 to 1, got {value!r}.") from None
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        raise InvalidQuery(f"{what} must be from 0 to 1, got {value!r}.")
    return number


def check_alpha(alpha: object) -> float:
    return check_fraction(alpha, "The caption/visual weight")


class QueryEncoder:
    """Encodes a query for each channel, with an LRU cache of recent queries per channel."""

    def __init__(self, text_encoder: "TextEncoder", clip: "ClipEncoder", cache_size: int = 256) -> None:
        self._channels = {
            "caption": (text_encoder.encode, OrderedDict()),
            "visual": (clip.encode_texts, OrderedDict()),
        }
        if getattr(text_encoder, "clip", None) is clip:  # VS_TEXT_MODEL=clip: one vector serves both channels
            self._channels["caption"] = self._channels["visual"]
        # both encoders at once only where both say so: ONNX Runtime's. Torch's run one after the other,
        # as chosen in November (docs/benchmarks.md, Levers; the 2026-12-02 runs measured the opposite)
        self.together = (all(getattr(m, "concurrent", False) for m in (text_encoder, clip))
                         and self._channels["caption"] is not self._channels["visual"])
        self.calibration = text_encoder.calibration  # how the caption channel's cosines become relevance
        self._size = cache_size
        self._lock = threading.Lock()

    def calibration_for(self, query: str) -> "Calibration":
        """How the caption channel's cosines of this (cleaned) query become relevance: it depends on
        the query's length (stages/rank.py). The search, How it works and `evaluate` all ask here."""
        return self.calibration.for_query(query)

    def caption(self, query: str) -> np.ndarray:
        """The caption-channel vector (the captions' own text encoder), unit length."""
        return self._encode("caption", query)

    def visual(self, query: str) -> np.ndarray:
        """The visual-channel vector (CLIP's text tower), unit length."""
        return self._encode("visual", query)

    def encode(self, query: str, both: Callable | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(caption-channel vector, visual-channel vector), both at once through `both(first, second)`
        (the search's lanes, search/candidates.py) where the encoders allow it. Both before any store
        work: CLIP's text tower, the longer of the two, then has the cores to itself instead of
        sharing them with the caption channel's index queries."""
        if self.together and both is not None:
            return both(lambda: self.caption(query), lambda: self.visual(query))
        return self.caption(query), self.visual(query)

    def encode_many(self, queries: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Both channels' vectors of many queries in batches, uncached (evaluation runs thousands)."""
        visual = self._channels["visual"][0](queries)
        if self._channels["caption"] is self._channels["visual"]:  # VS_TEXT_MODEL=clip
            return visual, visual
        return self._channels["caption"][0](queries), visual

    def is_cached(self, query: str) -> bool:
        """Both channels' vectors of `query` come from the cache, not the models (explain.py says so)."""
        with self._lock:
            return all(query in cache for _, cache in self._channels.values())

    def _encode(self, channel: str, query: str) -> np.ndarray:
        encode, cache = self._channels[channel]
        with self._lock:
            if query in cache:
                cache.move_to_end(query)
                return cache[query]
        vector = encode([query])[0]
        with self._lock:
            cache[query] = vector
            while len(cache) > self._size:
                cache.popitem(last=False)
        return vector

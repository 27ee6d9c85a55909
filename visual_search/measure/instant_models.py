"""Instant stand-in models: what indexing costs around the models, with the models' own time taken out.

A fixed caption and fixed unit vectors, returned at once. Given a real model's `prepare` (BLIP's
image processor, CLIP's transform), they keep that CPU half: the work a GPU waits on before its
first layer is then timed too, and only the models' compute is left out.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

CAPTION = "a photo taken with a phone"


def _unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class InstantCaptioner:
    identity = "instant-captioner"

    def __init__(self, prepare: Callable[[list], Any] | None = None) -> None:
        if prepare is not None:
            self.prepare = prepare

    def caption(self, images) -> list[str]:
        return [CAPTION] * len(images)

    def caption_prepared(self, inputs) -> list[str]:
        return [CAPTION] * len(inputs)


class InstantTextEncoder:
    identity, dim = "instant-text", 384

    def encode(self, texts) -> np.ndarray:
        return _unit_rows(len(texts), self.dim, 1)


class InstantClip:
    identity, dim, text_dropped = "instant-clip", 512, False

    def __init__(self, prepare: Callable[[list], Any] | None = None) -> None:
        if prepare is not None:
            self.prepare = prepare

    def encode_images(self, images) -> np.ndarray:
        return _unit_rows(len(images), self.dim, 2)

    def encode_prepared(self, inputs) -> np.ndarray:
        return _unit_rows(len(inputs), self.dim, 2)

    def encode_texts(self, texts) -> np.ndarray:
        return _unit_rows(len(texts), self.dim, 3)

    def drop_text_tower(self) -> None:
        pass

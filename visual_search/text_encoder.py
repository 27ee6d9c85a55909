"""Stages 2 and 3 - the text encoder that turns captions (at index time) and queries (at search
time) into unit vectors. The same encoder must serve both, or the vectors are not comparable.

Any object with `identity`, `dim`, `calibration` and `encode(texts) -> (n, dim) float32 array of
unit rows` can replace these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence

import numpy as np

from .device import resolve_device
from .errors import ModelLoadError
from .ranking import CAPTION_TEXT, CLIP_TEXT_TEXT, Calibration

if TYPE_CHECKING:
    from .clip_encoder import ClipEncoder


class TextEncoder(Protocol):
    identity: str
    dim: int
    calibration: Calibration

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class SentenceTransformerEncoder:
    """A sentence-transformers model (default all-MiniLM-L6-v2), hub id or local folder."""

    calibration = CAPTION_TEXT

    def __init__(self, model_id: str, device: str | None = None, batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        self.identity = model_id
        self.batch_size = batch_size
        try:
            self.model = SentenceTransformer(model_id, device=resolve_device(device))
        except Exception as exc:
            raise ModelLoadError(f"cannot load text model {model_id!r}: {exc}") from exc
        self.dim = int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)


class ClipTextEncoder:
    """CLIP's text tower as the caption encoder (VS_TEXT_MODEL=clip): one model for everything."""

    calibration = CLIP_TEXT_TEXT

    def __init__(self, clip: "ClipEncoder") -> None:
        self.clip = clip
        self.identity = f"clip-text:{clip.identity}"
        self.dim = clip.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.clip.encode_texts(texts)

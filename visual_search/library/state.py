"""What the write side works on: the catalog (the truth), the thumbnails, the index, the models and
the one writer. Shared by the indexer, the reconciler and the editor; the search side reads the same
catalog and index."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..config import Settings
from ..models.compute import Compute, Models
from ..models.registry import text_reader
from ..stages.store import CAPTION, VISUAL, VectorStore
from ..stages.tags import Tagger
from .catalog import Catalog, vector_key
from .thumbnails import Thumbnails
from .writer import Writer

Progress = Callable[[int, int, str], None]  # (done, total, message)


@dataclass
class State:
    settings: Settings
    catalog: Catalog
    thumbnails: Thumbnails
    models: Models  # what indexing runs (identities name collections and stored vectors)
    compute: Compute  # the same models behind the compute boundary (maybe a ZeroGPU worker)
    writer: Writer
    open_store: Callable[[], VectorStore]  # the index, opened on first use
    open_tagger: Callable[[], Tagger]

    @property
    def store(self) -> VectorStore:
        return self.open_store()

    @property
    def tagger(self) -> Tagger:
        return self.open_tagger()

    @property
    def text_reader(self):
        """The OCR (stages/ocr.py), or None when VS_OCR turns it off; models/registry.text_reader."""
        return text_reader(self.settings)

    def keys(self) -> tuple[str, str]:
        """The catalog keys of this configuration's caption and visual vectors."""
        return vector_key(CAPTION, self.models.caption_identity), vector_key(VISUAL, self.models.visual_identity)

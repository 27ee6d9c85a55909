"""visual-search: make any image collection searchable by describing what you want to see.

The four stages, one module each:
  1. captioner.py    - understanding images (BLIP)
  2. text_encoder.py + store.py - storing understanding (caption vectors in Chroma)
  3. query.py        - facilitating search (the query through the same encoder)
  4. ranking.py      - generating results (cosine -> relevance in [0, 1], hybrid with CLIP)
engine.py ties them together; clip_encoder.py is the visual channel; catalog.py keeps the stored
originals and records (the truth), intake.py turns untrusted bytes into clean pictures.

Beside the library: web/ (the Gradio app) and measure/ (evaluate and bench). The library never
imports either.
"""

from .config import Settings
from .engine import SearchEngine
from .errors import IndexOutOfDate, InvalidQuery, ModelLoadError, NotFound, RejectedImage, StoreUnavailable, VisualSearchError

__all__ = [
    "Settings", "SearchEngine", "VisualSearchError", "RejectedImage", "InvalidQuery", "NotFound",
    "StoreUnavailable", "ModelLoadError", "IndexOutOfDate",
]

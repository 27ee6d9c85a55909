"""visual-search: make any image collection searchable by describing what you want to see.

The folder shows the design:

  stages/    the four stages, one module each, and the visual channel
               1. caption.py  understanding images (BLIP)
               2. embed.py    the text encoder: captions -> vectors
                  store.py    storing understanding (caption vectors in Chroma)
               3. query.py    facilitating search (the query through the same encoder)
               4. rank.py     generating results (cosine -> relevance in [0, 1], hybrid with CLIP)
               visual.py (CLIP) and tags.py: the visual channel
  engine.py  SearchEngine, the facade the CLI, the app and programs call
  search/    one query's path (searcher.py), filters declared once (filters.py), candidates
  library/   the write side: catalog (the truth), intake, thumbnails, indexing, repair, edits
  models/    model loading (registry.py), the compute boundary (ZeroGPU), ONNX Runtime
  demo/      the public demo's rules: who sees what, fair shares

Front ends beside the library: cli.py, web/ (the Gradio app), measure/ (evaluate and bench), which
cli.py also dispatches to. Nothing in the folders above or engine.py imports a front end.
"""

from .config import Settings
from .engine import SearchEngine
from .errors import IndexOutOfDate, InvalidQuery, ModelLoadError, NotFound, RejectedImage, StoreUnavailable, VisualSearchError

__all__ = [
    "Settings", "SearchEngine", "VisualSearchError", "RejectedImage", "InvalidQuery", "NotFound",
    "StoreUnavailable", "ModelLoadError", "IndexOutOfDate",
]

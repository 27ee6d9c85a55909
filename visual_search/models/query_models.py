"""The models that encode queries (stage 3), and CLIP's tag prompts, wired once per engine.

A query needs the captions' own text encoder (caption channel) and CLIP's text tower (visual
channel). Both run on ONNX Runtime once their exports verified (models/backend.py), else on torch. With
VS_QUERY_DEVICE apart from the models' device (ZeroGPU: cpu), the torch side of queries is a set of
models of its own there, so a search never waits for a GPU hand-over nor spends GPU quota.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from ..stages.query import QueryEncoder
from ..stages.tags import Tagger, model_scale
from .compute import Models
from .memory import release_freed_memory


class QueryModels:
    """Loads each query-side model on first use; thread-safe."""

    def __init__(self, models: Models, clip_text=None) -> None:
        self.settings = models.settings
        self.index_models = models  # the models indexing runs
        self._own: Models | None = None  # the query device's models, when apart
        self._clip_text = clip_text  # a CLIP text side given by the caller
        self._queries: QueryEncoder | None = None
        self._tagger: Tagger | None = None
        self._lock = threading.RLock()
        models.after_clip_load = self.drop_unused_text_tower

    @property
    def models(self) -> Models:
        s = self.settings
        if not s.query_device or s.query_device == s.device:
            return self.index_models
        with self._lock:
            if self._own is None:
                self._own = Models(replace(s, device=s.query_device))
                self._own.after_clip_load = self.drop_unused_text_tower
            return self._own

    @property
    def clip_text(self):
        """CLIP's text tower for queries: ONNX Runtime once its export verified, else the query side's torch CLIP."""
        with self._lock:
            if self._clip_text is None:
                from .backend import clip_text_encoder

                self._clip_text = clip_text_encoder(self.settings, lambda: self.models.clip,
                                                    self.index_models.visual_identity)
                self.drop_unused_text_tower()
            return self._clip_text

    @property
    def text_encoder(self):
        """The caption channel's query encoder: the captions' own (ONNX Runtime when verified), or with
        VS_TEXT_MODEL=clip, CLIP's text tower."""
        if self.settings.clip_text_captions:
            from ..stages.embed import ClipTextEncoder

            return ClipTextEncoder(self.clip_text)
        return self.models.text_encoder

    @property
    def queries(self) -> QueryEncoder:
        with self._lock:
            if self._queries is None:
                self._queries = QueryEncoder(self.text_encoder, self.clip_text)
            return self._queries

    @property
    def tagger(self) -> Tagger:
        """The tag vocabulary's CLIP prompt vectors, encoded once per CLIP model (cached on disk) by the query
        side's text tower, with the image tower's learned temperature."""
        with self._lock:
            if self._tagger is None:
                s = self.settings
                self._tagger = Tagger(self.clip_text, s.tag_vocabulary, s.data_dir / "tags",
                                      scale=model_scale(self.index_models.clip))
            return self._tagger

    def drop_unused_text_tower(self) -> None:
        """Queries on ONNX Runtime: a torch CLIP loaded here only embeds images now (~250 MB less).
        Takes no lock of ours: it runs inside a model's loading."""
        if self._clip_text is None or self.settings.clip_text_captions:
            return
        for side in (self.index_models, self._own):
            clip = side.peek("clip") if side is not None else None
            if clip is not None and clip is not self._clip_text and side.owns("clip") and not clip.text_dropped:
                clip.drop_text_tower()
                release_freed_memory()

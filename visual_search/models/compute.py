"""The compute boundary: every model run, as a function of plain data.

Images in -> captions and vectors out; texts in -> vectors out. The compute functions never open
the catalog or the vector store and keep no state beyond the loaded models, so each can run in
another process and only its return value has to come back. That is how Hugging Face ZeroGPU runs
a `@spaces.GPU` function (a forked worker; arguments and results are pickled), and what lets a
stage be tested or batched alone. The library's write side (library/) stores the results. The one
file a model load may write is a verified ONNX export of a query encoder (backend.py, in
VS_ONNX_DIR), made once per model and library versions.

`Models` loads the three models of one configuration on first use, each built by the class the
registry names (registry.py); `Compute` is the set of functions the write side calls, each
possibly wrapped for a GPU (`GpuWrap`) with a duration estimated from its input.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ..config import Settings
from .registry import builder

if TYPE_CHECKING:
    from PIL import Image

# (function, duration estimate taking the same arguments) -> the callable to use instead.
GpuWrap = Callable[[Callable, Callable[..., float]], Callable]

# Seconds of GPU a call may need, asked for up front (ZeroGPU checks them against the visitor's
# quota). Generous for one H200 slice: BLIP-base captions an image in well under 0.1 s there; the
# fixed part covers moving the models onto the GPU in a fresh worker.
GPU_BASE_S = 10.0
GPU_PER_IMAGE_S = 1.0
GPU_PER_TEXT_S = 0.05
GPU_MAX_S = 120.0


@dataclass(frozen=True)
class Understanding:
    """What the models make of a group of images, row i for image i."""

    captions: list[str]
    caption_vectors: np.ndarray  # (n, text dim) unit rows: the captions through the text encoder
    visual_vectors: np.ndarray | None  # (n, CLIP dim) unit rows, or None when not asked for


def clip_identity(settings: Settings) -> str:
    from ..stages.visual import ClipEncoder

    return ClipEncoder.identity_of(settings.clip_model, settings.clip_pretrained)


class Models:
    """The captioner, the text encoder and CLIP of one configuration, each loaded on first use.

    Tests pass already loaded models; on ZeroGPU the app loads all three at start-up (`load()`) so
    that forked GPU workers inherit them instead of loading them again.
    """

    def __init__(self, settings: Settings, *, captioner=None, text_encoder=None, clip=None) -> None:
        self.settings = settings
        self._captioner, self._text_encoder, self._clip = captioner, text_encoder, clip
        self._given = {name for name, m in (("captioner", captioner), ("text_encoder", text_encoder), ("clip", clip))
                       if m is not None}  # a model the caller gave is theirs: left whole
        self._lock = threading.RLock()
        self.after_clip_load: Callable[[], None] | None = None  # the engine frees CLIP's unused text tower

    @property
    def captioner(self):
        with self._lock:
            if self._captioner is None:
                self._captioner = builder("captioner", self.settings)(self.settings)
            return self._captioner

    @property
    def clip(self):
        with self._lock:
            if self._clip is None:
                self._clip = builder("visual", self.settings)(self.settings)
                if self.after_clip_load is not None:
                    self.after_clip_load()
            return self._clip

    @property
    def text_encoder(self):
        with self._lock:
            if self._text_encoder is None:
                self._text_encoder = builder("text", self.settings)(self.settings, lambda: self.clip)
            return self._text_encoder

    def load(self) -> None:
        """Load all three now (ZeroGPU: before the first GPU worker is forked)."""
        self.captioner, self.clip, self.text_encoder  # noqa: B018

    def loaded(self, name: str) -> bool:
        return getattr(self, f"_{name}") is not None

    def peek(self, name: str):
        """The model if loaded, else None; takes no lock (safe inside another model's loading)."""
        return getattr(self, f"_{name}")

    def owns(self, name: str) -> bool:
        """Loaded here, not given by the caller."""
        return self.loaded(name) and name not in self._given

    # ---- identities: what names the collections and keys the stored vectors, without loading -----
    @property
    def caption_model(self) -> str:
        return self._captioner.identity if self._captioner else self.settings.caption_model

    @property
    def visual_identity(self) -> str:
        return self._clip.identity if self._clip else clip_identity(self.settings)

    @property
    def text_identity(self) -> str:
        if self._text_encoder is not None:
            return self._text_encoder.identity
        if self.settings.clip_text_captions:
            return f"clip-text:{self.visual_identity}"
        return self.settings.text_model

    @property
    def caption_identity(self) -> str:
        """Captions depend on the captioner, their vectors on the text encoder: both name the collection."""
        return f"{self.caption_model}|{self.text_identity}"

    # ---- the compute functions: plain data in, plain data out ------------------------------------
    def understand(self, images: Sequence["Image.Image"], captions: Sequence[str | None] | None = None,
                   visual: bool = True) -> Understanding:
        """Stages 1-2 for a group of images: caption those without a caption, embed every caption,
        and (when `visual`) embed the images with CLIP."""
        given = list(captions) if captions is not None else [None] * len(images)
        todo = [i for i, c in enumerate(given) if c is None]
        if todo:
            written = self.captioner.caption([images[i] for i in todo])
            for i, caption in zip(todo, written):
                given[i] = caption
        final = [str(c) for c in given]
        caption_vectors = self.text_encoder.encode(final)
        visual_vectors = self.clip.encode_images(list(images)) if visual else None
        return Understanding(final, caption_vectors, visual_vectors)

    def caption(self, images: Sequence["Image.Image"]) -> list[str]:
        """Stage 1 alone (the "How it works" tab)."""
        return self.captioner.caption(list(images))

    def embed_captions(self, texts: Sequence[str]) -> np.ndarray:
        """Stage 2 alone: caption texts -> unit vectors (a person's corrected caption)."""
        return self.text_encoder.encode(list(texts))

    def embed_images(self, images: Sequence["Image.Image"]) -> np.ndarray:
        """CLIP image vectors (an uploaded query image for "find similar")."""
        return self.clip.encode_images(list(images))


def _seconds(n_images: int = 0, n_texts: int = 0) -> float:
    return min(GPU_MAX_S, GPU_BASE_S + GPU_PER_IMAGE_S * n_images + GPU_PER_TEXT_S * n_texts)


def understand_seconds(images, captions=None, visual=True) -> float:
    return _seconds(n_images=len(images))


def images_seconds(images) -> float:
    return _seconds(n_images=len(images))


def texts_seconds(texts) -> float:
    return _seconds(n_texts=len(texts))


def no_gpu(fn: Callable, _duration: Callable[..., float]) -> Callable:
    """The wrap for everywhere but ZeroGPU: call the function as it is."""
    return fn


class Compute:
    """The compute functions the engine calls, each wrapped once by `gpu` (ZeroGPU) or used as is."""

    def __init__(self, models: Models, gpu: GpuWrap | None = None) -> None:
        wrap = gpu or no_gpu
        self.models = models
        self.understand = wrap(models.understand, understand_seconds)
        self.caption = wrap(models.caption, images_seconds)
        self.embed_captions = wrap(models.embed_captions, texts_seconds)
        self.embed_images = wrap(models.embed_images, images_seconds)

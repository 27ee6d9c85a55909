"""The compute boundary: every model run, as a function of plain data.

Images in -> captions and vectors out; texts in -> vectors out. The compute functions never open
the catalog or the vector store and keep no state beyond the loaded models, so each can run in
another process and only its return value has to come back. That is how Hugging Face ZeroGPU runs
a `@spaces.GPU` function (a forked worker; arguments and results are pickled), and what lets a
stage be tested or batched alone. The library's write side (library/) stores the results. The one
file a model load may write is a verified ONNX export of a query encoder (backend.py, in
VS_ONNX_DIR), made once per model and library versions.

Image work is split in two: `Models.prepare` runs the processors where the images are (the app's
process, on the CPU) and makes small arrays at the models' input size; `understand_prepared` runs
the models only. A GPU worker then gets model-ready inputs, not full bitmaps, and spends none of a
visitor's GPU time on preprocessing (a worker may also be a fresh fork: models/fork_safety.py).

`Models` loads the three models of one configuration on first use, each built by the class the
registry names (registry.py); `Compute` is the set of functions the write side calls, the model
halves possibly wrapped for a GPU (`GpuWrap`) with a duration estimated from their input.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

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
# On a GPU, images go to one call in chunks sized from the throughput measured so far (hand-over
# included): a chunk aims at GPU_CHUNK_S of GPU time, and its duration follows the same figure.
GPU_FIRST_CHUNK = 32  # before anything was measured (an upload of up to 32 images: one call)
GPU_CHUNK_S = 30.0
GPU_MAX_CHUNK = 64  # the batch at which BLIP-base on an H200 is near its best; holds the originals in memory
CPU_GROUP = 8  # without a GPU wrap: images understood and written together (progress granularity)


@dataclass(frozen=True)
class Understanding:
    """What the models make of a group of images, row i for image i."""

    captions: list[str]
    caption_vectors: np.ndarray  # (n, text dim) unit rows: the captions through the text encoder
    visual_vectors: np.ndarray | None  # (n, CLIP dim) unit rows, or None when not asked for


@dataclass(frozen=True)
class Prepared:
    """Model-ready inputs for a group of images, made in the app's process (`Models.prepare`)."""

    n: int  # images in the group
    captions: list[str | None]  # given captions; None: to be written by the captioner
    caption_inputs: Any  # the captioner's input for the images without a caption (in order)
    visual_inputs: Any  # CLIP's input for every image, or None when not asked for

    @staticmethod
    def join(parts: Sequence["Prepared"]) -> "Prepared":
        """One group's inputs from its images' own (`Models.prepare` of one image each, made on the
        intake threads): arrays stacked, a stand-in model's lists of images concatenated."""
        return Prepared(sum(p.n for p in parts), [c for p in parts for c in p.captions],
                        _joined([p.caption_inputs for p in parts]), _joined([p.visual_inputs for p in parts]))


def _joined(inputs: list[Any]) -> Any:
    present = [x for x in inputs if x is not None]
    if not present:
        return None
    if isinstance(present[0], np.ndarray):
        return np.concatenate(present)
    return [item for x in present for item in x]


def _prepare(model: Any, images: Sequence["Image.Image"]) -> Any:
    """The model's own CPU half when it has one (arrays), else the images themselves (a stand-in model)."""
    prepare = getattr(model, "prepare", None)
    return prepare(list(images)) if prepare is not None else list(images)


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
        return self.understand_prepared(self.prepare(images, captions, visual))

    def prepare(self, images: Sequence["Image.Image"], captions: Sequence[str | None] | None = None,
                visual: bool = True) -> Prepared:
        """The CPU half of `understand`, run where the images are."""
        given = list(captions) if captions is not None else [None] * len(images)
        todo = [images[i] for i, c in enumerate(given) if c is None]
        return Prepared(len(images), given, _prepare(self.captioner, todo) if todo else None,
                        _prepare(self.clip, images) if visual else None)

    def understand_prepared(self, prepared: Prepared) -> Understanding:
        """The models' half of `understand`: what a GPU worker runs."""
        given = list(prepared.captions)
        if prepared.caption_inputs is not None:
            written = self.caption_prepared(prepared.caption_inputs)
            for i, caption in zip([i for i, c in enumerate(given) if c is None], written):
                given[i] = caption
        final = [str(c) for c in given]
        caption_vectors = self.text_encoder.encode(final)
        visual_vectors = self.embed_prepared(prepared.visual_inputs) if prepared.visual_inputs is not None else None
        return Understanding(final, caption_vectors, visual_vectors)

    def caption(self, images: Sequence["Image.Image"]) -> list[str]:
        """Stage 1 alone (the "How it works" tab)."""
        return self.caption_prepared(self.prepare_captions(images))

    def prepare_captions(self, images: Sequence["Image.Image"]) -> Any:
        return _prepare(self.captioner, images)

    def caption_prepared(self, inputs: Any) -> list[str]:
        run = getattr(self.captioner, "caption_prepared", None)
        return run(inputs) if run is not None else self.captioner.caption(inputs)

    def prepare_images(self, images: Sequence["Image.Image"]) -> Any:
        return _prepare(self.clip, images)

    def embed_prepared(self, inputs: Any) -> np.ndarray:
        run = getattr(self.clip, "encode_prepared", None)
        return run(inputs) if run is not None else self.clip.encode_images(inputs)

    def embed_captions(self, texts: Sequence[str]) -> np.ndarray:
        """Stage 2 alone: caption texts -> unit vectors (a person's corrected caption)."""
        return self.text_encoder.encode(list(texts))

    def embed_images(self, images: Sequence["Image.Image"]) -> np.ndarray:
        """CLIP image vectors (an uploaded query image for "find similar")."""
        return self.embed_prepared(self.prepare_images(images))


def _seconds(n_images: int = 0, n_texts: int = 0) -> float:
    return min(GPU_MAX_S, GPU_BASE_S + GPU_PER_IMAGE_S * n_images + GPU_PER_TEXT_S * n_texts)


def prepared_seconds(prepared: Prepared) -> float:
    return _seconds(n_images=prepared.n)


def inputs_seconds(inputs) -> float:
    return _seconds(n_images=len(inputs))


def texts_seconds(texts) -> float:
    return _seconds(n_texts=len(texts))


class Throughput:
    """Images per second of the GPU calls so far: sizes the next chunk and the duration it asks."""

    def __init__(self) -> None:
        self.rate: float | None = None
        self._lock = threading.Lock()

    def record(self, n: int, seconds: float) -> None:
        if n <= 0 or seconds <= 0:
            return
        with self._lock:
            rate = n / seconds
            self.rate = rate if self.rate is None else 0.5 * (self.rate + rate)

    def chunk(self) -> int:
        if self.rate is None:
            return GPU_FIRST_CHUNK
        return max(CPU_GROUP, min(GPU_MAX_CHUNK, int(self.rate * GPU_CHUNK_S)))

    def seconds(self, prepared: "Prepared") -> float:
        """Asked up front: the fixed part plus twice the measured time (or the per-image guess)."""
        if self.rate is None:
            return prepared_seconds(prepared)
        return min(GPU_MAX_S, GPU_BASE_S + 2.0 * prepared.n / self.rate)


def no_gpu(fn: Callable, _duration: Callable[..., float]) -> Callable:
    """The wrap for everywhere but ZeroGPU: call the function as it is."""
    return fn


class Compute:
    """The compute functions the engine calls: inputs prepared here, the model halves each wrapped
    once by `gpu` (ZeroGPU) or used as they are."""

    def __init__(self, models: Models, gpu: GpuWrap | None = None) -> None:
        wrap = gpu or no_gpu
        self.models = models
        self.on_gpu = gpu is not None
        self.throughput = Throughput()
        self._device_group: int | None = None
        self._device: str | None = None
        self._understand = wrap(models.understand_prepared, self.throughput.seconds)
        self._caption = wrap(models.caption_prepared, inputs_seconds)
        self.embed_captions = wrap(models.embed_captions, texts_seconds)
        self._embed = wrap(models.embed_prepared, inputs_seconds)

    def group_size(self) -> int:
        """Images to understand in one call: on ZeroGPU a chunk sized from the measured throughput; on a
        CUDA device of this process the captioning batch (large, capped by the memory free there: a
        GPU kept busy); else CPU_GROUP."""
        if self.on_gpu:
            return self.throughput.chunk()
        if self._device_group is None:  # once: it imports torch, and asks CUDA for its free memory
            from .device import caption_batch

            self._device_group = (max(CPU_GROUP, caption_batch(self.models.settings.caption_batch, self.device()))
                                  if self.gpu_here() else CPU_GROUP)
        return self._device_group

    def gpu_here(self) -> bool:
        """Whether the models run on a GPU of this process (not ZeroGPU's: its app process has none)."""
        return not self.on_gpu and self.device().startswith("cuda")

    def device(self) -> str:
        """Where this process runs the models: VS_DEVICE, else CUDA when present, else the CPU."""
        if self._device is None:
            from .device import resolve_device

            self._device = resolve_device(self.models.settings.device)
        return self._device

    def understand(self, images: Sequence["Image.Image"], captions: Sequence[str | None] | None = None,
                   visual: bool = True) -> Understanding:
        return self.understand_prepared(self.models.prepare(images, captions, visual))

    def understand_prepared(self, prepared: Prepared) -> Understanding:
        """The models' half, on the GPU when wrapped; its time sizes the next chunk."""
        t0 = time.perf_counter()
        got = self._understand(prepared)
        self.throughput.record(prepared.n, time.perf_counter() - t0)
        return got

    def caption(self, images: Sequence["Image.Image"]) -> list[str]:
        return self._caption(self.models.prepare_captions(images))

    def embed_images(self, images: Sequence["Image.Image"]) -> np.ndarray:
        return self._embed(self.models.prepare_images(images))

"""Which runtime encodes queries: ONNX Runtime when the model's export verified, else torch.

VS_BACKEND=auto (default) exports each query encoder on first use (models/onnxrt/export.py), holds the
export to torch on probe texts, caches it (models/onnxrt/cache.py) and from then on encodes with ONNX
Runtime: queries in about half the time (docs/benchmarks.md), and a search process that never
imports torch, transformers or open_clip. An export that does not verify is remembered with its reason and logged, and torch
serves that encoder. VS_BACKEND=onnx makes a refusal an error; VS_BACKEND=torch never exports.
The ONNX encoders compute the same vectors (cosine >= 0.99999 to torch's), so they share the
torch encoders' identities and collections.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

from ..config import Settings
from ..errors import ModelLoadError

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def caption_encoder(settings: Settings, load_torch: Callable[[], _T]) -> _T:
    """The caption-channel text encoder (a sentence-transformers model; not VS_TEXT_MODEL=clip)."""
    from .onnxrt.encoders import OnnxTextEncoder

    identity = settings.text_model

    def make(enc, folder):
        from .onnxrt import export

        meta = export.export_text_encoder(enc, folder)
        ours = OnnxTextEncoder(folder, identity, meta)
        return meta, export.verify(
            lambda ts: enc.tokens(enc.spec.prepare(ts))["input_ids"].tolist(),
            lambda ts: ours.tokens(ours.spec.prepare(ts))["input_ids"].tolist(), enc.encode, ours.encode)

    def on_cpu():
        from ..stages.embed import SentenceTransformerEncoder

        return SentenceTransformerEncoder(identity, "cpu")

    return _choose(settings, "text", identity, [identity], load_torch, on_cpu, make,
                   lambda folder: OnnxTextEncoder(folder, identity))


def clip_text_encoder(settings: Settings, load_clip: Callable[[], _T], identity: str):
    """CLIP's text tower for the visual channel's queries: an `OnnxClipText`, or the torch `ClipEncoder`."""
    from .onnxrt.encoders import OnnxClipText

    def make(clip, folder):
        from .onnxrt import export

        meta = export.export_clip_text(clip, folder)
        ours = OnnxClipText(folder, identity, meta)
        return meta, export.verify(lambda ts: clip.tokenizer(ts).tolist(), lambda ts: ours.tokenizer(ts).tolist(),
                                   clip.encode_texts, ours.encode_texts)

    def on_cpu():
        from ..stages.visual import ClipEncoder

        return ClipEncoder(settings.clip_model, settings.clip_pretrained, "cpu")

    sources = [settings.clip_model, settings.clip_pretrained or ""]
    return _choose(settings, "clip-text", identity, sources, load_clip, on_cpu, make,
                   lambda folder: OnnxClipText(folder, identity))


def _choose(settings: Settings, kind: str, identity: str, sources: list[str], load_torch: Callable[[], _T],
            load_cpu: Callable[[], _T], make: Callable, load_onnx: Callable) -> _T:
    """The ONNX encoder from a verified export (exporting it first if there is none), or torch's.
    Exports are made from a CPU model: `load_cpu` gives one when `load_torch`'s is on a GPU."""
    if settings.backend == "torch":
        return load_torch()
    from .onnxrt.cache import Entry

    entry = Entry(settings.onnx_cache, kind, identity, sources)
    torch_model = None
    meta = entry.read()
    if meta is None:
        with entry.exclusive():  # another process may be exporting the same model: wait for it
            meta = entry.read()
            if meta is None:
                torch_model = load_torch()
                on_cpu = torch_model if str(getattr(torch_model, "device", "cpu")) == "cpu" else load_cpu()
                meta = _export(entry, on_cpu, make, kind, identity)
    reason = meta.get("reason") or "it did not verify"
    if meta.get("verified"):
        try:
            return load_onnx(entry.folder)
        except Exception as exc:  # a damaged cache: drop it, the next process exports again
            entry.discard()
            reason = f"its export could not be loaded ({type(exc).__name__}: {str(exc)[:160]})"
    if settings.backend == "onnx":
        raise ModelLoadError(f"VS_BACKEND=onnx, but the {kind} encoder {identity!r} cannot run on ONNX Runtime: "
                             f"{reason}. Unset VS_BACKEND to use torch for it.")
    log.warning("%s encoder %s runs on torch: %s", kind, identity, reason)
    return torch_model if torch_model is not None else load_torch()


def _export(entry, torch_model, make: Callable, kind: str, identity: str) -> dict:
    from .onnxrt import export

    log.info("exporting the %s encoder %s to ONNX (once per model and library versions)", kind, identity)
    started = time.perf_counter()
    with entry.staging() as folder:
        try:
            meta, (refusal, worst) = make(torch_model, folder)
        except export.ExportRefused as exc:
            meta, refusal, worst = {}, str(exc), 0.0
        except Exception as exc:  # an op the exporter lacks, a model too large for one file, ...
            meta, refusal, worst = {}, export.failure(exc), 0.0
        meta = export.finish(folder, {**meta, **entry.key}, refusal, worst, started)
    log.info("%s encoder %s: %s in %.0f s", kind, identity,
             "ONNX export verified" if meta["verified"] else f"ONNX export refused: {meta['reason']}", meta["export_s"])
    return meta

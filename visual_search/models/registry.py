"""Which class builds each model: role -> family -> a builder. Model identity is data.

A role is what the pipeline needs (a captioner, the caption channel's text encoder, the visual
channel's CLIP); a family is a kind of model that can fill it; the model itself is named by
configuration (a hub id or a local folder), never by an `if name == ...` in the code. The family
comes from VS_CAPTION_FAMILY / VS_TEXT_FAMILY / VS_VISUAL_FAMILY (config.py), each with a default.

To add a captioner: write the class in stages/caption.py (an `identity` and `caption(images)`), add
one line to CAPTIONERS below, and a tiny test model that loads through it (tests/tiny_models.py).
"""

from __future__ import annotations

from typing import Callable

from ..config import Settings
from ..errors import ModelLoadError


def _blip(s: Settings):
    from ..stages.caption import BlipCaptioner
    from . import precision
    from .device import caption_batch, resolve_device

    batch = caption_batch(s.caption_batch, resolve_device(s.device))
    model = BlipCaptioner(s.caption_model, s.device, max_new_tokens=s.caption_max_tokens, batch_size=batch)
    return precision.apply(model, s.precision, precision.check_blip, "captioner")


def _open_clip(s: Settings):
    from ..stages.visual import ClipEncoder
    from . import precision

    return precision.apply(ClipEncoder(s.clip_model, s.clip_pretrained, s.device), s.precision, precision.check_clip,
                           "CLIP")


def _sentence_transformers(s: Settings, clip: Callable[[], object]):
    from ..stages.embed import SentenceTransformerEncoder
    from .backend import caption_encoder

    # ONNX Runtime once its export verified (models/backend.py): the same vectors
    return caption_encoder(s, lambda: SentenceTransformerEncoder(s.text_model, s.device))


def _clip_text(s: Settings, clip: Callable[[], object]):
    from ..stages.embed import ClipTextEncoder

    return ClipTextEncoder(clip())  # captions and queries in CLIP's own text space


CAPTIONERS: dict[str, Callable[[Settings], object]] = {"blip": _blip}
VISUAL: dict[str, Callable[[Settings], object]] = {"open_clip": _open_clip}
# text encoders may build on the loaded CLIP (given as a loader, so that others need not load it)
TEXT_ENCODERS: dict[str, Callable[[Settings, Callable[[], object]], object]] = {
    "sentence-transformers": _sentence_transformers, "clip": _clip_text,
}
ROLES = {"captioner": ("VS_CAPTION_FAMILY", CAPTIONERS), "text": ("VS_TEXT_FAMILY", TEXT_ENCODERS),
         "visual": ("VS_VISUAL_FAMILY", VISUAL)}


def builder(role: str, settings: Settings) -> Callable:
    """The builder of `role`'s configured family; a family nobody registered is a clear error."""
    env, families = ROLES[role]
    family = settings.family(role)
    try:
        return families[family]
    except KeyError:
        raise ModelLoadError(f"{env}={family!r} is not a known {role} family; choose one of "
                             f"{', '.join(sorted(families))}.") from None


def text_reader(settings: Settings):
    """The OCR that reads the words in pictures (stages/ocr.py), or None when VS_OCR turns it off (or
    `auto` finds no rapidocr installed). One per process: its models load on the first picture read."""
    from ..stages.ocr import rapidocr_version, shared_reader

    if settings.ocr == "off" or (settings.ocr == "auto" and rapidocr_version() is None):
        return None
    if rapidocr_version() is None:
        raise ModelLoadError("VS_OCR=on, but the rapidocr package is not installed: "
                             "pip install -r requirements.txt, or set VS_OCR=auto or off.")
    return shared_reader()

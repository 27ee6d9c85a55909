"""Stage 1 - understanding images: a captioner answers "what does this image describe?".

Any object with `identity` and `caption(images) -> list[str]` can stand in for `BlipCaptioner`.
BlipCaptioner also splits the work in two, so that the half on the CPU can run where the images are
(the app's process) and only the model's half on a GPU worker: `prepare(images)` -> pixel values (a
small array at BLIP's input size), `caption_prepared(pixels)` -> captions.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
import torch
from PIL import Image

from ..models.device import resolve_device
from ..models.load_errors import model_load_error


class Captioner(Protocol):
    identity: str

    def caption(self, images: Sequence[Image.Image]) -> list[str]: ...


class BlipCaptioner:
    """BLIP image captioning through `transformers`, greedy decoding, in inference mode.

    `model_id` is a hub id (default Salesforce/blip-image-captioning-base) or a local folder made
    by `save_pretrained`. `min_new_tokens` forces a fixed length (benchmarks on random weights,
    which never emit the end token); leave it 0 for real use.
    """

    def __init__(
        self,
        model_id: str,
        device: str | None = None,
        max_new_tokens: int = 30,
        batch_size: int = 1,
        min_new_tokens: int = 0,
    ) -> None:
        from transformers import BlipForConditionalGeneration, BlipProcessor

        self.identity = model_id
        self.device = resolve_device(device)
        self.max_new_tokens = max_new_tokens
        self.min_new_tokens = min_new_tokens
        self.batch_size = max(1, batch_size)
        try:
            self.processor = BlipProcessor.from_pretrained(model_id)
            self.model = BlipForConditionalGeneration.from_pretrained(model_id, dtype=torch.float32)
        except Exception as exc:  # many loader errors (OSError, ValueError, hub errors)
            raise model_load_error("captioning model", model_id, "VS_CAPTION_MODEL", exc) from exc
        self.model.to(self.device).eval()
        self.dtype = torch.float32  # models/precision.py may hand out a 16-bit copy

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        return self.caption_prepared(self.prepare(images))

    def prepare(self, images: Sequence[Image.Image]) -> np.ndarray:
        """The processor's half (CPU): (n, 3, size, size) float32 pixel values."""
        if not images:
            return np.zeros((0, 3, 1, 1), np.float32)
        return np.asarray(self.processor(images=list(images), return_tensors="np")["pixel_values"], np.float32)

    @torch.inference_mode()
    def caption_prepared(self, pixels: np.ndarray) -> list[str]:
        """The model's half: greedy decoding, `batch_size` images at a time."""
        captions: list[str] = []
        for start in range(0, len(pixels), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(pixels[start : start + self.batch_size]))
            batch = batch.to(self.device, dtype=self.dtype)
            out = self.model.generate(
                pixel_values=batch,
                max_new_tokens=self.max_new_tokens,
                min_new_tokens=self.min_new_tokens or None,
                num_beams=1,
                do_sample=False,
            )
            texts = self.processor.batch_decode(out, skip_special_tokens=True)
            captions.extend(_clean(t) for t in texts)
        return captions


def _clean(text: str) -> str:
    text = " ".join(text.split())
    return text or "(no caption)"

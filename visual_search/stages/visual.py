"""The visual channel: a CLIP model (open_clip) that embeds images, and text queries into the same space.

`model_name` is any name open_clip accepts (`ViT-B-32`, `local-dir:/path`, `hf-hub:org/repo`);
`pretrained` a tag (`laion2b_s34b_b79k`) or a weights file, ignored for `local-dir:`/`hf-hub:`.
torch is imported when a model loads, not with this module: naming a model (`identity_of`) must
not cost a search on ONNX Runtime the torch import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..models.device import resolve_device
from ..models.load_errors import model_load_error

if TYPE_CHECKING:
    import torch
    from PIL import Image

SELF_CONTAINED = ("local-dir:", "hf-hub:")  # names that carry their own weights: `pretrained` is ignored
# open_clip's text tower: CLIP's own layers, or CustomTextCLIP's `text` module
_TEXT_PARTS = ("transformer", "token_embedding", "positional_embedding", "ln_final", "text_projection", "text")


class ClipEncoder:
    def __init__(
        self, model_name: str, pretrained: str | None = None, device: str | None = None, batch_size: int = 32
    ) -> None:
        import open_clip

        if model_name.startswith(SELF_CONTAINED):
            pretrained = None  # the folder / hub repo carries its own weights
        self.identity = self.identity_of(model_name, pretrained)
        self.device = resolve_device(device)
        self.batch_size = batch_size
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained, device=self.device
            )
            self.tokenizer = open_clip.get_tokenizer(model_name)
        except Exception as exc:
            raise model_load_error("CLIP model", self.identity, "VS_CLIP_MODEL (and VS_CLIP_PRETRAINED)", exc) from exc
        self.model = model.eval()
        self.dtype = next(model.parameters()).dtype  # models/precision.py may hand out a 16-bit copy
        self.preprocess = preprocess
        self.dim = int(self.encode_texts(["a photo"]).shape[1])

    @staticmethod
    def identity_of(model_name: str, pretrained: str | None) -> str:
        """What names the visual collection: the architecture and its weights."""
        if model_name.startswith(SELF_CONTAINED) or not pretrained:
            return model_name
        return f"{model_name}@{pretrained}"

    def encode_images(self, images: Sequence["Image.Image"]) -> np.ndarray:
        """Unit vectors, one row per image, batched through the image tower."""
        return self.encode_prepared(self.prepare(images))

    def prepare(self, images: Sequence["Image.Image"]) -> np.ndarray:
        """The preprocessing half (CPU, where the images are): (n, 3, size, size) float32."""
        import torch

        if not images:
            return np.zeros((0, 3, 1, 1), np.float32)
        with torch.inference_mode():
            return torch.stack([self.preprocess(im) for im in images]).numpy()

    def encode_prepared(self, pixels: np.ndarray) -> np.ndarray:
        """The image tower's half: preprocessed pixels -> unit vectors, `batch_size` at a time."""
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(pixels), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(pixels[start : start + self.batch_size]))
                features = self.model.encode_image(batch.to(self.device, dtype=self.dtype))
                out.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors, one row per text."""
        import torch

        if self.text_dropped:
            raise RuntimeError("this CLIP encoder's text tower was freed: queries are encoded on ONNX Runtime")
        with torch.inference_mode():
            tokens = self.tokenizer(list(texts)).to(self.device)
            features = self._encode_tokens(tokens)
            return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy().astype(np.float32)

    text_dropped = False

    def drop_text_tower(self) -> None:
        """Free the text tower's weights (63M parameters, ~250 MB, for ViT-B-32) when queries are
        encoded elsewhere (the ONNX export, models/backend.py) and this model only embeds images."""
        import torch

        parts = [name for name, child in [*self.model.named_children(), *self.model.named_parameters(recurse=False)]
                 if name in _TEXT_PARTS and isinstance(child, (torch.nn.Module, torch.nn.Parameter))]
        for name in parts:
            setattr(self.model, name, None)
        if parts:
            self.text_dropped = True

    @property
    def trimmable(self) -> bool:
        """CLIP's text transformer is causal and pools at the end-of-text token, so positions after
        it never influence the result: the tower can run only as far as the longest real text (not
        all 77 positions), the same vector 3-8x faster for short queries. Models of another shape
        (no causal mask, other pooling) take the full path."""
        m = self.model
        return (getattr(m, "attn_mask", None) is not None and getattr(m, "text_pool_type", None) == "argmax"
                and hasattr(m, "token_embedding"))

    def _encode_tokens(self, tokens: "torch.Tensor") -> "torch.Tensor":
        if not self.trimmable:
            return self.model.encode_text(tokens)
        length = int(tokens.argmax(dim=-1).max()) + 1  # the end token has the highest id
        return self.text_tower(tokens[:, :length])

    def text_tower(self, tokens: "torch.Tensor") -> "torch.Tensor":
        """The text tower on tokens already cut after the longest text's end token (`trimmable`
        models only); what the ONNX export runs too (models/onnxrt/export.py)."""
        import torch

        m, length = self.model, tokens.shape[1]
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(tokens).to(cast) + m.positional_embedding[:length].to(cast)
        x = m.transformer(x, attn_mask=m.attn_mask[:length, :length])
        x = m.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        if m.text_projection is not None:
            x = m.text_projection(x) if isinstance(m.text_projection, torch.nn.Linear) else x @ m.text_projection
        return x

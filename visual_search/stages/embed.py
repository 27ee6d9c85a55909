"""Stages 2 and 3 - the text encoder that turns captions (at index time) and queries (at search
time) into unit vectors. The same encoder must serve both, or the vectors are not comparable.

Any object with `identity`, `dim`, `calibration` and `encode(texts) -> (n, dim) float32 array of
unit rows` can replace these (models/onnxrt/encoders.py runs the same models on ONNX Runtime). torch and
transformers are imported when a model loads, not with this module.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

import numpy as np

from ..models.device import resolve_device
from ..errors import ModelLoadError
from ..models.load_errors import model_load_error
from .rank import CAPTION_TEXT, CLIP_TEXT_TEXT, Calibration

if TYPE_CHECKING:
    import torch

    from .visual import ClipEncoder


class TextEncoder(Protocol):
    identity: str
    dim: int
    calibration: Calibration

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class SentenceTransformerEncoder:
    """A sentence-transformers model (default all-MiniLM-L6-v2), hub id or local folder, run with
    plain `transformers`: the transformer, the model's own pooling, then unit length.

    Why not the sentence-transformers library: its `encode()` wrapper costs ~1.1 ms of a ~5.7 ms
    query, and importing it adds ~126 MB of resident memory on top of open_clip's imports
    (scikit-learn, scipy; docs/benchmarks.md), while these models are a transformer plus a pooling
    rule written in two small JSON files. Supported module stacks: Transformer -> Pooling (cls /
    mean / max / mean_sqrt_len, or several concatenated) -> optional Normalize; a folder without
    `modules.json` is a plain transformer with mean pooling, as sentence-transformers treats it.
    Anything else (Dense layers, ...) is refused by name.
    """

    calibration = CAPTION_TEXT

    def __init__(self, model_id: str, device: str | None = None, batch_size: int = 64) -> None:
        self.identity = model_id
        self.batch_size = batch_size
        self.device = resolve_device(device)
        try:
            spec = _read_spec(model_id)
            import torch
            from transformers import AutoModel, AutoTokenizer

            where = {"subfolder": spec.folder} if spec.folder else {}
            self.tokenizer = AutoTokenizer.from_pretrained(model_id, **where)
            self.model = AutoModel.from_pretrained(model_id, dtype=torch.float32, **where).to(self.device).eval()
        except ModelLoadError:
            raise
        except Exception as exc:  # many loader errors (OSError, ValueError, hub errors)
            raise model_load_error("text model", model_id, "VS_TEXT_MODEL", exc) from exc
        self.spec = spec
        self.max_length = min(spec.max_seq_length or self.tokenizer.model_max_length, self.tokenizer.model_max_length)
        self.dim = int(self.encode(["a photo"]).shape[1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit rows; texts are batched longest first, so a batch pads to similar lengths."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        texts = self.spec.prepare(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = self.tokens([texts[i] for i in order[start : start + self.batch_size]]).to(self.device)
                chunks.append(self.vectors(batch))
        out = np.empty((len(texts), chunks[0].shape[1]), np.float32)
        out[order] = torch.cat(chunks).cpu().numpy()  # back to the callers' order
        return out

    def tokens(self, texts: Sequence[str]):
        """The model's inputs for prepared texts (`ModelSpec.prepare`), padded to the longest, truncated."""
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    def vectors(self, batch: dict) -> "torch.Tensor":
        """Model inputs -> unit vectors: the transformer, the pooling, unit length (exported as is to ONNX)."""
        import torch

        hidden = self.model(**batch).last_hidden_state
        return torch.nn.functional.normalize(_pool(hidden, batch["attention_mask"], self.spec.pooling).float(), dim=-1)


class ClipTextEncoder:
    """CLIP's text tower as the caption encoder (VS_TEXT_MODEL=clip): one model for everything."""

    calibration = CLIP_TEXT_TEXT

    def __init__(self, clip: "ClipEncoder") -> None:
        self.clip = clip
        self.identity = f"clip-text:{clip.identity}"
        self.dim = clip.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.clip.encode_texts(texts)


# ---- reading a sentence-transformers folder --------------------------------------------------------
_POOLING_MODES = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens")
_NEW_NAMES = {"cls": "cls_token", "max": "max_tokens", "mean": "mean_tokens"}


@dataclass(frozen=True)
class ModelSpec:
    pooling: tuple[str, ...] = ("mean_tokens",)  # concatenated in this order, as sentence-transformers does
    max_seq_length: int | None = None
    lowercase: bool = False
    prompt: str = ""  # the model's default prompt, prepended to every text
    folder: str = ""  # where the transformer and tokenizer are inside the model, "" = top level

    def prepare(self, texts: Sequence[str]) -> list[str]:
        """What the tokenizer is given: the prompt, then lower case when the model asks for it."""
        return [(self.prompt + t).lower() if self.lowercase else self.prompt + t for t in texts]


def _read_json(model_id: str, filename: str) -> dict | list | None:
    """A JSON file of a local folder or hub repo; None when the model has no such file."""
    from transformers.utils import cached_file

    path = cached_file(model_id, filename, _raise_exceptions_for_missing_entries=False)
    return json.loads(Path(path).read_text(encoding="utf-8")) if path else None


def _read_spec(model_id: str) -> ModelSpec:
    modules = _read_json(model_id, "modules.json")
    if modules is None:
        return ModelSpec()  # a plain transformers model: mean pooling, like sentence-transformers
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise ModelLoadError(
            f"text model {model_id!r} is built from the modules {kinds}; visual-search runs "
            "Transformer -> Pooling [-> Normalize] models (all-MiniLM-L6-v2, all-mpnet-base-v2, bge, gte, ...)"
        )
    pool = _read_json(model_id, posixpath.join(modules[1]["path"], "config.json")) or {}
    if "pooling_mode" in pool:  # sentence-transformers >= 6: "mean", "cls", ... or a list of them
        named = pool["pooling_mode"] if isinstance(pool["pooling_mode"], list) else [pool["pooling_mode"]]
        wanted = [_NEW_NAMES.get(str(mode), str(mode)) for mode in named]
    else:  # older folders (all-MiniLM-L6-v2): one boolean per mode
        wanted = [k.removeprefix("pooling_mode_") for k, v in pool.items() if k.startswith("pooling_mode_") and v]
    unknown = [mode for mode in wanted if mode not in _POOLING_MODES]
    if not wanted or unknown:
        raise ModelLoadError(
            f"text model {model_id!r} pools with {unknown or 'nothing'}; supported: {', '.join(_POOLING_MODES)}")
    pooling = tuple(mode for mode in _POOLING_MODES if mode in wanted)  # sentence-transformers' order
    folder = str(modules[0].get("path") or "")  # old layouts keep the transformer in 0_Transformer/
    bert = _read_json(model_id, posixpath.join(folder, "sentence_bert_config.json")) or {}
    st = _read_json(model_id, "config_sentence_transformers.json") or {}
    prompt = (st.get("prompts") or {}).get(st.get("default_prompt_name") or "", "")
    if prompt and pool.get("include_prompt") is False:
        raise ModelLoadError(f"text model {model_id!r} pools without its prompt tokens, which visual-search does not do")
    return ModelSpec(pooling, bert.get("max_seq_length"), bool(bert.get("do_lower_case")), prompt, folder)


def _pool(hidden: "torch.Tensor", mask: "torch.Tensor", modes: tuple[str, ...]) -> "torch.Tensor":
    """Token vectors -> one vector per text, by each mode in turn, concatenated."""
    import torch

    m = mask.unsqueeze(-1).to(hidden.dtype)
    counts = m.sum(dim=1).clamp(min=1e-9)
    parts = []
    for mode in modes:
        if mode == "cls_token":
            parts.append(hidden[:, 0])
        elif mode == "max_tokens":
            parts.append(hidden.masked_fill(m == 0, -1e9).max(dim=1).values)
        elif mode == "mean_tokens":
            parts.append((hidden * m).sum(dim=1) / counts)
        else:  # mean_sqrt_len_tokens
            parts.append((hidden * m).sum(dim=1) / counts.sqrt())
    return torch.cat(parts, dim=-1)

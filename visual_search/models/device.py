"""Where the models run: VS_DEVICE if set, else CUDA when available, else CPU."""

from __future__ import annotations


def resolve_device(requested: str | None = None) -> str:
    if requested:
        return requested
    import torch  # here, not at the top: a search on ONNX Runtime never imports torch

    return "cuda" if torch.cuda.is_available() else "cpu"


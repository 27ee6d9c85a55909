"""Where the models run: VS_DEVICE if set, else CUDA when available, else CPU; and the captioning
batch that suits it (VS_CAPTION_BATCH, else 2 on a CPU, a large batch capped by memory on a GPU)."""

from __future__ import annotations


def resolve_device(requested: str | None = None) -> str:
    if requested:
        return requested
    import torch  # here, not at the top: a search on ONNX Runtime never imports torch

    return "cuda" if torch.cuda.is_available() else "cpu"



# 2 CPU cores: 2 is ~10% faster than 1 for ~70 MB more while captioning (docs/benchmarks.md)
CPU_CAPTION_BATCH = 2
# On one H200, BLIP-base generates 197 images/s in fp32 at batch 64 against 59 at batch 8
GPU_CAPTION_BATCH = 64
GPU_BYTES_PER_IMAGE = 96 << 20  # BLIP-base generate's activations and cache per image, fp32, with margin


def caption_batch(requested: int, device: str) -> int:
    """`requested` when set (> 0); else CPU_CAPTION_BATCH on a CPU, or on a GPU GPU_CAPTION_BATCH
    capped by the memory free there (ZeroGPU's app process has no GPU to ask: the full batch)."""
    if requested > 0:
        return requested
    if not device.startswith("cuda"):
        return CPU_CAPTION_BATCH
    try:
        import torch

        free, _total = torch.cuda.mem_get_info()
    except Exception:  # no CUDA in this process (ZeroGPU before a worker holds the GPU)
        return GPU_CAPTION_BATCH
    return max(1, min(GPU_CAPTION_BATCH, free // 2 // GPU_BYTES_PER_IMAGE))

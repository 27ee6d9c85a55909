"""Half precision where it verifies (VS_PRECISION=auto|fp32|fp16|bf16).

On a GPU, BLIP and CLIP run 2-5x faster in 16 bits, but a 16-bit model is not always the same model:
on an H200 fp16 kept CLIP's vectors exact and broke BLIP's vision features on one image in 68 (an
overflow: cosine 0). So with `auto` on CUDA each model is tried in bf16, then fp16, against its own
fp32 outputs on fixed probe images, and kept in half precision only if it verifies:
- CLIP: every probe's image vector at cosine >= 0.999 to fp32's;
- BLIP: every probe's vision features at cosine >= 0.999, and the first decoding step's top token
  unchanged on >= 99% of the probes.
Else the model stays in fp32 and the reason is logged. `fp16` / `bf16` force a precision (no
check); `fp32`, and `auto` on a CPU or on ZeroGPU (whose app process has no GPU to verify on; the
models run in forked workers), keep fp32. The checks themselves run on any device (torch has
bf16 on CPUs too): tests verify them with the tiny test models.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
TRIED = ("bf16", "fp16")  # auto's order: bf16 keeps fp32's range, fp16 does not
MIN_COSINE = 0.999
MIN_SAME_TOKEN = 0.99
N_PROBES = 16


@dataclass(frozen=True)
class Verdict:
    precision: str  # what the model runs in: fp32, fp16 or bf16
    reason: str  # why, for the log


def dtype_of(precision: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def probes(n: int = N_PROBES) -> list[Image.Image]:
    """Fixed probe images: smooth gradients, shapes and noise, bright and dark (the same every run)."""
    rng = np.random.default_rng(22)
    images = []
    for i in range(n):
        w, h = (480, 360) if i % 2 else (360, 480)
        y, x = np.mgrid[0:h, 0:w] / max(w, h)
        base = np.stack([x, y, (x + y) / 2], -1) * rng.uniform(80, 255, 3) + rng.normal(0, 12 + 4 * (i % 5), (h, w, 3))
        img = Image.fromarray(np.clip(base if i % 4 else 255 - base, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(3):
            box = sorted(rng.integers(0, w, 2)), sorted(rng.integers(0, h, 2))
            draw.ellipse((box[0][0], box[1][0], box[0][1], box[1][1]), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        images.append(img)
    return images


def _cosines(a, b) -> np.ndarray:
    """Row-wise cosine of two (n, ...) tensors; a row with inf or nan (an overflow) counts 0."""
    a, b = a.float().flatten(1).cpu().numpy(), b.float().flatten(1).cpu().numpy()
    with np.errstate(all="ignore"):
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return np.where(np.isfinite(cos), cos, 0.0)


def check_clip(fp32: Any, half: Any, pixels: np.ndarray) -> str | None:
    """None when `half` (a ClipEncoder in 16 bits) verifies against `fp32` on the probes, else why not."""
    import torch

    cos = _cosines(torch.from_numpy(fp32.encode_prepared(pixels)), torch.from_numpy(half.encode_prepared(pixels)))
    return None if cos.min() >= MIN_COSINE else f"CLIP image vectors cosine {cos.min():.5f} < {MIN_COSINE}"


def check_blip(fp32: Any, half: Any, pixels: np.ndarray) -> str | None:
    """None when `half` (a BlipCaptioner in 16 bits) verifies against `fp32` on the probes, else why not."""
    import torch

    with torch.inference_mode():
        seen = [_vision_and_first_token(m, pixels) for m in (fp32, half)]
    cos = _cosines(seen[0][0], seen[1][0])
    if cos.min() < MIN_COSINE:
        return f"BLIP vision features cosine {cos.min():.5f} < {MIN_COSINE}"
    same = float((seen[0][1] == seen[1][1]).float().mean())
    if same < MIN_SAME_TOKEN:
        return f"BLIP's first token unchanged on {same:.0%} of the probes < {MIN_SAME_TOKEN:.0%}"
    return None


def _vision_and_first_token(captioner: Any, pixels: np.ndarray):
    """BLIP's vision features and its first decoding step's top token, for each probe."""
    import torch

    model = captioner.model
    batch = torch.from_numpy(pixels).to(captioner.device, dtype=captioner.dtype)
    features = model.vision_model(pixel_values=batch)[0]
    out = model.generate(pixel_values=batch, max_new_tokens=1, min_new_tokens=1, num_beams=1, do_sample=False)
    return features, out[:, -1].cpu()


def half_copy(model: Any, precision: str) -> Any:
    """A copy of a captioner or CLIP encoder whose image side runs in `precision` (CLIP's text tower,
    which the probes do not check and queries use, stays as it was)."""
    twin = copy.copy(model)
    twin.model = copy.deepcopy(model.model)
    getattr(twin.model, "visual", twin.model).to(dtype_of(precision))
    twin.dtype = dtype_of(precision)
    return twin


def settle(model: Any, setting: str, check, device: str) -> tuple[Any, Verdict]:
    """`model` in the precision `setting` asks for (auto: the first that verifies on CUDA), and why."""
    if setting == "fp32" or (setting == "auto" and not device.startswith("cuda")):
        return model, Verdict("fp32", f"VS_PRECISION={setting} on {device}")
    if setting != "auto":
        return half_copy(model, setting), Verdict(setting, f"VS_PRECISION={setting}, not verified")
    pixels = model.prepare(probes())
    reasons = []
    for precision in TRIED:
        twin = half_copy(model, precision)
        try:
            failed = check(model, twin, pixels)
        except Exception as exc:  # an op this card or torch lacks in 16 bits: not verified
            failed = f"{type(exc).__name__}: {exc}"
        if failed is None:
            return twin, Verdict(precision, f"{precision} verified against fp32 on {len(pixels)} probes")
        reasons.append(f"{precision}: {failed}")
        del twin
    return model, Verdict("fp32", "; ".join(reasons))


def apply(model: Any, setting: str, check, what: str) -> Any:
    """`settle`, logged; the model to use."""
    from ..config import on_zero_gpu

    device = "ZeroGPU's app process" if on_zero_gpu() and setting == "auto" else str(model.device)
    chosen, verdict = settle(model, setting, check, device)
    (log.warning if setting == "auto" and verdict.precision == "fp32" and str(model.device).startswith("cuda")
     else log.info)("%s %s runs in %s: %s", what, model.identity, verdict.precision, verdict.reason)
    chosen.precision = verdict
    return chosen

"""VS_PRECISION: a 16-bit model is kept only when it verifies against fp32 on fixed probes. The checks
run on the CPU here (torch has bf16 there), with the tiny test models, as if the device were CUDA."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from visual_search.config import Settings
from visual_search.models import precision


def test_bf16_verifies_and_is_kept_for_both_image_models(shared_models):
    for model, check in ((shared_models["captioner"], precision.check_blip), (shared_models["clip"], precision.check_clip)):
        chosen, verdict = precision.settle(model, "auto", check, device="cuda")
        assert verdict.precision == "bf16", verdict
        assert chosen.dtype == torch.bfloat16 and model.dtype == torch.float32  # the fp32 model is left whole
    clip, _ = precision.settle(shared_models["clip"], "auto", precision.check_clip, device="cuda")
    pixels = shared_models["clip"].prepare(precision.probes(4))
    cos = (clip.encode_prepared(pixels) * shared_models["clip"].encode_prepared(pixels)).sum(1)
    assert cos.min() >= precision.MIN_COSINE
    assert clip.encode_texts(["a photo"]).shape[1] == shared_models["clip"].dim  # the text tower stays fp32


def test_an_overflow_on_one_probe_keeps_fp32_and_says_why(shared_models, monkeypatch):
    made = precision.half_copy

    def overflowing(model, name):
        twin = made(model, name)
        def blow_up(_module, _inputs, output):  # one probe's features overflow, as fp16 did on an H200
            output[0][3] *= 1e38
        twin.model.vision_model.register_forward_hook(blow_up)
        return twin

    monkeypatch.setattr(precision, "half_copy", overflowing)
    captioner = shared_models["captioner"]
    chosen, verdict = precision.settle(captioner, "auto", precision.check_blip, device="cuda")
    assert chosen is captioner and verdict.precision == "fp32"
    assert "bf16: BLIP vision features cosine 0.00000" in verdict.reason and "fp16:" in verdict.reason


def test_a_changed_first_token_keeps_fp32(shared_models, monkeypatch):
    monkeypatch.setattr(precision, "_vision_and_first_token",
                        lambda m, p: (torch.ones(len(p), 4), torch.arange(len(p)) * (m.dtype != torch.float32)))
    _chosen, verdict = precision.settle(shared_models["captioner"], "auto", precision.check_blip, device="cuda")
    assert verdict.precision == "fp32" and "first token unchanged on 6% of the probes" in verdict.reason


def test_cpu_auto_and_fp32_keep_fp32_and_forced_bf16_captions(shared_models, caplog):
    captioner = shared_models["captioner"]
    with caplog.at_level(logging.INFO, logger="visual_search.models.precision"):
        assert precision.apply(captioner, "auto", precision.check_blip, "captioner") is captioner
    assert "runs in fp32: VS_PRECISION=auto on cpu" in caplog.text
    assert precision.settle(captioner, "fp32", precision.check_blip, device="cuda")[0] is captioner
    forced, verdict = precision.settle(captioner, "bf16", precision.check_blip, device="cpu")
    assert verdict.precision == "bf16" and len(forced.caption(precision.probes(2))) == 2


def test_the_setting_is_read_and_checked(monkeypatch):
    monkeypatch.setenv("VS_PRECISION", "bf16")
    assert Settings.from_env().precision == "bf16"
    monkeypatch.setenv("VS_PRECISION", "fp8")
    with pytest.raises(ValueError):
        Settings.from_env()


def test_the_probes_are_fixed():
    a, b = precision.probes(3), precision.probes(3)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))

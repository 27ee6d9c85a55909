"""What a GPU worker receives: model-ready arrays prepared in the app's process, never bitmaps; and
how big each GPU call is: a chunk sized from the throughput measured so far."""

from __future__ import annotations

import pickle

import numpy as np
from PIL import Image

from visual_search.models.compute import (CPU_GROUP, GPU_FIRST_CHUNK, GPU_MAX_CHUNK, Compute, Models, Prepared,
                                          Throughput)


def test_the_gpu_function_gets_small_arrays_and_gives_what_the_cpu_path_gives(settings, shared_models):
    received = []

    def gpu(fn, duration):
        def call(*args):
            received.append((fn.__name__, pickle.dumps(args), duration(*args)))
            return fn(*pickle.loads(pickle.dumps(args)))  # across a process boundary, as ZeroGPU pickles
        return call

    models = Models(settings, **shared_models)
    images = [Image.new("RGB", (1600, 1200), (30 * i, 90, 200)) for i in range(3)]
    on_gpu, here = Compute(models, gpu), Compute(models)
    assert on_gpu.group_size() == GPU_FIRST_CHUNK  # nothing measured yet
    got, expected = on_gpu.understand(images), here.understand(images)
    assert got.captions == expected.captions
    np.testing.assert_allclose(got.visual_vectors, expected.visual_vectors, atol=1e-6)
    name, payload, seconds = received[0]
    prepared = pickle.loads(payload)[0]
    assert name == "understand_prepared" and isinstance(prepared, Prepared)
    assert isinstance(prepared.caption_inputs, np.ndarray) and isinstance(prepared.visual_inputs, np.ndarray)
    assert len(payload) < 3 * 1600 * 1200 * 3 / 20  # the models' input size, not the bitmaps
    assert 0 < seconds <= 60
    assert on_gpu.caption(images[:1]) == here.caption(images[:1])
    assert received[-1][0] == "caption_prepared" and b"PIL" not in received[-1][1]
    # a measured chunk now (how big depends on this machine's speed), and never one without a GPU wrap
    assert on_gpu.throughput.rate and on_gpu.group_size() == on_gpu.throughput.chunk()
    assert CPU_GROUP <= on_gpu.group_size() <= GPU_MAX_CHUNK and here.group_size() == CPU_GROUP


def test_chunks_and_durations_follow_the_measured_throughput():
    t = Throughput()
    assert t.chunk() == GPU_FIRST_CHUNK
    t.record(32, 4.0)  # 8 images/s (the first call: a fresh worker, models moved)
    assert t.chunk() == min(GPU_MAX_CHUNK, 8 * 30)
    assert t.seconds(Prepared(64, [None] * 64, None, None)) == 10 + 2 * 64 / 8
    t.record(64, 64.0)  # slower: 1 image/s -> the mean, 4.5/s
    assert t.chunk() == GPU_MAX_CHUNK and t.rate == 4.5
    t.record(8, 80.0)
    assert t.chunk() >= CPU_GROUP


def test_images_made_ready_one_by_one_join_into_the_group_the_models_would_get(settings, shared_models):
    """The intake threads prepare each image alone; the group the models get is the same as if
    the whole group had been prepared at once (same arrays, same order, same outputs)."""
    models = Models(settings, **shared_models)
    images = [Image.new("RGB", (640 + 40 * i, 480), (40 * i, 120, 255 - 30 * i)) for i in range(4)]
    joined = Prepared.join([models.prepare([im]) for im in images])
    whole = models.prepare(images)
    assert joined.n == whole.n == 4 and joined.captions == whole.captions
    np.testing.assert_array_equal(joined.caption_inputs, whole.caption_inputs)
    np.testing.assert_array_equal(joined.visual_inputs, whole.visual_inputs)
    assert models.understand_prepared(joined).captions == models.understand_prepared(whole).captions


def test_a_gpu_of_this_process_gets_groups_of_its_captioning_batch(settings, shared_models):
    """Groups of 8 would leave a GPU mostly idle (BLIP-base: 59 images/s at batch 8, 197 at 64 on an H200):
    on a CUDA device the group is the captioning batch, which VS_CAPTION_BATCH sets or the free memory caps."""
    from dataclasses import replace

    from visual_search.models.device import GPU_CAPTION_BATCH

    on_cuda = Compute(Models(replace(settings, device="cuda", caption_batch=0), **shared_models))
    assert on_cuda.gpu_here() and CPU_GROUP < on_cuda.group_size() <= GPU_CAPTION_BATCH
    assert Compute(Models(replace(settings, device="cuda", caption_batch=24), **shared_models)).group_size() == 24
    assert Compute(Models(replace(settings, device="cuda", caption_batch=2), **shared_models)).group_size() == CPU_GROUP
    cpu = Compute(Models(replace(settings, device="cpu", caption_batch=24), **shared_models))
    assert not cpu.gpu_here() and cpu.group_size() == CPU_GROUP
    zero = Compute(Models(replace(settings, device="cuda"), **shared_models), lambda fn, duration: fn)
    assert not zero.gpu_here() and zero.group_size() == GPU_FIRST_CHUNK  # ZeroGPU: sized from its throughput

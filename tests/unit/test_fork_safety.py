"""A GPU worker may be a fresh fork of the app's process at any moment (ZeroGPU): after
`fork_safety.install()` a child forked from a thread that ran torch's OpenMP pool still computes,
and the model halves give what the whole stage gives."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import torch
from PIL import Image

from visual_search.models import fork_safety


def _child(queue) -> None:
    x = torch.rand(3, 600, 800)
    queue.put((float((x * 2).sum()) > 0, torch.get_num_threads()))  # a multi-threaded op, in the copied thread


def _fork_after_using_the_pool(result: list) -> None:
    torch.set_num_threads(2)
    float((torch.rand(3, 600, 800) * 0.5).sum())  # this thread's OpenMP pool is now in use
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue,), daemon=True)
    child.start()
    child.join(60)
    result.append(None if child.is_alive() else queue.get(timeout=5))
    if child.is_alive():
        child.kill()


def test_a_child_forked_after_torch_used_its_thread_pool_does_not_hang():
    threads = torch.get_num_threads()
    fork_safety.install()
    result: list = []
    worker = threading.Thread(target=_fork_after_using_the_pool, args=(result,))
    worker.start()
    worker.join(90)
    torch.set_num_threads(threads)
    assert result and result[0] == (True, 1), "the forked child hung in a torch CPU op"


def test_the_model_halves_give_what_the_whole_stage_gives(shared_models):
    images = [Image.new("RGB", (640, 480), (200, 30 * i, 90)) for i in range(3)]
    captioner, clip = shared_models["captioner"], shared_models["clip"]
    pixels = captioner.prepare(images)
    assert pixels.dtype == np.float32 and pixels.shape[0] == 3 and pixels.nbytes < 3 * 640 * 480 * 3
    assert captioner.caption_prepared(pixels) == captioner.caption(images)
    clip_pixels = clip.prepare(images)
    assert clip_pixels.shape[0] == 3 and clip_pixels.shape[2] < 480
    np.testing.assert_allclose(clip.encode_prepared(clip_pixels), clip.encode_images(images), atol=1e-6)

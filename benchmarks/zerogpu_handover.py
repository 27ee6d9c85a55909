"""Should a search encode its query on ZeroGPU's GPU, or on the app's CPU? The hand-over, measured.

On ZeroGPU each `@spaces.GPU` call runs in a worker process forked from the app: its arguments and
its result are pickled across, and a fresh worker is forked when none is idle. This times, with the
full-size model shapes loaded in the app's process (random weights, offline):
  * one query through both encoders, in-process on the CPU (what the app does on ZeroGPU);
  * the same call through the test stand-in for `spaces` (tests/zerogpu), which reproduces the
    process model: the first call (a fork of this process) and later calls (a reused worker).
The stand-in's worker computes on the CPU too, so the difference is the hand-over alone; a real
ZeroGPU call adds the scheduler's round trip and, in a fresh worker, CUDA start-up and moving the
models to the GPU, which cannot be measured here.

    python benchmarks/zerogpu_handover.py --random-weights
    python benchmarks/zerogpu_handover.py --tiny      # tiny test models (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "zerogpu"), str(REPO / "tests")]
os.environ["SPACES_ZERO_GPU"] = "true"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SPACES_STANDIN_WORKERS", "reuse")  # the stand-in's default forks for every call; "reused" is timed here

QUERIES = [f"a photo of {w} at {t}" for w in ("a dog", "the sea", "a red car", "two cats", "mountains")
           for t in ("night", "dawn", "noon", "dusk")]


def _models(kind: str, folder: Path):
    from visual_search.models.compute import Models
    from visual_search.config import Settings

    if kind == "tiny":
        from tiny_models import build_tiny_blip, build_tiny_clip
        from visual_search.measure.models import minilm_path

        s = Settings(data_dir=folder / "data", caption_model=str(build_tiny_blip(folder / "blip")),
                     text_model=minilm_path(), clip_model=build_tiny_clip(folder / "clip"), clip_pretrained=None,
                     device="cpu")
    else:
        from visual_search.measure.models import random_models

        rm = random_models(folder / "models")
        s = Settings(data_dir=folder / "data", caption_model=rm.caption_model, text_model=rm.text_model,
                     clip_model=rm.clip_model, clip_pretrained=rm.clip_weights, device="cpu")
    models = Models(s)
    models.load()
    return models


def _encode_both(models, text: str):
    return models.text_encoder.encode([text])[0], models.clip.encode_texts([text])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny test models instead of full-size shapes")
    parser.add_argument("--random-weights", action="store_true", help="full-size shapes, random weights (default)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import psutil
    import spaces
    from gradio.context import LocalContext

    from visual_search.models import fork_safety

    fork_safety.install()  # as the app does on ZeroGPU (web/zerogpu.py): a fork after torch ran never hangs

    from visual_search.measure.synthetic import time_each

    folder = Path(tempfile.mkdtemp(prefix="vs-handover-"))
    models = _models("tiny" if args.tiny else "random", folder)
    LocalContext.request.set(object())  # as inside a Gradio event
    on_gpu = spaces.GPU(lambda text: _encode_both(models, text), duration=5)
    _encode_both(models, "warm up")

    cpu = time_each(lambda t: _encode_both(models, t), QUERIES)
    t0 = time.perf_counter()
    on_gpu(QUERIES[0])  # the first call forks the worker: timed alone, without a warm-up
    first = (time.perf_counter() - t0) * 1000
    reused = time_each(on_gpu, QUERIES[1:])
    figures = {
        "process_rss_mb": round(psutil.Process().memory_info().rss / 2**20),
        "cpu_query_ms_p50": round(statistics.median(cpu), 1),
        "gpu_call_first_ms": round(first, 1),
        "gpu_call_reused_ms_p50": round(statistics.median(reused), 1),
        "handover_reused_ms_p50": round(statistics.median(reused) - statistics.median(cpu), 1),
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"app process: {figures['process_rss_mb']:,} MB resident")
    print(f"query, both encoders, in-process CPU:        p50 {figures['cpu_query_ms_p50']} ms")
    print(f"the same through a forked worker, first:     {figures['gpu_call_first_ms']} ms (fork + pickle)")
    print(f"the same through a reused worker:            p50 {figures['gpu_call_reused_ms_p50']} ms")
    print(f"hand-over alone (reused worker):             p50 {figures['handover_reused_ms_p50']} ms, "
          "before ZeroGPU's scheduler round trip")


if __name__ == "__main__":
    main()

"""The query encoders on torch and on ONNX Runtime, side by side in one bench run: encoding
latency, cold command-line searches (wall time and peak memory of fresh processes), the memory
of an app-like process (index, then search), and the image towers on ONNX Runtime (index-time
candidates, measured, not used).

Figures are ratios taken in the same run on the same machine; nothing here is asserted.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..config import Settings
from .stages import WRITE_GROUP, pct, time_each

BACKENDS = ("torch", "onnx")
CLI_QUERY = "a dog running on the beach at sunset"


def onnx_encoders(settings: Settings, models: dict) -> dict:
    """The ONNX twins of the loaded torch query encoders, exported and verified first when the
    cache has none (models/backend.py). A refused export gives back the torch encoder: `verified` says."""
    from ..models.backend import caption_encoder, clip_text_encoder
    from ..models.onnxrt.encoders import OnnxClipText, OnnxTextEncoder
    from ..stages.embed import ClipTextEncoder

    auto = replace(settings, backend="auto")
    t0 = time.perf_counter()
    clip_text = clip_text_encoder(auto, lambda: models["clip"], models["clip"].identity)
    text = (ClipTextEncoder(clip_text) if settings.clip_text_captions
            else caption_encoder(auto, lambda: models["text_encoder"]))
    return {"text_encoder": text, "clip_text": clip_text, "load_s": round(time.perf_counter() - t0, 1),
            "verified": {"text": isinstance(text, OnnxTextEncoder) or isinstance(clip_text, OnnxClipText)
                         and settings.clip_text_captions, "clip_text": isinstance(clip_text, OnnxClipText)}}


def exports(settings: Settings) -> list[dict]:
    """What the export cache holds: each encoder's verdict, its worst probe cosine, its export time."""
    out = []
    for meta_file in sorted(settings.onnx_cache.glob("*/meta.json")):
        m = json.loads(meta_file.read_text(encoding="utf-8"))
        out.append({k: m.get(k) for k in ("kind", "identity", "verified", "reason", "min_cosine", "export_s")})
    return out


def query_ms(encoders: dict[str, tuple], texts: list[str]) -> dict:
    """Both channels' encoders on one new query, per backend, alternating backends query by query."""
    times: dict[str, list[float]] = {name: [] for name in encoders}
    for name, (text, clip) in encoders.items():  # untimed warm-up
        text.encode([texts[0]]), clip.encode_texts([texts[0]])
    names = list(encoders)
    for j, query in enumerate(texts):
        for name in names[j % 2 :] + names[: j % 2]:
            text, clip = encoders[name]
            t0 = time.perf_counter()
            text.encode([query])
            clip.encode_texts([query])
            times[name].append((time.perf_counter() - t0) * 1000)
    return {name: pct(ms) for name, ms in times.items()}


def cli_searches(settings: Settings, data_dir: Path, runs: int = 3) -> dict:
    """Wall time and peak memory of fresh `python -m visual_search search` processes on `data_dir`,
    per backend (the ONNX one finds its exports in the cache), alternating; medians of `runs`."""
    env = {**_child_env(settings), "VS_DATA_DIR": str(data_dir)}
    wall: dict[str, list[float]] = {b: [] for b in BACKENDS}
    peak: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for run in range(runs):
        for backend in BACKENDS[run % 2 :] + BACKENDS[: run % 2]:
            seconds, mb = _one_process(_CLI, ["search", CLI_QUERY], {**env, "VS_BACKEND": backend})
            wall[backend].append(seconds)
            peak[backend].append(mb)
    return {"wall_s": {b: round(statistics.median(v), 2) for b, v in wall.items()},
            "peak_rss_mb": {b: round(statistics.median(v), 1) for b, v in peak.items()}, "runs": runs}


def own_processes(settings: Settings, folder: Path, texts: list[str], rounds: int = 2) -> dict:
    """Both query encoders as a search runs them (`engine.queries.encode`), in a fresh process per
    backend with OpenMP's waiting at its defaults: torch as fast as it gets on a quiet machine.

    The in-process comparison cannot give that: there torch's threads must not spin
    (`OMP_WAIT_POLICY=PASSIVE`), or they would take the cores ONNX Runtime and Chroma need, and
    not spinning costs torch's many small operations (docs/benchmarks.md). Each round gives both
    backends the same fresh queries, in alternating order.
    """
    env = {k: v for k, v in _child_env(settings).items() if k not in _OPENMP_WAITING}
    env["VS_DATA_DIR"] = str(folder)
    ms: dict[str, list[float]] = {b: [] for b in BACKENDS}
    encoders: dict[str, list[str]] = {}
    openmp: dict[str, str] = {}  # what the children saw of OpenMP's settings
    size = max(1, len(texts) // rounds)
    for run in range(rounds):
        part = texts[run * size : (run + 1) * size]
        for backend in BACKENDS[run % 2 :] + BACKENDS[: run % 2]:
            done = subprocess.run([sys.executable, "-c", _ENCODE, json.dumps(part)], env={**env, "VS_BACKEND": backend},
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"bench: a query-encoding process ({backend}) failed: {done.stderr[-800:]}")
            got = json.loads(done.stdout.splitlines()[-1])
            ms[backend] += got["ms"]
            encoders[backend], openmp = got["encoders"], got["openmp_env"]
    out = {b: pct(v) for b, v in ms.items()}
    return {**out, "ratio": round(out["onnx"]["p50"] / out["torch"]["p50"], 3), "encoders": encoders,
            "openmp_env": openmp}


def app_processes(settings: Settings, images: list[Path], folder: Path) -> dict:
    """Peak memory of a fresh process doing what the app does, per backend: load the models the
    engine loads, index `images` into an empty data dir, answer searches (one run each)."""
    env = _child_env(settings)
    peak = {}
    for backend in BACKENDS:
        env_b = {**env, "VS_BACKEND": backend, "VS_DATA_DIR": str(folder / backend)}
        peak[backend] = round(_one_process(_APP_LIKE, [str(p) for p in images], env_b)[1], 1)
    return {"peak_rss_mb": peak, "images": len(images)}


def _child_env(settings: Settings) -> dict[str, str]:
    env = {**os.environ, **settings_env(settings)}
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    return env


# The child reports its own peak resident memory on stderr as it exits. The parent's rusage cannot
# give that: Linux carries the parent's peak into a forked child's.
_PEAK = """
import atexit, sys
def peak():
    try:
        with open("/proc/self/status") as f:
            sys.stderr.write("\\nvs-bench-peak-kb " + next(l for l in f if l.startswith("VmHWM")).split()[1] + "\\n")
    except (OSError, StopIteration):
        pass
atexit.register(peak)
"""
_CLI = _PEAK + """
import runpy
sys.argv[0] = "visual_search"
runpy.run_module("visual_search", run_name="__main__", alter_sys=True)
"""
_APP_LIKE = _PEAK + """
from visual_search import SearchEngine
engine = SearchEngine()
engine.index_paths(sys.argv[1:])
for query in ("a dog on the beach", "a red car at night", "two children in a park", "a cup of coffee"):
    engine.search(query)
"""


_OPENMP_WAITING = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")  # left out of own_processes' children
_ENCODE = """
import json, os, sys, time
from visual_search import SearchEngine
engine = SearchEngine()
queries = engine.queries
queries.encode("a warm-up query", engine.lanes.both)
ms = []
for text in json.loads(sys.argv[1]):
    t0 = time.perf_counter()
    queries.encode(text, engine.lanes.both)
    ms.append((time.perf_counter() - t0) * 1000)
names = [type(engine.query_text_encoder).__name__, type(engine.clip_text).__name__]
openmp = {k: v for k, v in os.environ.items() if k.startswith(("OMP_", "GOMP_"))}
print(json.dumps({"ms": ms, "encoders": names, "openmp_env": openmp}))
"""


def _one_process(code: str, args: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak resident MB, 0 where /proc is missing) of one fresh Python process."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"bench: a child process ({' '.join(args)[:80]}) failed: {done.stderr[-800:]}")
    marks = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("vs-bench-peak-kb ")]
    return seconds, (int(marks[-1]) / 1024 if marks else 0.0)


def settings_env(settings: Settings) -> dict[str, str]:
    """The VS_* variables that make a child process load the same models and export cache."""
    env = {"VS_CAPTION_MODEL": settings.caption_model, "VS_TEXT_MODEL": settings.text_model,
           "VS_CLIP_MODEL": settings.clip_model, "VS_CLIP_PRETRAINED": settings.clip_pretrained or "none",
           "VS_ONNX_DIR": str(settings.onnx_cache.resolve())}
    if settings.device:
        env["VS_DEVICE"] = settings.device
    return env


def image_towers(clip, captioner, images: list, folder: Path) -> dict:
    """CLIP's image tower and BLIP's vision encoder exported to ONNX Runtime the way the query
    encoders are, timed against torch on the same pixels, one image per call and in write groups.
    `min_cosine` compares every output vector (BLIP: every patch token) with torch's."""
    import torch

    from ..models.onnxrt.encoders import session
    from ..models.onnxrt.export import export_graph, failure, graph

    group = images[:WRITE_GROUP]
    towers = {
        "clip_image": (clip.model, lambda m, x: torch.nn.functional.normalize(m.encode_image(x), dim=-1),
                       torch.stack([clip.preprocess(im) for im in group])),
        "blip_vision": (captioner.model.vision_model, lambda m, x: m(pixel_values=x).last_hidden_state,
                        captioner.processor(images=group, return_tensors="pt")["pixel_values"]),
    }
    out = {}
    for name, (module, run, pixels) in towers.items():
        where = folder / name
        where.mkdir(parents=True, exist_ok=True)
        try:
            example = pixels[:1].repeat(2, 1, 1, 1)  # an example batch of 1 would export a batch axis fixed at 1
            export_graph(graph(module, lambda x, m=module, f=run: f(m, x)), (example,), ["pixels"], where,
                         sequence_axis=False)
            ort = session(where / "model.onnx")
        except Exception as exc:
            out[name] = {"error": failure(exc)}
            continue

        def on_torch(x):
            with torch.inference_mode():
                return run(module, x).numpy()

        def on_onnx(x):
            return ort.run(None, {"pixels": x.numpy()})[0]

        want, got = on_torch(pixels), on_onnx(pixels)
        flat = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731 - one row per output vector
        cos = np.sum(flat(want) * flat(got), 1) / (np.linalg.norm(flat(want), axis=1) * np.linalg.norm(flat(got), axis=1))
        singles = [pixels[i : i + 1] for i in range(len(group))]
        out[name] = {
            backend: {"batch1_ms_per_image": round(float(np.mean(time_each(fn, singles))), 1),
                      "write_group_ms_per_image": round(float(np.mean(time_each(fn, [pixels, pixels]))) / len(group), 1)}
            for backend, fn in (("torch", on_torch), ("onnx", on_onnx))
        }
        out[name]["min_cosine"] = round(float(cos.min()), 7)
    return out

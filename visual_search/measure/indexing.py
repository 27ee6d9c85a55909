"""Indexing measured three ways (issue 22), on generated 12-megapixel phone JPEGs (phone_photos.py):

(a) the work around the models: the photos indexed through SearchEngine with instant stand-in models
    (instant_models.py), ms per photo, with the intake pipeline on and with one intake thread, and with
    the real models' input preparation kept (BLIP's processor, CLIP's transform: what a GPU waits on);
(b) the models alone: BLIP's generate and CLIP's image tower on prepared inputs, images/s per batch
    size and precision on the current device (16-bit copies checked against fp32 on the probes of
    models/precision.py);
(c) end to end: the same photos indexed through SearchEngine with the models, images/s, and as a
    share of BLIP alone at the engine's batch and precision.

The OCR is off in all three (it is a model of its own: benchmarks/ocr.py measures what it adds).
Every engine writes to a fresh data dir and is warm (the store opened, one photo indexed) before
the clock starts. How to read the figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import Settings
from ..errors import InvalidQuery
from . import phone_photos
from .phone_photos import parse_size
from .instant_models import InstantCaptioner, InstantClip, InstantTextEncoder

CPU_BATCHES, GPU_BATCHES = (1, 2, 8), (8, 32, 64)
CPU_PHOTOS, GPU_PHOTOS = 16, 256  # a GPU needs several groups of its batch to show its pace
MIN_TIMED = 8  # images per timed models-alone run, at least


def default_batches(device: str) -> tuple[int, ...]:
    return GPU_BATCHES if device.startswith("cuda") else CPU_BATCHES


def default_precisions(device: str) -> tuple[str, ...]:
    return ("fp32", "fp16", "bf16") if device.startswith("cuda") else ("fp32",)


def measure(settings: Settings, models: dict, folder: Path, tmp: Path, n: int | None = None,
            size: tuple[int, int] = phone_photos.SIZE, batches: tuple[int, ...] | None = None,
            precisions: tuple[str, ...] | None = None, rounds: int = 2,
            say: Callable[[str], None] = lambda _m: None) -> dict:
    """The three measurements on n generated photos of `size` (kept in `folder`); `models` holds the
    loaded captioner, clip and text_encoder."""
    from ..library.intake import load_image
    from ..models.device import resolve_device

    device = resolve_device(settings.device)
    n = n or (GPU_PHOTOS if device.startswith("cuda") else CPU_PHOTOS)
    say(f"indexing: {n + 1} phone photos of {size[0]} x {size[1]} (made once, kept in {folder})")
    paths = phone_photos.photos(folder, range(n + 1), size)
    warm, paths = paths[0], paths[1:]
    settings = replace(settings, ocr="off")
    result: dict = {"photos": n, "photo_size": f"{size[0]}x{size[1]}", "device": device, "cores": _cores(),
                    "photo_mb": round(float(np.mean([p.stat().st_size for p in paths])) / 2**20, 2)}
    say("indexing (a): the work around the models, instant stand-in models")
    cap, clip = models["captioner"], models["clip"]
    result["around_models_ms"] = around_models(settings, paths, warm, tmp, rounds, cap.prepare, clip.prepare)
    say("indexing (b): the models alone, per batch size and precision")
    images = [load_image(p.read_bytes(), p.name, settings.max_file_bytes, settings.max_pixels).image
              for p in paths[:MIN_TIMED]]
    result["models_alone"], result["precision_checks"] = models_alone(
        cap, clip, images, batches or default_batches(device), precisions or default_precisions(device))
    say("indexing (c): end to end through the engine")
    result["end_to_end"] = end_to_end(settings, models, paths, warm, tmp, result["models_alone"])
    return result


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@contextlib.contextmanager
def one_intake_thread():
    """The indexer without its pipeline: read, decode, thumbnail, prepare and write in turn."""
    from ..library import indexer

    original = indexer.workers
    indexer.workers = lambda gpu=False: 1
    try:
        yield
    finally:
        indexer.workers = original


def index_seconds(settings: Settings, models: dict, paths: list[Path], warm: Path, tmp: Path) -> tuple[float, int]:
    """Seconds to index `paths` into a fresh data dir whose store is open and used already, and the
    engine's group size."""
    from ..engine import SearchEngine

    data_dir = Path(tempfile.mkdtemp(prefix="index-", dir=tmp))
    try:
        engine = SearchEngine(replace(settings, data_dir=data_dir, chroma_url=None), **models)
        if len(engine.index_paths([warm]).added) != 1:  # imports, store, tag prompts: before the clock
            raise RuntimeError(f"the warm-up photo {warm} was not indexed")
        t0 = time.perf_counter()
        report = engine.index_paths(paths)
        seconds = time.perf_counter() - t0
        if len(report.added) != len(paths):
            raise RuntimeError(f"indexing the phone photos failed: {report.failed[:3]}")
        return seconds, engine.compute.group_size()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def around_models(settings: Settings, paths: list[Path], warm: Path, tmp: Path, rounds: int,
                  blip_prepare: Callable, clip_prepare: Callable) -> dict:
    """ms per photo with instant models: pipeline on / one intake thread / with the real processors;
    the three take turns, best of `rounds` each."""
    bare = {"captioner": InstantCaptioner(), "text_encoder": InstantTextEncoder(), "clip": InstantClip()}
    processors = {**bare, "captioner": InstantCaptioner(blip_prepare), "clip": InstantClip(clip_prepare)}
    runs = {"pipeline": (bare, contextlib.nullcontext), "one_thread": (bare, one_intake_thread),
            "with_processors": (processors, contextlib.nullcontext)}
    best: dict[str, float] = {}
    for _ in range(max(1, rounds)):
        for name, (models, context) in runs.items():
            with context():
                ms = index_seconds(settings, models, paths, warm, tmp)[0] / len(paths) * 1000
            best[name] = round(min(best.get(name, math.inf), ms), 1)
    return best


def models_alone(captioner, clip, images: list, batches: tuple[int, ...],
                 precisions: tuple[str, ...]) -> tuple[list[dict], dict]:
    """Images/s of BLIP's generate and CLIP's image tower on prepared inputs, per precision and batch;
    and each 16-bit copy's check against fp32 (None: verified, else why not)."""
    import torch

    from ..models import precision as pr

    blip_pixels, clip_pixels = captioner.prepare(images), clip.prepare(images)
    rows, checks = [], {}
    fp32 = captioner.dtype == torch.float32 and clip.dtype == torch.float32
    probe_blip, probe_clip = (captioner.prepare(pr.probes()), clip.prepare(pr.probes())) if fp32 else (None, None)
    for precision in precisions:
        if precision == "fp32" and not fp32:
            continue  # the loaded models are 16-bit copies already
        if precision == "fp32":
            cap, vis = captioner, clip
        elif fp32:
            cap, vis = pr.half_copy(captioner, precision), pr.half_copy(clip, precision)
            checks[precision] = {"blip": _check(pr.check_blip, captioner, cap, probe_blip),
                                 "clip": _check(pr.check_clip, clip, vis, probe_clip)}
        else:
            continue
        for batch in batches:
            rows.append({"precision": precision, "batch": batch,
                         "blip_images_per_s": _rate(cap, "caption_prepared", blip_pixels, batch),
                         "clip_images_per_s": _rate(vis, "encode_prepared", clip_pixels, batch)})
        del cap, vis
    return rows, checks


def _check(check, fp32, half, probes) -> str | None:
    try:
        return check(fp32, half, probes)
    except Exception as exc:  # an op this card or torch lacks in 16 bits
        return f"{type(exc).__name__}: {exc}"


def _rate(model, method: str, pixels: np.ndarray, batch: int) -> float:
    """Images/s of model.method over whole batches of `batch` (at least MIN_TIMED images), after one warm batch."""
    count = batch * max(1, math.ceil(MIN_TIMED / batch))
    inputs = np.concatenate([pixels] * math.ceil(count / len(pixels)))[:count]
    twin = copy.copy(model)
    twin.batch_size = batch
    getattr(twin, method)(inputs[:batch])
    t0 = time.perf_counter()
    getattr(twin, method)(inputs)
    return round(count / (time.perf_counter() - t0), 2)


def end_to_end(settings: Settings, models: dict, paths: list[Path], warm: Path, tmp: Path, alone: list[dict]) -> dict:
    """Images/s indexing the photos with the models; the share of BLIP alone at the same batch and precision."""
    import torch

    seconds, group = index_seconds(settings, models, paths, warm, tmp)
    cap = models["captioner"]
    precision = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}.get(cap.dtype, str(cap.dtype))
    same = [r for r in alone if r["batch"] == cap.batch_size and r["precision"] == precision]
    rate = round(len(paths) / seconds, 2)
    out = {"images_per_s": rate, "seconds": round(seconds, 1), "batch": cap.batch_size, "group": group,
           "precision": precision, "blip_alone_images_per_s": same[0]["blip_images_per_s"] if same else None}
    out["share_of_blip_alone"] = round(rate / same[0]["blip_images_per_s"], 3) if same else None
    return out


def format_rows(r: dict) -> list[str]:
    a, e = r["around_models_ms"], r["end_to_end"]
    out = [f"Indexing, three ways: {r['photos']} phone photos of {r['photo_size'].replace('x', ' x ')} "
           f"({r['photo_mb']} MB on average), {r['cores']} cores, models on {r['device']}, OCR off",
           f"(a) around the models (instant stand-ins), ms/photo: {a['pipeline']:.1f} with the intake pipeline, "
           f"{a['one_thread']:.1f} on one intake thread, {a['with_processors']:.1f} with BLIP's and CLIP's "
           "input preparation kept",
           "(b) the models alone, images/s      batch: " + "".join(
               f"{b:>8}" for b in sorted({row['batch'] for row in r['models_alone']}))]
    for precision in dict.fromkeys(row["precision"] for row in r["models_alone"]):
        for model, key in (("BLIP generate", "blip_images_per_s"), ("CLIP image tower", "clip_images_per_s")):
            cells = "".join(f"{row[key]:>8.1f}" for row in r["models_alone"] if row["precision"] == precision)
            out.append(f"    {model + ' ' + precision:<32}{cells}")
    for precision, check in r["precision_checks"].items():
        out.append(f"    {precision} against fp32 on the probes: " + ", ".join(
            f"{m} {'verified' if why is None else 'FAILS (' + why + ')'}" for m, why in check.items()))
    share = (f" = {e['share_of_blip_alone']:.0%} of BLIP alone ({e['blip_alone_images_per_s']:.1f}/s)"
             if e["share_of_blip_alone"] is not None else " (BLIP alone not measured at that batch)")
    out.append(f"(c) end to end: {e['images_per_s']:.2f} images/s at batch {e['batch']}, {e['precision']}, "
               f"groups of {e['group']}{share}")
    return out


# ---- `bench --indexing`: the options, the run, the report ---------------------------------------
def options(args: argparse.Namespace) -> dict:
    """The indexing measurement's options from the command line, checked (InvalidQuery says what is wrong)."""
    def numbers(text: str | None, name: str) -> tuple[int, ...] | None:
        if text is None:
            return None
        try:
            values = tuple(int(v) for v in text.split(",") if v.strip())
        except ValueError:
            values = ()
        if not values or min(values) < 1:
            raise InvalidQuery(f"--{name} takes whole numbers of at least 1 separated by commas, got {text!r}")
        return values

    try:
        size = parse_size(args.photo_size)
    except ValueError as exc:
        raise InvalidQuery(f"--photo-size: {exc}") from None
    precisions = tuple(v.strip() for v in args.precisions.split(",") if v.strip()) if args.precisions else None
    if precisions is not None and (not precisions or set(precisions) - {"fp32", "fp16", "bf16"}):
        raise InvalidQuery(f"--precisions takes fp32, fp16 and bf16 separated by commas, got {args.precisions!r}")
    if args.photos is not None and args.photos < 1:
        raise InvalidQuery(f"--photos takes a whole number of at least 1, got {args.photos}")
    return {"n": args.photos, "size": size, "batches": numbers(args.batches, "batches"), "precisions": precisions}


def photo_folder(weights_dir: str | None) -> Path:
    """Where the generated phone photos are kept between runs (with the weights, else the temp folder)."""
    return Path(weights_dir) / "phone-photos" if weights_dir else Path(tempfile.gettempdir()) / "vs-phone-photos"


def run_alone(tmp: Path, random_weights: bool, weights_dir: str | None, options: dict) -> dict:
    """`bench --indexing`: the models loaded, then indexing measured three ways."""
    import torch

    from .bench import _say, load_models
    from .stages import CpuWatch

    t0 = time.perf_counter()
    watch = CpuWatch()
    settings = Settings.from_env(data_dir=tmp / "indexing", chroma_url=None)
    _say(t0, "loading models" + (" (building random weights first)" if random_weights else ""))
    settings, models, load_s = load_models(settings, random_weights, Path(weights_dir) if weights_dir else tmp / "weights")
    result = measure(settings, models, photo_folder(weights_dir), tmp, rounds=2,
                              say=lambda m: _say(t0, m), **options)
    result.update(random_weights=random_weights, load_s=load_s, torch=torch.__version__,
                  torch_threads=torch.get_num_threads(), other_cpu_load=watch.others(),
                  seconds=round(time.perf_counter() - t0, 1))
    return result


def format_alone(r: dict) -> list[str]:
    tail = [f"other processes used {r['other_cpu_load']:.0%} of the CPU meanwhile"] if r.get("other_cpu_load") else []
    return (format_rows(r) + tail + ([f"({r['seconds']:.0f} s in all)"] if "seconds" in r else [])
            + (["[RANDOM WEIGHTS]"] if r.get("random_weights") else []))

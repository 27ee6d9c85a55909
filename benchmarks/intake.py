"""Intake benchmark: the work around the models per image, on 12-megapixel phone JPEGs.

Instant stand-in models (one fixed caption, fixed vectors) are plugged into SearchEngine, so what is
timed is everything else indexing does: read and hash the bytes, check and decode them, make the
thumbnail, write the original, the record and the vectors, upsert the index. Warm: imports done and
the store opened (one photo indexed) before the clock starts. The headline row is the issue's own
measurement: the whole engine as it was at --old (read from git, as benchmarks/indexing_e2e.py does)
against today's, each in a fresh process on the same photos; they take turns, --rounds times each,
and the best run is kept. The rows below it swap only today's intake for the one at --old
(library/intake.py and library/thumbnails.py as they were), in this process. The share of the CPU
other processes used meanwhile is printed: on a shared machine, read it first.

The photos are generated (4000 x 3000, smooth shapes, sensor-like noise, EXIF; every other one stored
sideways with orientation 6, as phones store portraits): JPEGs of ~4 MB, like a phone's. Also printed:
`load_image` and the thumbnail alone; the models' own input preparation from each intake's bitmap
(BLIP's image processor at 384 px and open_clip's 224 px transform, the CPU work a real model adds
before its first layer); the new intake + thumbnail on 2 threads (Pillow decodes and hashes without
holding the GIL); and indexing with the indexer's pipeline off (one thread, the way it was), taking
turns with the others.

    python benchmarks/intake.py                  # 40 photos, as the issue measured
    python benchmarks/intake.py -n 24 --rounds 2 --json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from indexing_e2e import old_tree, run_child  # noqa: E402  (benchmarks/, beside this file)

import visual_search  # noqa: E402
from visual_search import Settings  # noqa: E402
from visual_search.library import intake, thumbnails  # noqa: E402
from visual_search.measure.indexing import index_seconds, one_intake_thread  # noqa: E402
from visual_search.measure.instant_models import InstantCaptioner, InstantClip, InstantTextEncoder  # noqa: E402
from visual_search.measure.phone_photos import SIZE as PHOTO_SIZE, photos  # noqa: E402
from visual_search.measure.stages import CpuWatch  # noqa: E402

OLD_REV = "532b003"  # the last commit before issue 22's light intake
MAX_BYTES, MAX_PIXELS = 20 << 20, 100_000_000

# ---- today's intake, from git -------------------------------------------------------------------
def old_module(rev: str, name: str):
    """visual_search/<name>.py as it was at `rev`, imported beside the current one (None without git)."""
    try:
        source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:visual_search/{name}.py"],
                                capture_output=True, check=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    spec = importlib.util.spec_from_loader(f"visual_search._old_{name}", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "visual_search"  # its relative imports (.errors, .intake) resolve to today's modules
    sys.modules.setdefault("visual_search.intake", intake)  # moved to library/ since
    sys.modules[spec.name] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:visual_search/{name}.py", "exec"), module.__dict__)
    return module


def one_thread(on: bool):
    """The indexer without its pipeline (one thread: read, decode, thumbnail, write in turn)."""
    return one_intake_thread() if on else contextlib.nullcontext()


@contextlib.contextmanager
def using(load_image, make_thumbnail):
    """Every library module that calls `load_image` calls the given one; thumbnails are made by the given one."""
    patched = [(m, "load_image", m.load_image) for name, m in list(sys.modules.items())
               if name.startswith("visual_search.") and getattr(m, "load_image", None) is intake.load_image]
    patched.append((thumbnails, "make", thumbnails.make))
    try:
        for module, attr, _ in patched:
            setattr(module, attr, load_image if attr == "load_image" else make_thumbnail)
        yield
    finally:
        for module, attr, original in patched:
            setattr(module, attr, original)


# ---- the timings --------------------------------------------------------------------------------
def index_ms(paths: list[Path], warm: Path, tmp: Path) -> float:
    """ms per photo to index `paths` into a fresh collection whose store is already open and used."""
    models = {"captioner": InstantCaptioner(), "text_encoder": InstantTextEncoder(), "clip": InstantClip()}
    return index_seconds(Settings(data_dir=tmp, ocr="off"), models, paths, warm, tmp)[0] / len(paths) * 1000


def each_ms(fn, items) -> float:
    fn(items[0])
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - t0) / len(items) * 1000


def model_inputs():
    """BLIP's and CLIP's preparation of one image (resize, crop, normalise), or None without them."""
    try:
        import open_clip
        from transformers import BlipImageProcessor
    except ImportError:
        return None
    blip, clip = BlipImageProcessor(size={"height": 384, "width": 384}), open_clip.image_transform(224, False)
    return lambda image: (blip(images=[image], return_tensors="np"), clip(image))


def engine_ms(tree: Path, paths: list[Path], warm: Path, data_dir: Path) -> dict:
    """ms and CPU ms per photo of the whole engine in `tree` with the instant models, in a fresh process."""
    instant = REPO / "visual_search" / "measure" / "instant_models.py"
    got = run_child(tree, [warm, *paths], data_dir, {"BENCH_INSTANT_MODELS": str(instant)})
    return {"ms": got["seconds"] / got["images"] * 1000, "cpu_ms": got["cpu_s"] / got["images"] * 1000}


def engines(paths: list[Path], warm: Path, tmp: Path, rounds: int, old_rev: str) -> dict:
    """The whole engine at `old_rev` against today's, fresh processes taking turns; the best run of each."""
    trees = {"new": REPO}
    try:
        trees["old"] = old_tree(old_rev, tmp / "old-tree")
    except (OSError, subprocess.CalledProcessError):
        pass  # no git: today's alone
    best: dict[str, dict] = {}
    for r in range(rounds):
        for name, tree in (trees.items() if r % 2 == 0 else reversed(trees.items())):
            got = engine_ms(tree, paths, warm, tmp / f"engine-{name}-{r}")
            if name not in best or got["ms"] < best[name]["ms"]:
                best[name] = got
    return {f"{name}_engine_{k}": round(v, 1) for name, got in best.items() for k, v in got.items()}


def threaded_ms(datas: list[bytes], workers: int) -> float:
    def one(data: bytes) -> int:
        return len(thumbnails.make(intake.load_image(data, "p.jpg", MAX_BYTES, MAX_PIXELS).image))

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, datas[:workers]))
        t0 = time.perf_counter()
        list(pool.map(one, datas))
        return (time.perf_counter() - t0) / len(datas) * 1000


def run(n: int, rounds: int, folder: Path, old_rev: str) -> dict:
    paths = photos(folder, range(n + 1))
    warm, paths = paths[0], paths[1:]
    datas = [p.read_bytes() for p in paths]
    old_intake, old_thumbs = old_module(old_rev, "intake"), old_module(old_rev, "thumbnails")
    variants = {"new": (intake.load_image, thumbnails.make), "serial": (intake.load_image, thumbnails.make)}
    if old_intake is not None and old_thumbs is not None:
        variants["old"] = (old_intake.load_image, old_thumbs.make)
    figures: dict = {"photos": n, "photo_mb": round(float(np.mean([len(d) for d in datas])) / 2**20, 2),
                     "cores": len(os.sched_getaffinity(0)), "old_rev": old_rev if "old" in variants else None,
                     "pillow": Image.__version__}
    prepare = model_inputs()
    tmp = Path(tempfile.mkdtemp(prefix="vs-intake-bench-"))
    watch = CpuWatch()
    try:
        timings: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):  # old and new take turns, so a busy spell of the machine hits both
            for name, (load, make) in variants.items():
                with using(load, make), one_thread(name != "new"):
                    timings[name].append(index_ms(paths, warm, tmp))
        figures["serial_index_ms"] = round(min(timings.pop("serial")), 1)
        variants.pop("serial")
        for name, (load, make) in variants.items():
            figures[f"{name}_index_ms"] = round(min(timings[name]), 1)
            figures[f"{name}_load_image_ms"] = round(each_ms(lambda d, f=load: f(d, "p.jpg", MAX_BYTES, MAX_PIXELS),
                                                             datas), 1)
            bitmaps = [load(d, "p.jpg", MAX_BYTES, MAX_PIXELS).image for d in datas[:4]]
            figures[f"{name}_thumbnail_ms"] = round(each_ms(make, bitmaps), 1)
            figures[f"{name}_bitmap"] = "x".join(map(str, bitmaps[0].size))
            if prepare is not None:
                figures[f"{name}_model_inputs_ms"] = round(each_ms(prepare, bitmaps), 1)
        figures["new_2_threads_ms"] = round(min(threaded_ms(datas, 2) for _ in range(rounds)), 1)
        figures.update(engines(paths, warm, tmp, rounds, old_rev))
        figures["other_cpu_load"] = watch.others()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if "old_engine_ms" in figures:
        figures["speedup"] = round(figures["old_engine_ms"] / figures["new_engine_ms"], 2)
    if "old_index_ms" in figures:
        figures["intake_speedup"] = round(figures["old_index_ms"] / figures["new_index_ms"], 2)
    figures["pipeline_speedup"] = round(figures["serial_index_ms"] / figures["new_index_ms"], 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=40, help="photos indexed per round (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per intake; the best is kept (default 3)")
    parser.add_argument("--photos", type=Path, default=Path(tempfile.gettempdir()) / "vs-phone-photos",
                        help="where the generated photos are kept between runs")
    parser.add_argument("--old", default=OLD_REV, help=f"the git revision of today's intake (default {OLD_REV})")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    f = run(args.n, args.rounds, args.photos, args.old)
    if args.json:
        print(json.dumps(f))
        return
    print(f"{f['photos']} phone photos of {PHOTO_SIZE[0]} x {PHOTO_SIZE[1]}, {f['photo_mb']} MB on average; "
          f"{f['cores']} cores; Pillow {f['pillow']}; visual_search at {Path(visual_search.__file__).parent}")
    print(f"{'ms per image':<37}" + ("old (" + f["old_rev"] + ")   " if f["old_rev"] else "") + "new")
    rows = [("the whole engine, instant models", "engine_ms"), ("  its CPU ms", "engine_cpu_ms"),
            ("today's indexer with each intake", "index_ms"), ("load_image alone", "load_image_ms"),
            ("thumbnail alone", "thumbnail_ms")]
    if "new_model_inputs_ms" in f:
        rows.append(("BLIP + CLIP input preparation", "model_inputs_ms"))
    for label, key in rows:
        old = f"{f['old_' + key]:>10.1f}   " if f["old_rev"] else ""
        print(f"  {label:<34} {old}{f['new_' + key]:>6.1f}")
    print(f"  {'working bitmap':<34} " + (f"{f['old_bitmap']:>10}   " if f["old_rev"] else "") + f["new_bitmap"])
    print(f"  {'intake + thumbnail, 2 threads':<34} " + (" " * 13 if f["old_rev"] else "")
          + f"{f['new_2_threads_ms']:>6.1f}")
    print(f"  {'indexing, pipeline off':<34} " + (" " * 13 if f["old_rev"] else "")
          + f"{f['serial_index_ms']:>6.1f}   (the pipeline: {f['pipeline_speedup']}x)")
    if "speedup" in f:
        print(f"indexing without models: {f['speedup']}x lighter (the intake alone, in today's indexer: "
              f"{f['intake_speedup']}x)")
    if f["other_cpu_load"] is not None:
        print(f"other processes used {f['other_cpu_load']:.0%} of the CPU meanwhile")


if __name__ == "__main__":
    main()

"""CPU end to end, today's indexing against the one before issue 22, side by side.

Both index the same generated 12-megapixel phone JPEGs (visual_search/measure/phone_photos.py)
through `SearchEngine.index_paths` with the same full-size random-weight models (BLIP-base and
ViT-B-32 from visual_search/measure/models.py, the real all-MiniLM-L6-v2; captions capped at 12
tokens), one fresh process per run, warm (models loaded, store opened, one photo indexed before the
clock starts). The code before (--old, default 532b003) is read from git into a temporary folder
and imported from there; they take turns, per batch size (VS_CAPTION_BATCH), --rounds times each,
the best kept. Today's OCR is off (the code before had none; benchmarks/ocr.py measures what it adds).
The share of the CPU other processes used meanwhile is printed: on a shared machine, read it first.

    python benchmarks/indexing_e2e.py                      # 16 photos, batches 1,2,8, 2 rounds
    python benchmarks/indexing_e2e.py -n 8 --batches 2 --rounds 1 --json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from visual_search.measure import phone_photos  # noqa: E402
from visual_search.measure.models import CAPTION_TOKENS, random_models  # noqa: E402
from visual_search.measure.stages import CpuWatch  # noqa: E402

OLD_REV = "532b003"  # the last commit before issue 22

# One warm run of the engine on PYTHONPATH in a fresh process: the first path warms it, the rest are timed.
# With BENCH_INSTANT_MODELS (the path of measure/instant_models.py) the instant stand-ins replace the models.
CHILD = r"""
import importlib.util, json, os, sys, time
from pathlib import Path
from visual_search import SearchEngine, Settings
models = {}
if os.environ.get("BENCH_INSTANT_MODELS"):
    spec = importlib.util.spec_from_file_location("instant_models", os.environ["BENCH_INSTANT_MODELS"])
    instant = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(instant)
    models = {"captioner": instant.InstantCaptioner(), "text_encoder": instant.InstantTextEncoder(),
              "clip": instant.InstantClip()}
paths = [Path(p) for p in sys.argv[1:]]
engine = SearchEngine(Settings.from_env(), **models)
assert len(engine.index_paths([paths[0]]).added) == 1, "warm-up"
t0, c0 = time.perf_counter(), time.process_time()
report = engine.index_paths(paths[1:])
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
assert len(report.added) == len(paths) - 1 and not report.failed, report
words = sum(len(a.caption.split()) for a in report.added) / len(report.added)
print(json.dumps({"seconds": seconds, "cpu_s": cpu, "images": len(report.added), "caption_words": words}))
"""


def old_tree(rev: str, into: Path) -> Path:
    """visual_search/ as it was at `rev`, extracted under `into`."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "visual_search"], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_child(tree: Path, paths: list[Path], data_dir: Path, env: dict[str, str]) -> dict:
    """CHILD's figures for the engine in `tree`, indexing `paths` (the first one warms it) into `data_dir`."""
    env = {**os.environ, "PYTHONPATH": str(tree), "VS_DATA_DIR": str(data_dir), "VS_OCR": "off",
           "HF_HUB_OFFLINE": "1", "VS_CHROMA_URL": "", **env}
    done = subprocess.run([sys.executable, "-c", CHILD, *map(str, paths)], env=env, cwd=data_dir.parent,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the run at {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_one(tree: Path, paths: list[Path], batch: int, models, data_dir: Path) -> dict:
    return run_child(tree, paths, data_dir, {
        "VS_DEVICE": "cpu", "VS_CAPTION_MODEL": models.caption_model, "VS_CLIP_MODEL": models.clip_model,
        "VS_CLIP_PRETRAINED": models.clip_weights, "VS_TEXT_MODEL": models.text_model,
        "VS_CAPTION_MAX_TOKENS": str(CAPTION_TOKENS), "VS_CAPTION_BATCH": str(batch), "VS_PRECISION": "fp32",
        "VS_BACKEND": "torch"})


def run(n: int, batches: list[int], rounds: int, old_rev: str, folder: Path, weights: Path) -> dict:
    models = random_models(weights)
    paths = phone_photos.photos(folder, range(n + 1))
    watch = CpuWatch()
    with tempfile.TemporaryDirectory(prefix="vs-e2e-") as tmp:
        trees = {"old": old_tree(old_rev, Path(tmp) / "old"), "new": REPO}
        best: dict[str, dict[int, dict]] = {name: {} for name in trees}
        for r in range(rounds):
            for batch in batches:
                for name, tree in (trees.items() if r % 2 == 0 else reversed(trees.items())):
                    got = run_one(tree, paths, batch, models, Path(tmp) / f"data-{name}-{batch}-{r}")
                    got["images_per_s"] = round(got["images"] / got["seconds"], 3)
                    if batch not in best[name] or got["images_per_s"] > best[name][batch]["images_per_s"]:
                        best[name][batch] = got
    rows = [{"batch": b, "old_images_per_s": best["old"][b]["images_per_s"],
             "new_images_per_s": best["new"][b]["images_per_s"],
             "speedup": round(best["new"][b]["images_per_s"] / best["old"][b]["images_per_s"], 3),
             "old_cpu_s_per_image": round(best["old"][b]["cpu_s"] / n, 3),
             "new_cpu_s_per_image": round(best["new"][b]["cpu_s"] / n, 3),
             "caption_words": [best["old"][b]["caption_words"], best["new"][b]["caption_words"]]} for b in batches]
    best_old = max(r["old_images_per_s"] for r in rows)
    best_new = max(r["new_images_per_s"] for r in rows)
    return {"photos": n, "old_rev": old_rev, "cores": len(os.sched_getaffinity(0)), "rounds": rounds, "rows": rows,
            "best_speedup": round(best_new / best_old, 3), "other_cpu_load": watch.others()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=16, help="photos indexed per run (default 16)")
    parser.add_argument("--batches", default="1,2,8", help="VS_CAPTION_BATCH values (default 1,2,8)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per version and batch; the best is kept")
    parser.add_argument("--old", default=OLD_REV, help=f"the git revision compared against (default {OLD_REV})")
    parser.add_argument("--photos", type=Path, default=Path(tempfile.gettempdir()) / "vs-phone-photos")
    parser.add_argument("--weights", type=Path, default=Path(tempfile.gettempdir()) / "vs-random-models")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    f = run(args.n, [int(b) for b in args.batches.split(",")], args.rounds, args.old, args.photos, args.weights)
    if args.json:
        print(json.dumps(f))
        return
    print(f"{f['photos']} phone photos of 4000 x 3000, {f['cores']} cores, full-size random-weight BLIP-base and "
          f"ViT-B-32, captions of up to {CAPTION_TOKENS} tokens; best of {f['rounds']} runs each")
    print(f"batch   {f['old_rev']} images/s   today images/s   speedup   CPU s/image {f['old_rev']} / today")
    for r in f["rows"]:
        print(f"{r['batch']:>5} {r['old_images_per_s']:>16.3f} {r['new_images_per_s']:>16.3f} {r['speedup']:>8.2f}x"
              f"   {r['old_cpu_s_per_image']:.3f} / {r['new_cpu_s_per_image']:.3f}")
    print(f"best batch against best batch: {f['best_speedup']:.2f}x")
    if f["other_cpu_load"] is not None:
        print(f"other processes used {f['other_cpu_load']:.0%} of the CPU meanwhile")


if __name__ == "__main__":
    main()

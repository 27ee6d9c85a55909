"""Rebuild benchmark: how fast a missing index comes back from the catalog's stored vectors.

A Space keeps its catalog on a mounted bucket and Chroma on local disk (README "Deploy"); after a
restart the index is rebuilt from the records, without running a model. This fills a temporary
catalog with N synthetic images (originals of a few bytes, records with random unit vectors of the
default models' sizes), deletes nothing but the index, and times:
  * `reconcile()` with an empty index: the rebuild, in images/s;
  * `reconcile()` again on the rebuilt index: what every later start costs;
and checks that no model was loaded. It prints the figures (`--json` for machines).

    python benchmarks/rebuild.py            # 10,000 images
    python benchmarks/rebuild.py -n 1000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from visual_search import SearchEngine, Settings  # noqa: E402
from visual_search.library.catalog import vector_key  # noqa: E402
from visual_search.records import ImageRecord  # noqa: E402
from visual_search.stages.store import CAPTION, VISUAL  # noqa: E402

TEXT_DIM, CLIP_DIM = 384, 512  # all-MiniLM-L6-v2, ViT-B-32


def _unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def fill_catalog(engine: SearchEngine, n: int) -> float:
    rng = np.random.default_rng(0)
    cap_key = vector_key(CAPTION, engine.caption_identity)
    vis_key = vector_key(VISUAL, engine.visual_identity)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    for i in range(n):
        data = f"synthetic image {i}".encode()
        image_id = hashlib.sha256(data).hexdigest()
        path = engine.catalog.put_original(image_id, ".jpg", data)
        record = ImageRecord(id=image_id, path=str(path), filename=f"synthetic-{i:06d}.jpg",
                             caption=f"synthetic caption number {i}", width=640, height=480, added_at=now,
                             caption_model=engine.models.caption_model)
        engine.catalog.put_record(record, {cap_key: _unit(rng, TEXT_DIM), vis_key: _unit(rng, CLIP_DIM)})
    return time.perf_counter() - t0


def run(n: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="vs-rebuild-"))
    try:
        engine = SearchEngine(Settings(data_dir=tmp / "data"))  # default model ids: identities only, never loaded
        fill_s = fill_catalog(engine, n)
        t0 = time.perf_counter()
        entries = sum(1 for _ in engine.catalog.entries())
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rebuilt = engine.reconcile()
        rebuild_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = engine.reconcile()
        steady_s = time.perf_counter() - t0
        loaded = [m for m in ("captioner", "text_encoder", "clip") if engine.models.loaded(m)]
        assert rebuilt == n and again == 0 and engine.count() == n and not loaded, (rebuilt, again, loaded)
        return {"images": n, "fill_s": round(fill_s, 1), "catalog_read_s": round(read_s, 2), "entries": entries,
                "rebuild_s": round(rebuild_s, 2), "rebuild_images_per_s": round(n / rebuild_s),
                "steady_start_s": round(steady_s, 2), "models_loaded": loaded}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="synthetic images in the catalog (default 10,000)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = run(args.n)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"catalog of {figures['images']:,} images (filled in {figures['fill_s']} s)")
    print(f"  read every record:             {figures['catalog_read_s']:.2f} s")
    print(f"  rebuild an empty index:        {figures['rebuild_s']:.2f} s = {figures['rebuild_images_per_s']:,} images/s")
    print(f"  a later start (index in step): {figures['steady_start_s']:.2f} s")
    print(f"  models loaded: {figures['models_loaded'] or 'none'}")


if __name__ == "__main__":
    main()

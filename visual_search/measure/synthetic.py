"""What bench's search and filter measurements share: a synthetic collection (records with random
unit vectors, written the way the engine writes them), the queries asked of it, and timing helpers.
stages.py, filter_costs.py and levers.py all import this module, and none of them each other's.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta, timezone
from typing import Callable, Sequence

import numpy as np

from ..engine import SearchEngine
from ..library.catalog import vector_key
from ..records import ImageRecord
from ..stages.store import CAPTION, VISUAL

SUBJECTS = (
    "a dog", "a cat", "two children", "an old man", "a red car", "a cup of coffee", "a mountain lake", "a bicycle",
    "a bird", "a woman with an umbrella", "a bowl of soup", "a sailing boat", "a rocket", "a horse", "fresh flowers",
    "a wooden bridge", "a city street", "a plate of fruit",
)
PLACES = (
    "on the beach", "in the snow", "at night", "in a forest", "next to a window", "in the rain", "on a table",
    "under a blue sky", "in a busy market", "at sunset", "in a park", "by a river",
)


COMBOS = [f"{s} {p}" for p in PLACES for s in SUBJECTS]  # queries, and the synthetic images' captions


def queries(n: int, skip: int = 0) -> list[str]:
    """n distinct realistic queries; `skip` starts further down the list (fresh, uncached ones)."""
    return [COMBOS[i % len(COMBOS)] + (f" {i // len(COMBOS)}" if i >= len(COMBOS) else "")
            for i in range(skip, skip + n)]


def encode_both(engine: SearchEngine, text: str) -> None:
    """One query through both encoders, uncached, as a new search does."""
    engine.text_encoder.encode([text])
    engine.clip.encode_texts([text])


def pct(samples: Sequence[float]) -> dict[str, float]:
    a = np.asarray(samples, dtype=np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2), "n": len(a)}


def time_each(fn: Callable[[object], object], items: Sequence) -> list[float]:
    """Milliseconds of fn(item) for every item, after one untimed warm-up call."""
    fn(items[0])
    out = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - t0) * 1000)
    return out


FILL_BATCH = 500


def _unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


SYNTHETIC_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def synthetic_record(i: int, named: int = 0) -> ImageRecord:
    """Synthetic image i: added i minutes after SYNTHETIC_EPOCH, tagged `tag-{i % 10}` (filters have work to do).
    With `named`, every named-th one is called after its caption's subject ("dog_000042.jpg", as
    people name the photos they keep), so the word channel finds some images by name."""
    image_id = hashlib.sha256(f"synthetic-{i}".encode()).hexdigest()
    added = (SYNTHETIC_EPOCH + timedelta(minutes=i)).isoformat(timespec="seconds")
    subject = SUBJECTS[i % len(SUBJECTS)].split(" ", 1)[-1].replace(" ", "_")  # COMBOS' order: subject first
    name = f"{subject}_{i:06d}.jpg" if named and i % named == 0 else f"synthetic-{i:06d}.jpg"
    return ImageRecord(id=image_id, path=f"{image_id}.jpg", filename=name,
                       caption=COMBOS[i % len(COMBOS)], width=640, height=480, added_at=added,
                       caption_model="synthetic", tags=(f"tag-{i % 10}",), tags_model="synthetic")


def fill(engine: SearchEngine, start: int, stop: int, rng: np.random.Generator, named: int = 0) -> float:
    """Add synthetic images start..stop-1: catalog records plus random unit vectors, as the engine writes them.

    No image files: records (with their vectors, as the engine writes them) point at originals that
    do not exist, which search never reads.
    Written FILL_BATCH at a time: the engine writes groups of 8, and batches of 5,000 left ~130 MB
    of freed memory held by the allocator that real indexing never holds (measured, docs/benchmarks.md).
    """
    t0 = time.perf_counter()
    cap_key, vis_key = vector_key(CAPTION, engine.caption_identity), vector_key(VISUAL, engine.visual_identity)
    for lo in range(start, stop, FILL_BATCH):
        hi = min(stop, lo + FILL_BATCH)
        records = [synthetic_record(i, named) for i in range(lo, hi)]
        visual = _unit_rows(rng, len(records), engine.clip.dim)
        caption = _unit_rows(rng, len(records), engine.text_encoder.dim)
        for r, v, c in zip(records, visual, caption):  # records as large as the engine's: vectors inside
            engine.catalog.put_record(r, {cap_key: c, vis_key: v})
        engine.store.upsert_visual(records, visual)
        engine.store.upsert_captions(records, caption)
    return time.perf_counter() - t0

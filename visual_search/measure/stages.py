"""What `bench` measures: each stage on real sample images, end-to-end indexing, and search over a
store of N synthetic images. Every function takes loaded models and returns plain numbers.

Timings are wall clock (`time.perf_counter`) after one untimed warm-up call, in milliseconds
unless a name says otherwise; distributions are reported as p50 / p95.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..engine import SearchEngine
from ..library.indexer import WRITE_GROUP
from ..search.candidates import CANDIDATE_POOL
from .filter_costs import filter_costs
from .levers import search_levers
from .synthetic import encode_both, fill, pct, queries, time_each
from ..library.intake import load_image
from ..stages.store import CAPTION, VISUAL

def rss_mb() -> float:
    """Resident memory now (the peak is `peak_rss_mb`)."""
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


def rss_split_mb() -> dict[str, float]:
    """Anonymous vs file-backed resident memory (Linux). Weights that transformers maps from their
    safetensors file count as file-backed: read-only pages shared with the page cache."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    fields = {k: v for k, v in (line.split(":", 1) for line in lines if line.startswith(("RssAnon", "RssFile")))}
    return {k[3:].lower(): round(int(v.split()[0]) / 1024, 1) for k, v in fields.items()}  # anon, file


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


class CpuWatch:
    """Share of the machine's CPU time used by OTHER processes while we measured (Linux only).

    Other work on a 2-core machine slows every figure; the bench prints this so a reader can tell.
    """

    def __init__(self) -> None:
        self.t0, self.busy0, self.ours0 = time.perf_counter(), _busy_seconds(), _our_seconds()

    def others(self) -> float | None:
        busy = _busy_seconds()
        if busy is None or self.busy0 is None:
            return None
        wall = time.perf_counter() - self.t0
        theirs = (busy - self.busy0) - (_our_seconds() - self.ours0)
        return round(max(0.0, theirs / (wall * (os.cpu_count() or 1))), 3)


def _busy_seconds() -> float | None:
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _our_seconds() -> float:
    """CPU seconds of this process and of the children it has waited for (a run it timed is ours)."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


# ---- stages on real images ----------------------------------------------------------------------
def load_images(paths: Sequence[Path], settings) -> list[Image.Image]:
    """Decoded the way indexing decodes them (intake), once, for every stage."""
    return [load_image(p.read_bytes(), p.name, settings.max_file_bytes, settings.max_pixels).image for p in paths]


def caption_stage(captioner, images: list[Image.Image]) -> dict:
    """Seconds per image at batch 1 and at the engine's write group, and the captions made."""
    captioner.caption(images[:1])
    configured, out = captioner.batch_size, {"write_group": WRITE_GROUP}
    try:
        for name, batch in (("batch1", 1), ("write_group", WRITE_GROUP)):
            captioner.batch_size = batch
            t0 = time.perf_counter()
            captions = captioner.caption(images)
            out[f"{name}_s_per_image"] = round((time.perf_counter() - t0) / len(images), 3)
    finally:
        captioner.batch_size = configured
    out["captions"] = captions
    out["mean_words"] = round(float(np.mean([len(c.split()) for c in captions])), 1)
    return out


def clip_image_stage(clip, images: list[Image.Image]) -> dict:
    """ms per image, one image per call vs the engine's write groups (the CLIP batching lever)."""
    per_image = time_each(lambda im: clip.encode_images([im]), images)
    groups = [images[i : i + WRITE_GROUP] for i in range(0, len(images), WRITE_GROUP)]
    grouped = time_each(clip.encode_images, groups)
    return {
        "batch1_ms_per_image": round(sum(per_image) / len(images), 1),
        "write_group_ms_per_image": round(sum(grouped) / len(images), 1),
    }


def caption_embedding_stage(text_encoder, captions: list[str]) -> dict:
    groups = [captions[i : i + WRITE_GROUP] for i in range(0, len(captions), WRITE_GROUP)]
    ms = time_each(text_encoder.encode, groups)
    return {"ms_per_caption": round(sum(ms) / len(captions), 2)}


def query_encoding_stage(engine: SearchEngine, texts: list[str]) -> dict:
    """Per query: caption channel, CLIP trimmed to the real tokens (production), CLIP at 77 tokens."""
    clip = engine.clip

    @torch.inference_mode()
    def clip_full(text: str):
        return clip.model.encode_text(clip.tokenizer([text]).to(clip.device))

    return {
        "caption_ms": pct(time_each(lambda t: engine.text_encoder.encode([t]), texts)),
        "clip_trimmed_ms": pct(time_each(lambda t: clip.encode_texts([t]), texts)),
        "clip_full77_ms": pct(time_each(clip_full, texts)),
        "both_ms": pct(time_each(lambda t: encode_both(engine, t), texts)),
    }


def index_end_to_end(engine: SearchEngine, paths: list[Path]) -> dict:
    """`index_paths` on the sample files into an empty data dir: decode, caption, both embeddings, store."""
    t0 = time.perf_counter()
    report = engine.index_paths(paths)
    seconds = time.perf_counter() - t0
    if report.failed or len(report.added) != len(paths):
        raise RuntimeError(f"bench indexing failed: {[f.error for f in report.failed]}")
    return {"images": len(paths), "seconds": round(seconds, 2), "images_per_s": round(len(paths) / seconds, 3)}


# ---- search over N synthetic images -----------------------------------------------------------------
def search_at_sizes(engines: dict[str, SearchEngine], main: str, sizes: list[int], n_queries: int,
                    k: int = 10) -> dict:
    """For each N (ascending, filled cumulatively): fill time, store query ms, search ms cold and warm.

    `engines` share one data dir and differ in their query encoders (torch, ONNX Runtime); each
    new query is searched by all of them in turn, in an order that alternates, so they are timed
    under the same conditions. `main` (the backend the app uses) gives the store and warm figures.
    """

    engine = engines[main]
    rng = np.random.default_rng(0)
    out, have = {}, 0
    for i, n in enumerate(sorted(sizes)):
        fill_s = fill(engine, have, n, rng)
        have = n
        texts = queries(n_queries, skip=200 + i * n_queries)  # fresh per N: nothing cached
        t0 = time.perf_counter()
        _check(engine.search("warm-up query: a lighthouse on a cliff", k=k, min_relevance=0.0), k)
        first_ms = (time.perf_counter() - t0) * 1000
        for other in engines.values():
            _check(other.search("warm-up query: a lighthouse on a cliff", k=k, min_relevance=0.0), k)
        answers = {name: [] for name in engines}
        names = list(engines)
        for j, text in enumerate(texts):
            for name in names[j % 2 :] + names[: j % 2]:
                answers[name].append(_timed_search(engines[name], text, k, keep=True))
        cold = [ms for ms, _ in answers[main]]
        warm = [_timed_search(engine, t, k) for t in texts]  # the query cache answers the encoders
        vectors = [engine.queries.encode(t) for t in texts]
        cv, vv = vectors[0]
        caption_hits = [h.id for h in engine.store.query(CAPTION, cv, CANDIDATE_POOL)]
        visual_hits = [h.id for h in engine.store.query(VISUAL, vv, CANDIDATE_POOL)]
        out[str(n)] = {
            "levers": search_levers(engines, queries(2 * n_queries, skip=20_000 + i * 2 * n_queries), k),
            "filters": filter_costs(engine, texts, n, k),
            "fill_s": round(fill_s, 1),
            "first_search_ms": round(first_ms, 1),
            "search_ms": pct(cold),
            "backends": {name: pct([ms for ms, _ in got]) for name, got in answers.items()},
            "agreement": agreement([r for _, r in answers["torch"]], [r for _, r in answers[main]])
            if "torch" in answers and main != "torch" else None,
            "search_warm_ms": pct(warm),
            "store_query_ms": {
                kind: pct(time_each(lambda v: engine.store.query(kind, v[j], CANDIDATE_POOL), vectors))
                for j, kind in enumerate((CAPTION, VISUAL))
            },
            # count(): what a search no longer does; vectors: the rest of a search's store work, each
            # channel's hits read on the other channel
            "store_count_ms": pct(time_each(lambda _: engine.store.count(), range(20))),
            "store_vectors_ms": pct(time_each(lambda _: (engine.store.embeddings(VISUAL, caption_hits),
                                                         engine.store.embeddings(CAPTION, visual_hits)), range(20))),
        }
    return out


def _timed_search(engine: SearchEngine, text: str, k: int, keep: bool = False):
    """Milliseconds of one search (and its response, with `keep`)."""
    t0 = time.perf_counter()
    response = engine.search(text, k=k, min_relevance=0.0)  # always k results: the cost of a full page
    ms = (time.perf_counter() - t0) * 1000
    _check(response, k)
    return (ms, response) if keep else ms


def agreement(reference: list, other: list) -> dict:
    """How far two backends' answers to the same queries differ: same top-k ids in the same order,
    and the largest relevance difference over every result."""
    same = sum([r.record.id for r in a.results] == [r.record.id for r in b.results] for a, b in zip(reference, other))
    diffs = []
    for a, b in zip(reference, other):
        theirs = {r.record.id: r.relevance for r in b.results}
        diffs += [abs(r.relevance - theirs[r.record.id]) for r in a.results if r.record.id in theirs]
    return {"queries": len(reference), "same_top_k": same,
            "max_relevance_diff": float(f"{max(diffs, default=0.0):.3g}")}


def _check(response, k: int) -> None:
    """A timing only counts if the search answered properly: k results, relevance in [0, 1], records."""
    ok = len(response.results) == k and all(
        0.0 <= r.relevance <= 1.0 and r.record.filename and len(r.record.id) == 64 for r in response.results)
    if not ok:
        raise RuntimeError(f"bench search returned a malformed response for {response.query!r}")

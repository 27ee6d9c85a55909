"""Levers `bench` measures side by side with the production path, so each one is kept or dropped on
figures: torch thread count, query encoding while indexing runs in another thread, the two query
encoders run in parallel, the sentence-transformers library in place of our text encoder, int8
captioning (an opt-in candidate; the app does not use it), and on a filled store a search's two
channels at once or one after the other, and where a result's record is read from.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from .synthetic import encode_both, pct, time_each
from ..engine import SearchEngine
from ..library.indexer import WRITE_GROUP
from ..search.candidates import SEQUENTIAL


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Intra-op threads for the calling thread only (torch's OpenMP backend keeps the count per thread)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _one_and_default_threads() -> list[int]:
    return sorted({1, torch.get_num_threads()})


def threads(engine: SearchEngine, images: list[Image.Image], texts: list[str]) -> dict:
    """CLIP image groups and query encoding with 1 thread vs torch's default (one per core)."""
    out = {}
    group = images[:WRITE_GROUP]
    for n in _one_and_default_threads():
        with torch_threads(n):
            img = time_each(engine.clip.encode_images, [group, group])
            q = time_each(lambda t: encode_both(engine, t), texts)
        out[str(n)] = {"clip_image_ms_per_image": round(float(np.mean(img)) / len(group), 1),
                       "query_encoding_ms": pct(q)}
    return out


def parallel_encoders(engine: SearchEngine, texts: list[str]) -> dict:
    """Caption-channel and CLIP text encoders one after the other (production) vs at once, 1 thread each."""
    pool = ThreadPoolExecutor(1)

    def clip_one_thread(text: str):
        with torch_threads(1):
            return engine.clip.encode_texts([text])

    def together(text: str) -> None:
        future = pool.submit(clip_one_thread, text)
        with torch_threads(1):
            engine.text_encoder.encode([text])
        future.result()

    try:
        return {"sequential_ms": pct(time_each(lambda t: encode_both(engine, t), texts)),
                "parallel_ms": pct(time_each(together, texts))}
    finally:
        pool.shutdown()


def while_indexing(engine: SearchEngine, images: list[Image.Image], texts: list[str]) -> dict:
    """Query encoding while another thread captions (a search during an upload), 1 vs default threads."""
    stop = threading.Event()

    def caption_forever() -> None:
        while not stop.is_set():
            engine.captioner.caption(images[:1])

    worker = threading.Thread(target=caption_forever, daemon=True)
    worker.start()
    time.sleep(0.5)
    out = {}
    try:
        for n in _one_and_default_threads():
            with torch_threads(n):
                out[str(n)] = pct(time_each(lambda t: encode_both(engine, t + f" ({n})"), texts))
    finally:
        stop.set()
        worker.join()
    return out


def sentence_transformers_library(text_encoder, texts: list[str]) -> dict | None:
    """The sentence-transformers library (what the project used before) vs our plain-transformers
    encoder on the same model folder: query latency, the vectors' agreement, and the import's memory.
    None when the library is not installed (it is a dev dependency)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    library = SentenceTransformer(text_encoder.identity, device="cpu")

    def theirs(text: str) -> np.ndarray:
        return library.encode([text], normalize_embeddings=True, show_progress_bar=False)

    theirs(texts[0])
    agree = float(np.min(np.sum(library.encode(texts, normalize_embeddings=True) * text_encoder.encode(texts), 1)))
    probe = ("import psutil, transformers, torch; p = psutil.Process(); a = p.memory_info().rss; "
             "import sentence_transformers; print((p.memory_info().rss - a) / 2**20)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return {"library_ms": pct(time_each(theirs, texts)),
            "ours_ms": pct(time_each(lambda t: text_encoder.encode([t]), texts)),
            "min_cosine": round(agree, 6),
            "import_mb": round(float(done.stdout.split()[-1]), 1) if done.returncode == 0 else None}


def int8_captioning(captioner, images: list[Image.Image]) -> dict:
    """BLIP with dynamic int8 Linear layers (torch.ao, deprecated upstream): what an opt-in would give.

    With random weights only the speed means something; caption quality needs real weights.
    """
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(captioner.model, {torch.nn.Linear}, dtype=torch.qint8)
    original, captioner.model = captioner.model, quantized
    configured, captioner.batch_size = captioner.batch_size, 1
    try:
        captioner.caption(images[:1])
        t0 = time.perf_counter()
        captioner.caption(images)
        return {"batch1_s_per_image": round((time.perf_counter() - t0) / len(images), 3)}
    finally:
        captioner.model, captioner.batch_size = original, configured
        del quantized


def search_levers(engines: dict[str, SearchEngine], texts: list[str], k: int = 10) -> dict:
    """On a filled store, per backend: new-query searches with the two channels in lanes at once (the
    engine's way) vs one after the other, on alternate fresh queries; then a page's records read from
    the catalog (the engine's way) vs in one Chroma `get`."""
    lanes = {}
    for name, engine in engines.items():
        kept, times = engine.lanes, {"at_once": [], "one_after_other": []}
        try:
            for j, text in enumerate(texts):
                variant = ("at_once", "one_after_other")[j % 2]
                engine.lanes = kept if variant == "at_once" else SEQUENTIAL
                t0 = time.perf_counter()
                engine.search(text, k=k, min_relevance=0.0)  # fresh: new to this engine's query cache
                times[variant].append((time.perf_counter() - t0) * 1000)
        finally:
            engine.lanes = kept
        lanes[name] = {variant: pct(ms) for variant, ms in times.items()}
    engine = next(iter(engines.values()))
    pages = [[r.record.id for r in engine.search(t, k=k, min_relevance=0.0).results] for t in texts[:20]]
    records = {"catalog_ms": pct(time_each(lambda ids: [engine.catalog.get(i) for i in ids], pages)),
               "chroma_get_ms": pct(time_each(engine.store.records, pages))}
    return {"lanes": lanes, "records": records}

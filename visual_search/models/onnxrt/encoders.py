"""The query encoders on ONNX Runtime: exported graphs plus `tokenizers`, no torch anywhere.

Each mirrors its torch twin step for step (stages/embed.py, stages/visual.py): the same prompt and
lower-casing, the same tokens, the same trimming, and a graph exported from the torch code itself
that returns unit vectors. Built from an export folder (cache.py) that export.py wrote and verified.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from ...stages.rank import CAPTION_TEXT, Calibration
from ...stages.embed import ModelSpec
from .cache import META
from .clip_bpe import ClipBpeTokenizer


def cores() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def session(path: Path, threads: int | None = None):
    """A CPU session with every graph optimisation and `threads` intra-op threads (one per usable core).

    Threads sleep between runs instead of spinning: with other work on the cores (a captioning
    upload, another process) spinning made a query slower, 28 ms against 15 ms p50
    (docs/benchmarks.md), and it burns CPU the captioner needs.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or cores()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise here
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _meta(folder: Path) -> dict:
    """What export.py wrote beside the graph (given directly while the export is being verified)."""
    return json.loads((folder / META).read_text(encoding="utf-8"))


class OnnxTextEncoder:
    """The caption-channel text encoder (a sentence-transformers model) on ONNX Runtime.

    Its session has one intra-op thread: a query encodes beside CLIP's text tower (stages/query.py), which
    has every core, and the pair took 14.3 against 15.6 ms in a search with two threads here
    (docs/benchmarks.md). Batches (captions at index time, evaluation) instead run in parts side
    by side on the same session, one per core: as fast as two intra-op threads (92 against 100 ms
    for 64 captions), without a second session's memory.
    """

    calibration: Calibration = CAPTION_TEXT
    concurrent = True  # runs beside the other query encoder (stages/query.py): ONNX Runtime releases the GIL

    def __init__(self, folder: Path, identity: str, meta: dict | None = None, batch_size: int = 64) -> None:
        from tokenizers import Tokenizer

        meta = meta or _meta(folder)
        self.identity, self.batch_size = identity, batch_size
        self.dim = int(meta["dim"])
        self.spec = ModelSpec(**{**meta["spec"], "pooling": tuple(meta["spec"]["pooling"])})
        self.inputs = list(meta["inputs"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(int(meta["max_length"]), direction=meta["truncation_side"])
        self.tokenizer.enable_padding(pad_id=int(meta["pad_id"]), pad_token=meta["pad_token"],
                                      direction=meta["padding_side"])
        self.session = session(folder / "model.onnx", threads=1)

    def tokens(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The graph's inputs for prepared texts (`ModelSpec.prepare`): ids, attention mask (and token
        types), padded to the longest and truncated as the torch encoder's tokenizer does."""
        done = self.tokenizer.encode_batch(list(texts))
        fields = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
        return {name: np.array([getattr(e, fields[name]) for e in done], np.int64) for name in self.inputs}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit rows; batched longest first like the torch encoder, returned in the callers' order."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        texts = self.spec.prepare(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        n_cores = cores()
        size = min(self.batch_size, max(1, -(-len(order) // n_cores)))  # at least one part per core
        parts = [order[start : start + size] for start in range(0, len(order), size)]
        out = np.empty((len(texts), self.dim), np.float32)

        def run(rows: list[int]) -> None:
            out[rows] = self.session.run(None, self.tokens([texts[i] for i in rows]))[0]

        if len(parts) == 1:  # a query: no thread to start
            run(parts[0])
        else:  # a pool made per call: nothing to carry into a forked child (ZeroGPU's workers)
            with ThreadPoolExecutor(min(n_cores, len(parts))) as pool:
                list(pool.map(run, parts))
        return out


class OnnxClipText:
    """CLIP's text tower on ONNX Runtime: what `ClipEncoder.encode_texts` computes, for queries."""

    concurrent = True

    def __init__(self, folder: Path, identity: str, meta: dict | None = None, batch_size: int = 32) -> None:
        meta = meta or _meta(folder)
        self.identity, self.batch_size = identity, batch_size
        self.dim = int(meta["dim"])
        self.trim = bool(meta["trim"])
        self.tokenizer = ClipBpeTokenizer(folder)
        self.session = session(folder / "model.onnx")

    def tokens(self, texts: Sequence[str]) -> np.ndarray:
        """open_clip's token ids, cut after the longest text's end token when the tower allows it."""
        tokens = self.tokenizer(list(texts))
        if self.trim and len(tokens):
            tokens = tokens[:, : int(tokens.argmax(axis=1).max()) + 1]  # the end token has the highest id
        return tokens

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        chunks = [self.session.run(None, {"tokens": self.tokens(texts[i : i + self.batch_size])})[0]
                  for i in range(0, len(texts), self.batch_size)]
        return np.concatenate(chunks).astype(np.float32, copy=False)

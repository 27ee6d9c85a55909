"""The torch side: export a loaded encoder's query path to ONNX, then hold the export to torch.

The exported graphs run the torch encoders' own code (`SentenceTransformerEncoder.vectors`,
`ClipEncoder.text_tower`), so there is one definition of each computation. The exporter is
`torch.onnx.export(..., dynamo=True)`; the older TorchScript exporter silently produced wrong
BERT vectors under transformers 5 (docs/benchmarks.md), which is why every export is verified:
for each probe text the token ids must be the torch tokenizer's, and the vector's cosine to
torch's at least MIN_COSINE, encoded alone and in a batch. An export that fails either is kept
as a refusal with its reason, and the torch encoder is used.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from .cache import write_meta
from .clip_bpe import save_tokenizer

if TYPE_CHECKING:
    from ...stages.visual import ClipEncoder
    from ...stages.embed import SentenceTransformerEncoder

MIN_COSINE = 0.99999
PROBES = (  # short and long, cased, unicode, emoji, other scripts, markup, what a tokenizer trips on
    "a dog", "a dog running on the beach at sunset", "A Red BUS parked by a Brick Wall", "x", "2 cats & 3 dogs!!",
    "café — naïve “quoted” façade", "cafÃ© mojibake &amp; entities &lt;b&gt;", "🐶🐱‍👤 emoji 👩🏽‍🚀 🇯🇵",
    "日本語の文章と中文搜索", "русский текст и ΕΛΛΗΝΙΚΆ ΟΔΟΣ", "العربية עברית हिन्दी ไทย 한국어",
    "it's they're I'm you'll he'd", "<end_of_text> [SEP] [CLS] <|endoftext|>", "tab\there  and\nnewline",
    "a lighthouse on a cliff above a stormy sea " * 60,  # past every model's token limit (512 and fewer)
)


def export_text_encoder(encoder: "SentenceTransformerEncoder", folder: Path) -> dict:
    """The transformer, pooling and normalisation as one graph (ids, mask[, types] -> unit vectors),
    with the tokenizer the torch encoder uses. Returns the export's metadata."""
    tok = encoder.tokenizer
    inputs = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in encoder.tokens(["a b"])]
    module = graph(encoder.model, lambda *tensors: encoder.vectors(dict(zip(inputs, tensors))))
    example = encoder.tokens(encoder.spec.prepare(["a probe text", "another"]))
    export_graph(module, tuple(example[n] for n in inputs), inputs, folder, sequence_axis=True)
    backend = json.loads(tok.backend_tokenizer.to_str())
    backend["truncation"] = backend["padding"] = None  # set per call by transformers; encoders.py sets its own
    (folder / "tokenizer.json").write_text(json.dumps(backend, ensure_ascii=False), encoding="utf-8")
    spec = encoder.spec
    return {"dim": encoder.dim, "inputs": inputs, "max_length": encoder.max_length,
            "spec": {"pooling": list(spec.pooling), "max_seq_length": spec.max_seq_length,
                     "lowercase": spec.lowercase, "prompt": spec.prompt, "folder": spec.folder},
            "pad_id": tok.pad_token_id, "pad_token": tok.pad_token, "truncation_side": tok.truncation_side,
            "padding_side": tok.padding_side}


def export_clip_text(clip: "ClipEncoder", folder: Path) -> dict:
    """CLIP's text tower (tokens -> unit vectors) and open_clip's tokenizer data. A trimmable tower
    takes any token count up to the context length; another kind takes the full context."""
    import torch

    tok = clip.tokenizer
    needed = ("encoder", "bpe_ranks", "all_special_ids", "sot_token_id", "eot_token_id", "context_length")
    if not all(hasattr(tok, a) for a in needed) or getattr(tok, "reduction_fn", None) is not None:
        raise ExportRefused(f"open_clip's {type(tok).__name__} has no torch-free equivalent here")
    tower = clip.text_tower if clip.trimmable else clip.model.encode_text
    module = graph(clip.model, lambda tokens: torch.nn.functional.normalize(tower(tokens).float(), dim=-1))
    example = tok(["a probe text", "another"])
    if clip.trimmable:
        example = example[:, : int(example.argmax(dim=-1).max()) + 1]
    export_graph(module, (example,), ["tokens"], folder, sequence_axis=clip.trimmable)
    save_tokenizer(tok, folder)
    return {"dim": clip.dim, "trim": clip.trimmable}


class ExportRefused(Exception):
    """This model cannot be exported or run without torch; the message says why."""


def failure(exc: BaseException) -> str:
    """One readable line for an export that raised (torch.export's own messages run to pages)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    if "## Exception summary" in text:  # torch.onnx: the cause is the line after this heading
        text = text.split("## Exception summary", 1)[1].strip()
    line = text.splitlines()[0] if text else ""
    return f"export failed ({type(exc).__name__}: {line[:200]})"


def graph(model, run: Callable):
    """A Module that owns `model` (so the exporter sees its weights) and computes `run(*tensors)`."""
    import torch

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return run(*tensors)

    return Graph()


def export_graph(module, args: tuple, names: list[str], folder: Path, sequence_axis: bool) -> None:
    """`torch.onnx.export` with dynamo, a dynamic batch axis (and token axis), quietly. `module` is
    a `graph` on the CPU (ONNX Runtime runs there): its forward takes `*tensors`, one per name."""
    import torch

    axes = {0: torch.export.Dim("batch", max=4096)}
    if sequence_axis:
        axes[1] = torch.export.Dim("tokens", min=1, max=8192)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.inference_mode(False):
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(folder / "model.onnx"),
                          input_names=names, output_names=["vectors"], dynamic_shapes=(tuple([axes] * len(args)),),
                          dynamo=True, optimize=True, external_data=True, verbose=False)


def verify(torch_ids: Callable[[list[str]], list[list[int]]], onnx_ids: Callable[[list[str]], list[list[int]]],
           torch_encode: Callable[[list[str]], np.ndarray], onnx_encode: Callable[[list[str]], np.ndarray],
           probes: Sequence[str] = PROBES) -> tuple[str | None, float]:
    """(why the export may not be used, or None; the lowest probe cosine to torch)."""
    probes = list(probes)
    for text in probes:
        if torch_ids([text]) != onnx_ids([text]):
            return f"its tokenizer gives other token ids than torch's for {text[:40]!r}", 0.0
    want = torch_encode(probes)
    got = [onnx_encode(probes), np.concatenate([onnx_encode([t]) for t in probes])]  # batched, and one by one
    cosines = np.minimum(*[np.sum(g * want, axis=1) for g in got])
    worst = int(np.argmin(cosines))
    if not cosines[worst] >= MIN_COSINE:  # also refuses NaN
        return f"its vector for {probes[worst][:40]!r} has cosine {cosines[worst]:.6f} to torch's (needs {MIN_COSINE})", \
            float(cosines[worst])
    return None, float(cosines[worst])


def finish(folder: Path, meta: dict, refusal: str | None, worst: float, started: float) -> dict:
    """Write the export's metadata (last: it marks the folder complete) and return it. A refused
    export keeps only its metadata: the reason, and the key that says when to try again."""
    if refusal is not None:
        for path in folder.glob("model.onnx*"):
            path.unlink()
    meta = {**meta, "verified": refusal is None, "reason": refusal, "min_cosine": round(worst, 7),
            "probes": len(PROBES), "export_s": round(time.perf_counter() - started, 1)}
    write_meta(folder, meta)
    return meta

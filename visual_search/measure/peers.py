"""The paths a user would otherwise take, timed in the same run, same model, same images.

  * visual channel: Chroma's own `OpenCLIPEmbeddingFunction` with `collection.add(images=...)` and
    `collection.query(query_texts=...)`, loaded from the same architecture and weights file as ours;
  * captioning: a plain `transformers` pipeline on the same BLIP folder, at its defaults except
    the generation length, which is set to ours (random weights never stop on their own).

Ratios are theirs / ours: above 1 means we are faster. Each peer's output is compared with ours,
so a ratio never compares different models by mistake.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from .stages import pct, time_each
from ..stages.visual import SELF_CONTAINED
from ..config import Settings
from ..library.indexer import WRITE_GROUP
from ..stages.store import VISUAL, VectorStore, make_client


def chroma_openclip(clip, model_name: str, checkpoint: str | None, images: list[Image.Image], texts: list[str],
                    folder: Path) -> dict:
    """Index the images and answer text queries both ways, into fresh persistent stores."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from chromadb.utils.embedding_functions import OpenCLIPEmbeddingFunction

    # The same architecture and weights: a `local-dir:` name carries its weights, anything else
    # takes the tag or weights file as `checkpoint` (it becomes open_clip's `pretrained`).
    if model_name.startswith(SELF_CONTAINED):
        checkpoint = ""  # open_clip ignores it there (and warns)
    ef = OpenCLIPEmbeddingFunction(model_name=model_name, checkpoint=checkpoint or "", device=clip.device)
    client = chromadb.PersistentClient(path=str(folder / "chroma-peer"),
                                       settings=ChromaSettings(anonymized_telemetry=False))
    theirs = client.create_collection("openclip-peer", embedding_function=ef,
                                      configuration={"hnsw": {"space": "cosine"}})
    ours = VectorStore(make_client(Settings(data_dir=folder / "ours")), "bench-peer-captions", clip.identity)
    ids = [f"image-{i}" for i in range(len(images))]

    ef([np.asarray(images[0])]), clip.encode_images(images[:1])  # warm-up, untimed
    t0 = time.perf_counter()
    theirs.add(ids=ids, images=[np.asarray(im) for im in images])  # Chroma wants arrays; the EF makes PIL again
    their_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for lo in range(0, len(images), WRITE_GROUP):  # as the engine writes: one CLIP batch per group
        ours.upsert_visual(ids[lo : lo + WRITE_GROUP], clip.encode_images(images[lo : lo + WRITE_GROUP]))
    our_s = time.perf_counter() - t0

    their_vecs = theirs.get(ids=ids, include=["embeddings"])["embeddings"]
    our_vecs = ours.embeddings(VISUAL, ids)
    agreement = min(float(np.dot(np.asarray(t), our_vecs[i])) for i, t in zip(ids, their_vecs))

    k = min(10, len(images))
    their_q = time_each(lambda t: theirs.query(query_texts=[t], n_results=k), texts)
    our_q = time_each(lambda t: ours.query(VISUAL, clip.encode_texts([t])[0], k), texts)
    return {
        "their_ms_per_image": round(their_s * 1000 / len(images), 1),
        "our_ms_per_image": round(our_s * 1000 / len(images), 1),
        "index_ratio": round(their_s / our_s, 2),
        "their_query_ms": pct(their_q),
        "our_query_ms": pct(our_q),
        "query_ratio": round(float(np.median(their_q) / np.median(our_q)), 2),
        "min_vector_cosine": round(agreement, 4),  # ~1.0: both sides ran the same model on the same pixels
    }


def hf_pipeline_caption(captioner, model: str, images: list[Image.Image]) -> dict:
    """Caption the images with our captioner, then with a transformers pipeline, at the same batch size.

    The pipeline runs one image per call at its default batch size 1; given a list of images (and
    prompts) in one call, transformers 5 makes them ONE batch - so when our captioner batches, the
    pipeline gets lists of the same size. Same model, same images, same batch, same length.
    """
    from transformers import pipeline

    # transformers 5 folded "image-to-text" into "image-text-to-text"; an empty prompt is plain captioning.
    pipe = pipeline("image-text-to-text", model=model, device=captioner.device)
    generate = {"max_new_tokens": captioner.max_new_tokens}
    if captioner.min_new_tokens:
        generate["min_new_tokens"] = captioner.min_new_tokens
    batch = captioner.batch_size

    def theirs_caption(chunk: list[Image.Image]) -> list[str]:
        if len(chunk) == 1:
            out = [pipe(images=chunk[0], text="", generate_kwargs=generate)]
        else:
            out = pipe(images=chunk, text=[""] * len(chunk), generate_kwargs=generate)
        return [" ".join((o[0] if isinstance(o, list) else o)["generated_text"].split()) for o in out]

    theirs_caption(images[:1]), captioner.caption(images[:1])  # warm-up, untimed
    t0 = time.perf_counter()
    ours = captioner.caption(images)
    our_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs = [c for lo in range(0, len(images), batch) for c in theirs_caption(images[lo : lo + batch])]
    their_s = time.perf_counter() - t0
    return {
        "their_s_per_image": round(their_s / len(images), 3),
        "our_s_per_image": round(our_s / len(images), 3),
        "caption_ratio": round(their_s / our_s, 2),
        "batch": batch,
        "generation": generate,
        "same_captions": theirs == ours,  # greedy decoding of the same weights: must agree
    }

"""Tags: CLIP zero-shot classification of each image against a vocabulary of everyday subjects.

The rule is CLIP's own zero-shot rule: an image's cosines with every tag prompt ("a photo of a
dog.") become probabilities, softmax(scale * cosine), with the model's learned temperature
(`logit_scale`, ~100 for trained CLIP). A tag is kept when its probability is at least
MIN_PROBABILITY, at most MAX_TAGS per image, most probable first. Because the softmax is relative
to the image's whole score distribution over the vocabulary, an image that matches no tag better
than the rest (a texture, a random model) gets none, whatever the absolute cosine band of the model.

What could be calibrated here: nothing against real labels, because no trained CLIP weights are
available offline. MIN_PROBABILITY = 0.10 is a judgement from how CLIP zero-shot behaves (a clear
subject takes 0.3-0.9 of the mass over a few hundred labels; a second subject 0.1-0.2; noise spreads
thinly at ~1/len(vocabulary)). What is tested: the rule (tests/unit/test_tagging.py) and that the tiny
random CLIP, whose scores carry no meaning, gives no tags.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

DEFAULT_VOCABULARY = Path(__file__).resolve().parent / "tag_vocabulary.txt"
MIN_PROBABILITY = 0.10
MAX_TAGS = 3
DEFAULT_SCALE = 100.0  # trained CLIP's logit scale; used when a model does not say its own
PROMPT = "a photo of {}."


def read_vocabulary(path: Path) -> list[str]:
    """One tag a line; blank lines and `#` comments left out; each tag once, in file order."""
    from ..search.filters import normalise_tag

    lines = (normalise_tag(line) for line in path.read_text(encoding="utf-8").splitlines()
             if not line.lstrip().startswith("#"))
    return list(dict.fromkeys(t for t in lines if t))


def tags_for(image_vectors: np.ndarray, vocabulary_vectors: np.ndarray, vocabulary: Sequence[str],
             scale: float = DEFAULT_SCALE) -> list[tuple[str, ...]]:
    """The tags of each image row: a pure function of the vectors (unit rows of one CLIP space)."""
    images = np.atleast_2d(np.asarray(image_vectors, np.float64))
    if len(vocabulary) == 0 or images.size == 0:
        return [() for _ in range(len(images))]
    logits = scale * images @ np.asarray(vocabulary_vectors, np.float64).T
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    out = []
    for row in prob:
        best = np.argsort(-row, kind="stable")[:MAX_TAGS]
        out.append(tuple(vocabulary[i] for i in best if row[i] >= MIN_PROBABILITY))
    return out


def model_scale(clip) -> float:
    """The temperature a CLIP model learned (exp of its `logit_scale`), or DEFAULT_SCALE."""
    scale = getattr(getattr(clip, "model", None), "logit_scale", None)
    try:
        return float(scale.detach().exp()) if scale is not None else DEFAULT_SCALE
    except (AttributeError, TypeError, RuntimeError):
        return DEFAULT_SCALE


class Tagger:
    """A vocabulary and its prompt vectors for one CLIP model, computed once and cached on disk."""

    def __init__(self, clip, vocabulary_path: Path, cache_dir: Path, scale: float | None = None) -> None:
        """`clip` encodes the prompts (a torch or an ONNX Runtime text tower: the same vectors); `scale` is
        the model's learned temperature when `clip` cannot say (an ONNX tower keeps no logit scale)."""
        self.vocabulary = read_vocabulary(vocabulary_path)
        self.identity = getattr(clip, "identity", "")
        self.scale = model_scale(clip) if scale is None else scale
        key = hashlib.sha256("\n".join([self.identity, PROMPT, *self.vocabulary]).encode()).hexdigest()[:16]
        cache = cache_dir / f"tag-vectors-{key}.npy"
        try:
            vectors = np.load(cache)
        except (OSError, ValueError):
            vectors = None
        if vectors is None or vectors.shape[0] != len(self.vocabulary):
            vectors = (clip.encode_texts([PROMPT.format(t) for t in self.vocabulary]) if self.vocabulary
                       else np.zeros((0, 1), np.float32))
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npy")
            np.save(tmp, vectors)
            tmp.replace(cache)
        self.vectors = vectors

    def tag(self, image_vectors: np.ndarray) -> list[tuple[str, ...]]:
        return tags_for(image_vectors, self.vectors, self.vocabulary, self.scale)

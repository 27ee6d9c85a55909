"""The model stages load through their production loaders (local folders here) and keep their
contracts: one caption per image, unit vectors, and clear errors for a model that is not there."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from visual_search.stages.caption import BlipCaptioner
from visual_search.stages.visual import ClipEncoder
from visual_search.errors import ModelLoadError
from visual_search.stages.embed import ClipTextEncoder, SentenceTransformerEncoder

IMAGES = [Image.new("RGB", (40, 30), c) for c in ("red", "green", "blue")]


@pytest.mark.parametrize("batch_size", [1, 2])
def test_captioner_gives_one_caption_per_image_in_order(tiny_blip, batch_size):
    captioner = BlipCaptioner(tiny_blip, "cpu", max_new_tokens=6, batch_size=batch_size)
    captions = captioner.caption(IMAGES)
    assert len(captions) == 3 and all(isinstance(c, str) and c for c in captions)
    assert captions == [captioner.caption([im])[0] for im in IMAGES]  # batching changes nothing


def test_min_new_tokens_fixes_the_caption_length(tiny_blip, tmp_path):
    """A tiny BLIP biased to end at once, else to say "dog": min_new_tokens must hold the end off."""
    from transformers import BlipForConditionalGeneration, BlipProcessor

    model = BlipForConditionalGeneration.from_pretrained(tiny_blip)
    vocab = BlipProcessor.from_pretrained(tiny_blip).tokenizer.get_vocab()
    with torch.no_grad():
        bias = model.text_decoder.cls.predictions.decoder.bias
        bias[vocab["[SEP]"]] += 100.0
        bias[vocab["dog"]] += 50.0
    model.save_pretrained(tmp_path)
    BlipProcessor.from_pretrained(tiny_blip).save_pretrained(tmp_path)
    assert BlipCaptioner(str(tmp_path), "cpu", max_new_tokens=5).caption(IMAGES[:1]) == ["(no caption)"]
    fixed = BlipCaptioner(str(tmp_path), "cpu", max_new_tokens=5, min_new_tokens=5).caption(IMAGES[:1])[0]
    assert fixed == "dog dog dog dog dog"


def test_clip_vectors_are_unit_and_trimmed_text_path_matches_full(tiny_clip):
    clip = ClipEncoder(tiny_clip, None, "cpu")
    images = clip.encode_images(IMAGES)
    texts = ["a red square", "a much longer description of a very green field under a sky"]
    trimmed = clip.encode_texts(texts)
    with torch.inference_mode():
        full = torch.nn.functional.normalize(clip.model.encode_text(clip.tokenizer(texts)), dim=-1).numpy()
    assert images.shape == (3, clip.dim) and np.allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    assert np.allclose(trimmed, full, atol=1e-5)


def test_text_encoders_give_unit_vectors(minilm, tiny_clip):
    for encoder in (SentenceTransformerEncoder(minilm, "cpu"), ClipTextEncoder(ClipEncoder(tiny_clip, None, "cpu"))):
        v = encoder.encode(["a dog", "a cat on a mat"])
        assert v.shape == (2, encoder.dim) and v.dtype == np.float32
        assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)


def test_missing_models_raise_a_clear_error(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="captioning model"):
        BlipCaptioner(missing, "cpu")
    with pytest.raises(ModelLoadError, match="text model"):
        SentenceTransformerEncoder(missing, "cpu")
    with pytest.raises(ModelLoadError, match="CLIP model"):
        ClipEncoder(f"local-dir:{missing}", None, "cpu")


class _Counted:
    """A real encoder, with a count of the texts it was asked to encode."""

    def __init__(self, inner, method: str) -> None:
        self.inner, self.method, self.texts = inner, method, 0
        setattr(self, method, self._encode)

    def _encode(self, texts):
        self.texts += len(texts)
        return getattr(self.inner, self.method)(texts)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_query_vectors_are_cached_per_channel(minilm, tiny_clip):
    from visual_search.stages.query import QueryEncoder

    text, clip = _Counted(SentenceTransformerEncoder(minilm, "cpu"), "encode"), _Counted(
        ClipEncoder(tiny_clip, None, "cpu"), "encode_texts")
    queries = QueryEncoder(text, clip, cache_size=2)
    first = queries.encode("a dog on the beach")
    assert np.array_equal(queries.caption("a dog on the beach"), first[0]) and (text.texts, clip.texts) == (1, 1)
    queries.visual("a cat"), queries.visual("a car")  # evicts the dog from the visual cache only
    queries.encode("a dog on the beach")
    assert (text.texts, clip.texts) == (1, 4)


def test_clip_as_the_text_model_encodes_a_query_once_for_both_channels(tiny_clip):
    from visual_search.stages.query import QueryEncoder

    clip = _Counted(ClipEncoder(tiny_clip, None, "cpu"), "encode_texts")
    queries = QueryEncoder(ClipTextEncoder(clip), clip)
    caption_vec, visual_vec = queries.encode("a red car")
    assert clip.texts == 1 and np.array_equal(caption_vec, visual_vec)
    caption_m, visual_m = queries.encode_many(["a dog", "a cat", "a bus"])  # evaluate's batches
    assert clip.texts == 4 and np.array_equal(caption_m, visual_m) and caption_m.shape[0] == 3

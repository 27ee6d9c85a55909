"""Tags: CLIP zero-shot against the vocabulary. The rule as a pure function, the shipped vocabulary,
the tiny random CLIP (meaningless scores: no tags), the cache, and recomputing on a model change."""

from __future__ import annotations


import numpy as np

from conftest import SAMPLES
from tiny_models import build_tiny_clip
from visual_search import SearchEngine
from visual_search.stages.visual import ClipEncoder
from visual_search.stages.tags import DEFAULT_VOCABULARY, MAX_TAGS, Tagger, read_vocabulary, tags_for

VOCAB = ["dog", "cat", "beach", "car", "tree"]


def _unit(m: np.ndarray) -> np.ndarray:
    return m / np.linalg.norm(m, axis=-1, keepdims=True)


def test_a_clear_match_is_tagged_and_an_image_like_every_tag_alike_is_not():
    names = VOCAB + [f"other {i}" for i in range(15)]  # 20 tags: alike, each gets 1/20 < MIN_PROBABILITY
    vocab = np.linalg.qr(np.random.default_rng(1).normal(size=(32, 20)))[0].T  # orthonormal tag vectors
    dog_on_beach = _unit(vocab[0] + vocab[2])  # two subjects
    bland = _unit(vocab.sum(axis=0))  # equally close to every tag
    got = tags_for(np.stack([vocab[1], dog_on_beach, bland]), vocab, names)
    assert got[0] == ("cat",) and set(got[1]) == {"dog", "beach"} and got[2] == ()
    assert tags_for(vocab[1:2], vocab, names, scale=0.5) == [()]  # no temperature: nothing stands out
    three = _unit(vocab[:5].sum(axis=0))  # five subjects: still at most MAX_TAGS
    assert len(tags_for(three[None], vocab, names)[0]) == MAX_TAGS
    assert tags_for(np.zeros((2, 32)), np.zeros((0, 32)), []) == [(), ()]


def test_the_shipped_vocabulary(tmp_path):
    tags = read_vocabulary(DEFAULT_VOCABULARY)
    assert len(tags) >= 250 and len(set(tags)) == len(tags) and {"dog", "cat", "beach", "sunset"} <= set(tags)
    own = tmp_path / "mine.txt"
    own.write_text("# my words\nRed Car\n\n red  car \nboat\n")
    assert read_vocabulary(own) == ["red car", "boat"]


def test_the_tiny_random_clip_gives_no_tags_and_prompt_vectors_are_cached(shared_models, tmp_path):
    clip = shared_models["clip"]
    tagger = Tagger(clip, DEFAULT_VOCABULARY, tmp_path)
    images = [p for p in sorted(SAMPLES.glob("*.jpg"))[:6]]
    from PIL import Image

    vectors = clip.encode_images([Image.open(p).convert("RGB") for p in images])
    assert tagger.tag(vectors) == [()] * len(images)  # its scores mean nothing; nothing clears the threshold
    cached = list(tmp_path.glob("tag-vectors-*.npy"))
    assert len(cached) == 1 and np.array_equal(np.load(cached[0]), tagger.vectors)
    assert np.array_equal(Tagger(clip, DEFAULT_VOCABULARY, tmp_path).vectors, tagger.vectors)


def test_tags_follow_a_model_change_unless_a_person_set_them(tiny_settings, shared_models, tmp_path):
    engine = SearchEngine(tiny_settings(tmp_path / "data"), **shared_models)
    engine.index_paths(sorted(SAMPLES.glob("*.jpg"))[:2])
    mine, other = engine.list()
    engine.set_tags(mine.id, ["holiday", "Holiday", "beach"])
    assert engine.get(mine.id).tags == ("holiday", "beach") and engine.get(mine.id).tags_edited
    assert engine.get(other.id).tags_model == engine.visual_identity

    new_clip = ClipEncoder(build_tiny_clip(tmp_path / "another-clip"), None, "cpu")  # another identity
    changed = SearchEngine(engine.settings, captioner=shared_models["captioner"],
                           text_encoder=shared_models["text_encoder"], clip=new_clip)
    assert changed.reconcile() == 2
    assert changed.get(mine.id).tags == ("holiday", "beach")  # a person's tags survive
    assert changed.get(other.id).tags_model == new_clip.identity  # chosen again by the new model
    from visual_search.search.filters import SearchFilter

    hit = changed.search("a photo", k=5, min_relevance=0.0, filter=SearchFilter.parse(tag="beach")).results
    assert [r.record.id for r in hit] == [mine.id] and hit[0].record.tags == ("holiday", "beach")

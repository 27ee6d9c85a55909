"""The caption/query encoder runs sentence-transformers models with plain transformers; these
tests hold it to the sentence-transformers library's own output, model folder by model folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from visual_search.errors import ModelLoadError
from visual_search.stages.embed import SentenceTransformerEncoder

TEXTS = [
    "a dog running on the beach",
    "A Starry Night over the MOUNTAINS",
    "x",
    "a red bus parked by a brick wall in the rain " * 40,  # beyond max_seq_length: truncated alike
] + [f"caption number {i} of a cat on a sofa" for i in range(70)]  # more than one batch


def _reference(folder: str, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(folder, device="cpu").encode(texts, normalize_embeddings=True)


def test_minilm_gives_the_vectors_sentence_transformers_gives(minilm):
    ours = SentenceTransformerEncoder(minilm, "cpu")
    got = ours.encode(TEXTS)
    want = _reference(minilm, TEXTS)
    assert got.shape == want.shape == (len(TEXTS), 384) and got.dtype == np.float32
    assert float((got * want).sum(axis=1).min()) > 0.99999
    assert ours.encode([]).shape == (0, 384)


def _tiny_sentence_model(folder: Path, minilm: str, pooling: str, dense: bool = False) -> str:
    """A small random BERT with MiniLM's tokenizer, saved by sentence-transformers itself."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    bert = folder / "bert"
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(bert)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(Path(minilm) / name, bert / name)
    transformer = models.Transformer(str(bert), max_seq_length=20)
    stack = [transformer, models.Pooling(32, pooling_mode=pooling)]
    if dense:
        stack.append(models.Dense(32, 8))
    out = folder / f"st-{pooling}{'-dense' if dense else ''}"
    SentenceTransformer(modules=stack, device="cpu").save(str(out))
    return str(out)


@pytest.mark.parametrize("pooling", ["cls", "max", "mean", "mean_sqrt_len_tokens"])
def test_each_pooling_mode_matches_sentence_transformers(pooling, minilm, tmp_path):
    folder = _tiny_sentence_model(tmp_path, minilm, pooling)
    got = SentenceTransformerEncoder(folder, "cpu").encode(TEXTS)
    want = _reference(folder, TEXTS)
    assert float((got * want).sum(axis=1).min()) > 0.9999


def test_a_plain_transformers_folder_is_mean_pooled_like_sentence_transformers(minilm, tmp_path):
    folder = Path(_tiny_sentence_model(tmp_path, minilm, "cls")).parent / "bert"  # no modules.json
    got = SentenceTransformerEncoder(str(folder), "cpu").encode(TEXTS[:3])
    want = _reference(str(folder), TEXTS[:3])
    assert float((got * want).sum(axis=1).min()) > 0.9999


def test_a_model_with_layers_we_do_not_run_is_refused_by_name(minilm, tmp_path):
    folder = _tiny_sentence_model(tmp_path, minilm, "mean", dense=True)
    with pytest.raises(ModelLoadError, match=r"Dense.*Transformer -> Pooling"):
        SentenceTransformerEncoder(folder, "cpu")


def _stop_tokenizer_lowercasing(folder: Path) -> None:
    """MiniLM's tokenizer lowercases by itself; with that off, only do_lower_case can make case not matter."""
    tok = json.loads((folder / "tokenizer.json").read_text())
    tok["normalizer"]["lowercase"] = False
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "do_lower_case": False}))


def test_the_default_prompt_and_lowercasing_are_applied(minilm, tmp_path):
    folder = Path(_tiny_sentence_model(tmp_path, minilm, "mean"))
    _stop_tokenizer_lowercasing(folder)
    plain = SentenceTransformerEncoder(str(folder), "cpu")
    assert not np.allclose(plain.encode(["A Red Bus"]), plain.encode(["a red bus"]), atol=1e-3)  # case matters
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "query: "}, "default_prompt_name": "query"}))
    bert_config = json.loads((folder / "sentence_bert_config.json").read_text())
    (folder / "sentence_bert_config.json").write_text(json.dumps({**bert_config, "do_lower_case": True}))
    prompted = SentenceTransformerEncoder(str(folder), "cpu")
    assert np.allclose(prompted.encode(["A Red Bus"]), prompted.encode(["a red bus"]), atol=1e-6)  # lowercased
    assert not np.allclose(prompted.encode(["a red bus"]), plain.encode(["a red bus"]), atol=1e-3)  # prompt added
    want = _reference(str(folder), ["A Red Bus"])  # the library applies both too
    assert float((prompted.encode(["A Red Bus"]) * want).sum()) > 0.9999

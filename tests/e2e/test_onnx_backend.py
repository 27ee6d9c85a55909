"""The query encoders on ONNX Runtime (models/backend.py, models/onnxrt/): exported from the real models on
first use, held to torch on every probe, cached, and run by a search process that never
imports torch. Refused exports fall back to torch, say why, and are not retried every run."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SAMPLES
from test_clip_bpe import CORPUS
from test_text_encoder import TEXTS
from visual_search import SearchEngine, Settings
from visual_search.models.backend import caption_encoder, clip_text_encoder
from visual_search.errors import ModelLoadError
from visual_search.models.onnxrt.cache import Entry
from visual_search.models.onnxrt.encoders import OnnxClipText, OnnxTextEncoder

HEAVY = ("torch", "transformers", "open_clip", "timm", "torchvision", "sentence_transformers")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


@pytest.fixture
def backend_log(caplog):
    """What models/backend.py logged; read at its own logger (the CLI stops its records at `visual_search`)."""
    log = logging.getLogger("visual_search.models.backend")
    log.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.INFO)
    try:
        yield caplog
    finally:
        log.removeHandler(caplog.handler)


@pytest.fixture
def onnx_text(settings, shared_models) -> OnnxTextEncoder:
    return caption_encoder(settings, lambda: shared_models["text_encoder"])


@pytest.fixture
def onnx_clip(settings, shared_models) -> OnnxClipText:
    return clip_text_encoder(settings, lambda: shared_models["clip"], shared_models["clip"].identity)


def test_caption_encoder_on_onnx_gives_torch_tokens_and_vectors(onnx_text, shared_models):
    torch_enc = shared_models["text_encoder"]
    assert isinstance(onnx_text, OnnxTextEncoder)
    assert (onnx_text.identity, onnx_text.dim, onnx_text.calibration) == (torch_enc.identity, 384, torch_enc.calibration)
    texts = TEXTS + CORPUS  # more than one batch, past the token limit, every script and emoji
    prepared = torch_enc.spec.prepare(texts)
    for text in prepared:  # one at a time: a batch would pad them all alike
        assert onnx_text.tokens([text])["input_ids"].tolist() == torch_enc.tokens([text])["input_ids"].tolist(), text
    assert _cosines(onnx_text.encode(texts), torch_enc.encode(texts)).min() >= 0.99999
    assert onnx_text.encode([]).shape == (0, 384)


def test_a_batch_in_parts_side_by_side_gives_each_text_its_own_vector(onnx_text):
    # one intra-op thread (a query runs beside CLIP's tower); a batch runs in parts, one per core
    assert onnx_text.session.get_session_options().intra_op_num_threads == 1
    texts = [("a dog " * (i % 7 + 1)) + str(i) for i in range(23)]  # lengths shuffled: sorted, then cut
    onnx_text.batch_size = 4  # 6 parts, more than the cores
    try:
        together = onnx_text.encode(texts)
    finally:
        onnx_text.batch_size = 64
    alone = np.concatenate([onnx_text.encode([t]) for t in texts])
    assert np.abs(together - alone).max() < 1e-5 and _cosines(together, alone).min() > 0.99999


def test_clip_text_tower_on_onnx_gives_torch_vectors(onnx_clip, shared_models):
    clip = shared_models["clip"]
    assert isinstance(onnx_clip, OnnxClipText) and (onnx_clip.identity, onnx_clip.dim) == (clip.identity, clip.dim)
    assert onnx_clip.trim  # run only as far as the longest query's end token, as torch does
    assert onnx_clip.tokens(["a dog"]).shape == (1, 4)
    assert _cosines(onnx_clip.encode_texts(CORPUS), clip.encode_texts(CORPUS)).min() >= 0.99999
    one_by_one = np.concatenate([onnx_clip.encode_texts([t]) for t in CORPUS[:8]])
    assert _cosines(one_by_one, clip.encode_texts(CORPUS[:8])).min() >= 0.99999


def test_search_similar_and_caption_run_without_torch(settings, engine, onnx_text, onnx_clip, model_env):
    """Once the exports exist, a fresh process answers the three commands without the torch stack."""
    report = engine.index_paths(sorted(SAMPLES.glob("*.jpg"))[:4])
    first = report.added[0].id
    script = (
        "import json, sys\nfrom visual_search.cli import main\n"
        f"codes = [main(['search', 'a dog on the beach', '--json']), main(['similar', '{first[:12]}', '--json']),"
        f" main(['caption', '{first[:12]}', 'a red double-decker bus in the rain'])]\n"
        f"print(json.dumps({{'codes': codes, 'heavy': sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})}}))"
    )
    env = {**os.environ, **model_env, "VS_DATA_DIR": str(settings.data_dir), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert result == {"codes": [0, 0, 0], "heavy": []}
    searched = json.loads(lines[0])
    torch_ids = [r.record.id for r in engine.search("a dog on the beach").results]
    assert [r["id"] for r in searched["results"]] == torch_ids
    # the caption the torch-free process embedded is found by the torch encoder's query vector
    assert engine.search("a red bus on a rainy day", alpha=1.0).results[0].record.id == first


def test_torch_and_onnx_agree_on_top_ten_and_relevance(settings, engine, onnx_text, onnx_clip):
    from visual_search.measure.synthetic import fill, queries

    fill(engine, 0, 400, np.random.default_rng(1))
    engine.index_paths(sorted(SAMPLES.glob("*.jpg"))[:6])
    onnx = SearchEngine(settings, text_encoder=onnx_text, clip=engine.clip, clip_text=onnx_clip)
    for text in queries(25):
        want, got = engine.search(text), onnx.search(text)
        assert [r.record.id for r in got.results] == [r.record.id for r in want.results], text
        assert max(abs(a.relevance - b.relevance) for a, b in zip(got.results, want.results)) < 1e-4


def test_an_engine_without_models_given_searches_on_onnx(settings, onnx_text, onnx_clip):
    engine = SearchEngine(settings)
    assert isinstance(engine.text_encoder, OnnxTextEncoder) and isinstance(engine.clip_text, OnnxClipText)
    assert not engine.models.loaded("clip")  # the torch CLIP was not loaded to encode queries
    files = sorted(SAMPLES.glob("*.jpg"))[:2]
    engine.index_paths(files)  # now it is, for the images: without its text tower, which queries do not use
    assert engine.clip.text_dropped and engine.clip.model.transformer is None
    with pytest.raises(RuntimeError, match="ONNX Runtime"):
        engine.clip.encode_texts(["a dog"])
    assert engine.similar(files[0].read_bytes(), k=1).results[0].relevance == pytest.approx(1.0, abs=1e-4)
    assert len(engine.search("a dog").results) == 2


def test_clip_as_the_text_model_uses_the_onnx_tower_for_both_channels(settings, onnx_clip):
    from visual_search.stages.embed import ClipTextEncoder

    engine = SearchEngine(replace(settings, text_model="clip"))
    assert isinstance(engine.query_text_encoder, ClipTextEncoder) and engine.query_text_encoder.clip is engine.clip_text
    assert isinstance(engine.clip_text, OnnxClipText) and not engine.models.loaded("clip")
    assert engine.caption_identity.endswith(f"|clip-text:{onnx_clip.identity}")  # the torch path's collection
    caption_vec, visual_vec = engine.queries.encode("a red car")
    assert np.array_equal(caption_vec, visual_vec)


def _whitespace_clip(tiny_clip: str, folder: Path) -> str:
    """The tiny CLIP with a tokenizer that keeps case (open_clip's clean="whitespace"), which the
    torch-free tokenizer does not reproduce: a real model whose export must be refused."""
    source = Path(tiny_clip.removeprefix("local-dir:"))
    shutil.copytree(source, folder)
    config = json.loads((folder / "open_clip_config.json").read_text())
    config["model_cfg"]["text_cfg"]["tokenizer_kwargs"] = {"clean": "whitespace"}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    return f"local-dir:{folder}"


def test_an_export_that_does_not_verify_falls_back_to_torch_once_and_says_why(tiny_clip, tmp_path, backend_log):
    from visual_search.stages.visual import ClipEncoder

    name = _whitespace_clip(tiny_clip, tmp_path / "cased-clip")
    settings = Settings(data_dir=tmp_path / "data", clip_model=name, clip_pretrained=None, device="cpu")
    loads = []

    def load():
        loads.append(ClipEncoder(name, None, "cpu"))
        return loads[-1]

    first = clip_text_encoder(settings, load, name)
    assert first is loads[0] and len(loads) == 1  # torch's own encoder, loaded once
    assert "runs on torch" in backend_log.text and "other token ids" in backend_log.text
    (meta_file,) = settings.onnx_cache.glob("clip-text-*/meta.json")
    meta = json.loads(meta_file.read_text())
    assert meta["verified"] is False and "other token ids" in meta["reason"]
    again = clip_text_encoder(settings, load, name)  # remembered: no second export
    assert again is loads[1] and json.loads(meta_file.read_text()) == meta
    assert not list(meta_file.parent.glob("model.onnx*"))  # a refused graph is not kept on disk
    with pytest.raises(ModelLoadError, match="VS_BACKEND=onnx.*other token ids"):
        clip_text_encoder(replace(settings, backend="onnx"), load, name)


def test_a_damaged_export_is_dropped_and_made_again(tiny_clip, shared_models, tmp_path, backend_log):
    clip = shared_models["clip"]
    settings = Settings(data_dir=tmp_path / "data", clip_model=tiny_clip, clip_pretrained=None, device="cpu")
    assert isinstance(clip_text_encoder(settings, lambda: clip, clip.identity), OnnxClipText)
    (weights,) = settings.onnx_cache.glob("clip-text-*/model.onnx.data")
    weights.write_bytes(weights.read_bytes()[:100])
    assert clip_text_encoder(settings, lambda: clip, clip.identity) is clip
    assert "could not be loaded" in backend_log.text and not weights.parent.exists()
    assert isinstance(clip_text_encoder(settings, lambda: clip, clip.identity), OnnxClipText)


def test_the_torch_backend_never_exports(settings, shared_models, tmp_path):
    torch_settings = replace(settings, backend="torch", onnx_dir=tmp_path / "onnx")
    assert caption_encoder(torch_settings, lambda: shared_models["text_encoder"]) is shared_models["text_encoder"]
    assert not (tmp_path / "onnx").exists()


def test_an_export_is_keyed_by_the_model_files(tiny_clip, tmp_path):
    folder = tmp_path / "clip"
    shutil.copytree(Path(tiny_clip.removeprefix("local-dir:")), folder)
    before = Entry(tmp_path / "onnx", "clip-text", f"local-dir:{folder}", [f"local-dir:{folder}"]).folder
    assert before == Entry(tmp_path / "onnx", "clip-text", f"local-dir:{folder}", [f"local-dir:{folder}"]).folder
    weights = folder / "open_clip_model.safetensors"
    weights.write_bytes(weights.read_bytes())  # new weights in place, same name
    os.utime(weights, ns=(1, 1))
    assert Entry(tmp_path / "onnx", "clip-text", f"local-dir:{folder}", [f"local-dir:{folder}"]).folder != before


def test_backend_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("VS_BACKEND", "ONNX")
    assert Settings.from_env().backend == "onnx"
    monkeypatch.setenv("VS_BACKEND", "tensorrt")
    with pytest.raises(ValueError, match="VS_BACKEND must be one of auto, onnx, torch"):
        Settings.from_env()
    monkeypatch.delenv("VS_BACKEND")
    monkeypatch.delenv("VS_ONNX_DIR", raising=False)
    assert Settings.from_env(data_dir=tmp_path).onnx_cache == tmp_path / "onnx"

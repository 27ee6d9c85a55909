"""`bench` on the tiny test models: every figure is produced and well-formed (no timing asserts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from visual_search.measure.bench import _parse_sizes
from visual_search.library.catalog import vector_key
from visual_search.measure.synthetic import fill
from visual_search.stages.store import CAPTION, VISUAL
from visual_search.errors import InvalidQuery


def test_cli_bench_json_shape(tmp_path, model_env):
    env = {**os.environ, **model_env, "VS_DATA_DIR": str(tmp_path / "must-stay-empty"), "PYTHONPATH": str(REPO),
           "OMP_WAIT_POLICY": "PASSIVE", "TMPDIR": str(tmp_path)}  # as docs/benchmarks.md runs it
    done = subprocess.run(
        [sys.executable, "-m", "visual_search", "bench", "--sizes", "200", "--images", "2", "--queries", "5",
         "--cli-runs", "1", "--onnx-image-towers", "--photos", "2", "--photo-size", "640x480", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540,  # exports the encoders when not cached
    )
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert set(doc["search_ms"]) == {"200"} and doc["search_ms"]["200"]["p95"] >= doc["search_ms"]["200"]["p50"] > 0
    assert doc["index_images_per_s"] > 0 and doc["peak_rss_mb"] > 100
    peers = doc["peers"]
    assert peers["chroma_openclip_index_ratio"] > 0 and peers["hf_pipeline_caption_ratio"] > 0
    # the peers ran the same models as we did, or a ratio would mean nothing
    assert peers["chroma_openclip"]["min_vector_cosine"] > 0.999
    assert peers["hf_pipeline"]["same_captions"] is True
    stages = doc["stages"]
    assert stages["caption"]["batch1_s_per_image"] > 0 and stages["clip_image"]["write_group_ms_per_image"] > 0
    assert set(stages["query_encoding"]) == {"caption_ms", "clip_trimmed_ms", "clip_full77_ms", "both_ms"}
    assert set(doc["levers"]) == {"threads", "parallel_query_encoders", "query_encoding_while_indexing", "int8_caption",
                                  "sentence_transformers_library", "onnx_image_towers"}
    # both query-encoder backends side by side, and the ONNX one really is ONNX Runtime with exact vectors
    assert doc["onnx"]["verified"] == {"text": True, "clip_text": True} and doc["onnx"]["search_backend"] == "onnx"
    for backend in ("torch", "onnx"):
        b = doc["backends"][backend]
        assert b["query_ms"]["p95"] >= b["query_ms"]["p50"] > 0 and set(b["search_ms"]) == {"200"}
        assert doc["cli_search_s"][backend] > 0 and doc["cli_search_peak_rss_mb"][backend] > 50
        assert doc["app_peak_rss_mb"][backend] > doc["cli_search_peak_rss_mb"]["onnx"]  # indexing loads BLIP
    # each backend's encoders also in a fresh process of its own, without the OpenMP setting this run had
    own = doc["own_process_query_ms"]
    assert own["encoders"] == {"torch": ["SentenceTransformerEncoder", "ClipEncoder"],
                               "onnx": ["OnnxTextEncoder", "OnnxClipText"]}
    assert own["torch"]["n"] == own["onnx"]["n"] == 10 and own["openmp_env"] == {} and own["ratio"] > 0
    assert doc["machine"]["openmp_env"]["OMP_WAIT_POLICY"] == "PASSIVE"
    agreement = doc["onnx"]["agreement"]["200"]
    assert agreement["queries"] == 5 and agreement["same_top_k"] == 5 and agreement["max_relevance_diff"] < 1e-4
    towers = doc["levers"]["onnx_image_towers"]
    assert all(towers[t]["min_cosine"] > 0.9999 and towers[t]["onnx"]["batch1_ms_per_image"] > 0
               for t in ("clip_image", "blip_vision"))
    assert any("ONNX / torch" in name for name in doc["targets"])
    # the library we replaced gives the same vectors as our text encoder, on the same model folder
    assert doc["levers"]["sentence_transformers_library"]["min_cosine"] > 0.9999
    assert doc["peak_rss_mb"] >= doc["rss_mb"]["models_loaded"] > 0
    assert doc["store"]["200"]["store_query_ms"]["visual"]["n"] == 5
    levers = doc["store"]["200"]["levers"]  # the two channels at once vs in turn, on each backend, on new queries
    assert {b: {v: t["n"] for v, t in levers["lanes"][b].items()} for b in ("torch", "onnx")} == {
        b: {"at_once": 5, "one_after_other": 5} for b in ("torch", "onnx")}
    assert levers["records"]["catalog_ms"]["p50"] > 0 and levers["records"]["chroma_get_ms"]["p50"] > 0
    assert doc["targets"]["search_at_n"] == 200 and doc["random_weights"] is False
    assert doc["indexing"]["photos"] == 2 and doc["indexing"]["end_to_end"]["images_per_s"] > 0
    assert not (tmp_path / "must-stay-empty").exists()


def _bench(args: list[str], env: dict, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "visual_search", "bench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_bench_indexing_measures_three_ways(tmp_path, model_env):
    """`bench --indexing`: around the models (instant stand-ins, pipeline on and off, processors kept), the
    models alone per batch and precision (a 16-bit copy checked against fp32), end to end with its share."""
    env = {**os.environ, **model_env, "VS_DATA_DIR": str(tmp_path / "must-stay-empty"), "PYTHONPATH": str(REPO),
           "TMPDIR": str(tmp_path), "VS_CAPTION_BATCH": "2"}
    done = _bench(["--indexing", "--photos", "3", "--photo-size", "800x600", "--batches", "1,2",
                   "--precisions", "fp32,bf16", "--json"], env, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert (doc["photos"], doc["photo_size"], doc["device"]) == (3, "800x600", "cpu")
    assert len(list((tmp_path / "vs-phone-photos").glob("*-800x600.jpg"))) == 4  # 3 and the warm-up, kept
    assert set(doc["around_models_ms"]) == {"pipeline", "one_thread", "with_processors"}
    assert all(ms > 0 for ms in doc["around_models_ms"].values())
    rows = {(r["precision"], r["batch"]): r for r in doc["models_alone"]}
    assert set(rows) == {("fp32", 1), ("fp32", 2), ("bf16", 1), ("bf16", 2)}
    assert all(r["blip_images_per_s"] > 0 and r["clip_images_per_s"] > 0 for r in rows.values())
    assert set(doc["precision_checks"]) == {"bf16"}  # checked on the probes, verified or with the reason why not
    assert all(why is None or "cosine" in why or "token" in why for why in doc["precision_checks"]["bf16"].values())
    e = doc["end_to_end"]
    assert (e["batch"], e["group"], e["precision"]) == (2, 8, "fp32") and e["images_per_s"] > 0
    assert e["blip_alone_images_per_s"] == rows[("fp32", 2)]["blip_images_per_s"]
    assert e["share_of_blip_alone"] == round(e["images_per_s"] / e["blip_alone_images_per_s"], 3)
    assert not (tmp_path / "must-stay-empty").exists()
    text = _bench(["--indexing", "--photos", "3", "--photo-size", "800x600", "--batches", "2"], env, tmp_path)
    assert text.returncode == 0 and "(c) end to end:" in text.stdout and "of BLIP alone" in text.stdout


def test_bench_indexing_options_are_checked_before_any_model_loads(tmp_path, model_env):
    env = {**os.environ, **model_env, "PYTHONPATH": str(REPO), "VS_CAPTION_MODEL": str(tmp_path / "no-such-model")}
    for args, says in ((["--photo-size", "12"], "WIDTHxHEIGHT"), (["--batches", "0,2"], "--batches"),
                       (["--precisions", "fp8"], "--precisions"), (["--photos", "0"], "--photos")):
        done = _bench(["--indexing", *args], env, tmp_path)
        assert done.returncode != 0 and says in done.stderr and "no-such-model" not in done.stderr, done.stderr


def test_synthetic_images_come_back_as_proper_results(engine):
    fill(engine, 0, 30, np.random.default_rng(0))
    assert engine.count() == 30
    response = engine.search("a dog on the beach", k=10)
    assert len(response.results) == 10
    assert all(r.record.filename.startswith("synthetic-") and 0 <= r.relevance <= 1 for r in response.results)
    # records as the engine writes them: the catalog holds each image's vectors, the index's own
    first = response.results[0].record.id
    stored = engine.catalog.vectors(first)
    for kind, identity in ((CAPTION, engine.caption_identity), (VISUAL, engine.visual_identity)):
        assert np.allclose(stored[vector_key(kind, identity)], engine.store.embeddings(kind, [first])[first])


def test_sizes_argument():
    assert _parse_sizes("10000,1000, 1000") == [1000, 10000]
    for bad in ("", "1k", "5"):
        with pytest.raises(InvalidQuery):
            _parse_sizes(bad)

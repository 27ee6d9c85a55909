"""The catalog is the truth, Chroma an index rebuilt from it: each record keeps its vectors (keyed by
model identity), a deleted or separate index folder is rebuilt from them without running a model,
and a hub failure says which model, why, and which variable to set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import consistency
from conftest import REPO, SAMPLES
from visual_search import ModelLoadError, SearchEngine
from visual_search.stages.caption import BlipCaptioner
from visual_search.library.catalog import vector_key
from visual_search.cli import main as cli_main
from visual_search.stages.visual import ClipEncoder
from visual_search.stages.store import CAPTION, VISUAL

QUERIES = ["a cat", "snowy mountains", "a cup of coffee", "two dogs at a door", "galaxies in deep space"]
# Runs in a fresh process: start as the app or the CLI does (reconcile), answer the queries, and say
# which model modules that process ever imported.
PROBE = """
import json, sys
from visual_search import SearchEngine
engine = SearchEngine()
rebuilt = engine.reconcile()
if len(sys.argv) > 2:  # people's captions, so that no two images tie (the tiny captioner repeats itself)
    from visual_search.measure.caption_files import read_captions
    captions, _ = read_captions(sys.argv[2])
    for record in engine.list():
        engine.set_caption(record.id, captions[record.filename][0])
answers = {q: [(r.record.id, round(r.relevance, 4)) for r in engine.search(q, k=10, alpha=0.5).results]
           for q in json.loads(sys.argv[1])}
blip = any(m.startswith("transformers.models.blip") for m in sys.modules)
print(json.dumps({"rebuilt": rebuilt, "answers": answers, "blip_imported": blip,
                  "captioner_loaded": engine.models.loaded("captioner")}))
"""


def _probe(env: dict, *captions: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(QUERIES), *captions], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_records_keep_the_vectors_the_index_holds(engine):
    report = engine.index_paths([SAMPLES / "cat.jpg", SAMPLES / "flower.jpg"])
    cap_key = vector_key(CAPTION, engine.caption_identity)
    vis_key = vector_key(VISUAL, engine.visual_identity)
    for added in report.added:
        kept = engine.catalog.vectors(added.id)
        assert set(kept) == {cap_key, vis_key}
        assert np.allclose(kept[vis_key], engine.store.embeddings(VISUAL, [added.id])[added.id], atol=1e-6)
        assert np.allclose(kept[cap_key], engine.store.embeddings(CAPTION, [added.id])[added.id], atol=1e-6)
    edited = engine.set_caption(report.added[0].id, "a tabby cat asleep on a sofa")
    kept = engine.catalog.vectors(edited.id)
    assert np.allclose(kept[cap_key], engine.text_encoder.encode([edited.caption])[0], atol=1e-5)
    assert kept[vis_key].shape == (engine.clip.dim,)  # the picture's vector stays
    assert consistency.problems(engine.settings, client=engine.store._client) == []


def test_a_deleted_index_is_rebuilt_from_the_catalog_without_a_model(tmp_path, model_env):
    env = {**os.environ, **model_env, "VS_DATA_DIR": str(tmp_path / "data")}
    subprocess.run([sys.executable, "-m", "visual_search", "index", *map(str, sorted(SAMPLES.glob("*.jpg")))], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=300)
    before = _probe(env, str(REPO / "docs" / "sample_captions.csv"))
    assert before["rebuilt"] == 0 and all(before["answers"].values())

    shutil.rmtree(tmp_path / "data" / "chroma")
    after = _probe(env)
    assert after["rebuilt"] == len(list(SAMPLES.glob("*.jpg")))
    assert after["answers"] == before["answers"]  # same top-10, same relevance
    assert not after["blip_imported"] and not after["captioner_loaded"]

    # the index may live elsewhere (local disk) while the catalog stays on a bucket
    moved = _probe({**env, "VS_INDEX_DIR": str(tmp_path / "local-index")})
    assert moved["answers"] == before["answers"] and not moved["blip_imported"]
    assert (tmp_path / "local-index" / "chroma.sqlite3").exists()


def test_records_from_before_stored_vectors_adopt_the_index_vectors(engine, tiny_settings, shared_models):
    report = engine.index_paths([SAMPLES / "raccoon.jpg", SAMPLES / "kite_in_sky.jpg"])
    for path in engine.settings.images_dir.glob("??/*.json"):  # an old data dir: no vectors in records
        doc = json.loads(path.read_text())
        doc.pop("vectors")
        path.write_text(json.dumps(doc))
    again = SearchEngine(engine.settings, **shared_models)
    assert again.reconcile() == 0  # nothing to re-embed: the index was complete
    for added in report.added:
        assert len(again.catalog.vectors(added.id)) == 2
    assert consistency.problems(again.settings, client=again.store._client) == []


def test_a_model_change_reuses_the_stored_vectors_of_the_unchanged_model(engine, shared_models, monkeypatch):
    engine.index_paths([SAMPLES / "mountains.jpg", SAMPLES / "forest_path.jpg"])
    calls = []
    clip = shared_models["clip"]
    monkeypatch.setattr(ClipEncoder, "encode_images", lambda self, images: calls.append(len(images)) or
                        pytest.fail("CLIP re-embedded images whose vectors the catalog keeps"))
    from dataclasses import replace

    as_clip_text = SearchEngine(replace(engine.settings, text_model="clip"), captioner=shared_models["captioner"],
                                clip=clip)
    assert as_clip_text.reconcile() == 2  # caption vectors for the new text model only
    assert consistency.problems(as_clip_text.settings, client=as_clip_text.store._client) == []
    back = SearchEngine(engine.settings, **shared_models)
    assert back.reconcile() == 0 and calls == []


@pytest.mark.parametrize("model_id, reason", [
    ("Salesforce/blip-image-captioning-base", "Hugging Face Hub cannot be reached"),
    ("/no/such/blip-folder", "there is no such folder"),
])
def test_a_model_that_cannot_be_had_is_explained_in_one_sentence(model_id, reason, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as caught:
        BlipCaptioner(model_id, "cpu")
    message = str(caught.value)
    assert reason in message and "VS_CAPTION_MODEL" in message and model_id in message
    assert "\n" not in message and "make sure you don't have a local directory" not in message


def test_the_cli_says_which_model_is_missing(settings, monkeypatch, capsys):
    monkeypatch.setenv("VS_TEXT_MODEL", "sentence-transformers/all-MiniLM-L6-v2")  # not in any cache here
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli_main(["index", str(SAMPLES / "cat.jpg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: Cannot load the text model 'sentence-transformers/all-MiniLM-L6-v2': the Hugging "
                          "Face Hub cannot be reached") and "VS_TEXT_MODEL" in err

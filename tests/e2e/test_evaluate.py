"""`evaluate`: exact ranks from the engine's own vectors and ranking functions, end to end."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, SAMPLES
from visual_search import SearchEngine
from visual_search.cli import main
from visual_search.measure.evaluate import PendingCaption, append_csv, evaluate
from visual_search.stages.rank import CLIP_TEXT_IMAGE

# Two human captions per image (the second is used as a query in --reference-captions mode too).
CAPTIONS = {
    "cat.jpg": ["a close up of a tabby cat with green eyes", "the face of a striped cat",
                "a grey and brown kitten looking sideways"],
    "coffee_cup.jpg": ["a cup of espresso on a red saucer", "a small cup of black coffee with a spoon",
                       "an espresso on a wooden table"],
    "rocket_launch.jpg": ["a rocket standing on a launch pad at dusk", "a spacex rocket ready for launch",
                          "a white rocket on its launch site in the evening"],
    "mountains.jpg": ["rocky mountains with snow above a green meadow", "a mountain landscape with snow patches",
                      "a dirt trail through grass below grey peaks"],
}


@pytest.fixture
def gallery(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in CAPTIONS:
        shutil.copy(SAMPLES / name, folder / name)
    lines = ["image,caption"] + [f"{name},{c}" for name, cs in CAPTIONS.items() for c in cs[:2]]
    (tmp_path / "captions.csv").write_text("\n".join(lines) + "\n")
    return folder, tmp_path / "captions.csv"


def test_cli_evaluate_json_and_csv_row(gallery, tmp_path, model_env):
    folder, captions = gallery
    log = tmp_path / "runs.csv"
    env = {**os.environ, **model_env, "VS_DATA_DIR": str(tmp_path / "must-stay-empty"), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "visual_search", "evaluate", str(folder), str(captions), "--json", "--csv", str(log)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert doc["n_images"] == 4 and doc["n_queries"] == 8
    alphas = ["hybrid@0.25", "hybrid@0.5", "hybrid@0.75"]
    assert list(doc["channels"]) == ["caption", "visual", *alphas, *(f"{a}+words" for a in alphas)]
    for a in alphas:  # the word channel fused as the search fuses it: the semantic ranking never hurt
        assert doc["channels"][f"{a}+words"]["mrr"] >= doc["channels"][a]["mrr"] - 0.01
    for metrics in doc["channels"].values():
        assert set(metrics) == {"recall@1", "recall@5", "recall@10", "mrr", "median_rank"}
        assert 0 <= metrics["recall@1"] <= metrics["recall@5"] <= metrics["recall@10"] == 1.0  # only 4 images
        assert 0.25 <= metrics["mrr"] <= 1 and 1 <= metrics["median_rank"] <= 4
    assert doc["calibration"]["caption"]["constant"] == "CAPTION_TEXT"
    assert doc["calibration"]["visual"]["current"] == {"floor": CLIP_TEXT_IMAGE.floor, "ceiling": CLIP_TEXT_IMAGE.ceiling}
    assert doc["distributions"]["caption"]["correct"]["n"] == 8
    assert doc["distributions"]["caption"]["incorrect"]["n"] == 8 * 3
    rows = list(csv.DictReader(log.open()))
    assert len(rows) == 1 and rows[0]["n_images"] == "4" and rows[0]["mode"] == "generated"
    assert float(rows[0]["visual mrr"]) == pytest.approx(doc["channels"]["visual"]["mrr"], abs=1e-4)
    assert not (tmp_path / "must-stay-empty").exists()  # the user's data dir is never touched


def test_reference_captions_measure_stages_2_to_4_like_the_search(gallery, settings, shared_models, tmp_path):
    folder, _ = gallery
    engine = SearchEngine(settings, captioner=PendingCaption(), clip=shared_models["clip"],
                          text_encoder=shared_models["text_encoder"])
    captions = {name: cs for name, cs in CAPTIONS.items()}
    captions["not_there.jpg"] = ["an image missing from the folder", "really"]
    result = evaluate(engine, folder, captions, reference=True, alphas=[0.0, 1.0])
    assert result["n_images"] == 4 and result["n_queries"] == 8 and result["skipped"]["missing_images"] == 1
    # the first caption of each image is what got indexed, as a person's caption
    stored = {r.filename: r for r in engine.list()}
    assert stored["cat.jpg"].caption == CAPTIONS["cat.jpg"][0] and stored["cat.jpg"].caption_edited
    # Real MiniLM semantics: every paraphrase finds its image first on the caption channel...
    assert result["channels"]["caption"]["recall@1"] == 1.0
    assert result["channels"]["hybrid@1"] == result["channels"]["caption"]
    assert result["channels"]["hybrid@0"] == result["channels"]["visual"]
    # ...and the search a user runs agrees, query by query.
    for name, texts in CAPTIONS.items():
        for query in texts[1:]:
            assert engine.search(query, k=1, alpha=1.0).results[0].record.filename == name
    cal = result["calibration"]["caption"]
    assert cal["suggested"]["ceiling"] > cal["suggested"]["floor"]
    cosines = result["distributions"]["caption"]
    assert cosines["correct"]["mean"] > cosines["incorrect"]["mean"]


def test_cli_errors_are_messages(gallery, settings, tmp_path, capsys):
    folder, captions = gallery
    bad = tmp_path / "bad.csv"
    bad.write_text("image,caption\ncat.jpg\n")
    assert main(["evaluate", str(folder), str(bad), "--no-csv"]) == 2
    assert "bad.csv, line 2: expected 'image,caption'" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "empty-folder"), str(captions), "--no-csv"]) == 2
    assert "image folder not found" in capsys.readouterr().err
    assert main(["evaluate", str(folder), str(captions), "--alphas", "0.5,2", "--no-csv"]) == 2
    assert "--alphas" in capsys.readouterr().err


def test_csv_log_keeps_every_column_when_they_change(tmp_path):
    log = tmp_path / "runs.csv"
    append_csv(log, {"timestamp": "t1", "hybrid@0.5 mrr": 0.5})
    append_csv(log, {"timestamp": "t2", "hybrid@0.5 mrr": 0.6})
    append_csv(log, {"timestamp": "t3", "hybrid@0.9 mrr": 0.7})
    rows = list(csv.DictReader(log.open()))
    assert [r["timestamp"] for r in rows] == ["t1", "t2", "t3"]
    assert [r["hybrid@0.5 mrr"] for r in rows] == ["0.5", "0.6", ""]
    assert rows[2]["hybrid@0.9 mrr"] == "0.7"

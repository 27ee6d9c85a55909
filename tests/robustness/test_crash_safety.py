"""Crash safety: an indexer SIGKILLed at random moments loses nothing and lets nothing in.

The write order (original -> catalog record -> visual vector -> caption vector) and the startup
reconcile (engine.py) are meant to make any kill repairable. tests/crash_worker.py kills real
indexer processes 20+ times, some at random delays and some a random few milliseconds into a
Chroma write or a catalog write (and then kills the repair itself), and after every kill a fresh
process reconciles and tests/consistency.py checks the invariant.

Reproduce a run with the seed it prints: VS_TEST_CRASH_SEED=<seed> pytest tests/robustness/test_crash_safety.py -s
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import consistency
from conftest import REPO
from images import jpeg, png
from visual_search import Settings
from visual_search.stages.store import CAPTION, VISUAL

WORKER = Path(__file__).resolve().parent.parent / "crash_worker.py"
FOLDER_SIZE = 40
MIN_KILLS = 20


def make_folder(folder: Path) -> set[str]:
    """40 small distinct images (JPEG and PNG, two sub-folders); returns their content ids."""
    ids = set()
    for i in range(FOLDER_SIZE):
        data = jpeg(1000 + i, (48, 40)) if i % 3 else png(1000 + i, (40, 48))
        path = folder / f"part{i % 2}" / f"img{i:02d}{'.jpg' if i % 3 else '.png'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        ids.add(hashlib.sha256(data).hexdigest())
    return ids


def test_sigkilled_indexer_leaves_a_consistent_store_and_a_rerun_finishes_the_job(tmp_path, model_env):
    seed = int(os.environ.get("VS_TEST_CRASH_SEED") or random.randrange(1 << 31))
    print(f"crash seed: {seed} (VS_TEST_CRASH_SEED={seed} reproduces the kill plan)")
    expected = make_folder(tmp_path / "photos")
    plan = {"folder": str(tmp_path / "photos"), "seed": seed, "min_kills": MIN_KILLS, "max_rounds": 40,
            "remove_max": 12}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    env = {**os.environ, **model_env, "VS_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(WORKER), str(tmp_path / "plan.json")], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=400)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    for line in lines:
        print(json.dumps(line))
    assert proc.returncode == 0, f"seed {seed}: worker failed\n{proc.stderr[-3000:]}"
    calibration, rounds, final = lines[0], lines[1:-1], lines[-1]
    assert calibration["check"]["problems"] == [] and calibration["check"]["count"] == FOLDER_SIZE

    # After every kill, a restart (reconcile) gives a consistent store.
    for r in rounds:
        assert r["errors"] == [], f"seed {seed}, round {r['round']}: {r['errors']}"
        assert r["problems"] == [], f"seed {seed}, round {r['round']} ({r['where']}): {r['problems']}"
    kills = [r for r in rounds if r["killed"]] + [r for r in rounds if r.get("reconcile", {}).get("killed")]
    assert len(kills) >= MIN_KILLS, f"seed {seed}: only {len(kills)} kills"

    # The kills landed where it matters: inside Chroma writes, and between a record and its vectors.
    places = [r["where"] for r in rounds if r["killed"]] + [
        r["reconcile"]["where"] for r in rounds if r.get("reconcile", {}).get("killed")
    ]
    print("kills by place:", {p: places.count(p) for p in sorted(set(places))})
    assert any(p.startswith("inside upsert") or p == "inside delete" for p in places), places
    left = [p for r in rounds for p in r["left"] + (r.get("reconcile", {}).get("left_by_indexer") or [])]
    assert any("no vector for catalogued image" in p for p in left), "no kill left a record without vectors"
    assert any("has no image in the catalog" in p for p in left), "no kill left a vector without its image"

    # Re-running the index finishes the job: every file is in, once, and nothing else is.
    assert final["exit"] == 0 and final["errors"] == [] and final["report"]["failed"] == 0
    assert final["check"]["problems"] == [] and final["check"]["count"] == FOLDER_SIZE
    settings_ids = {p.stem for p in (tmp_path / "data" / "images").glob("??/*.json")}
    assert settings_ids == expected


def test_the_real_cli_killed_mid_index_is_repaired_by_reindex(tmp_path, model_env):
    """End to end with real processes: `index` SIGKILLed just after its first catalog record is
    written (before that group's vectors), then `python -m visual_search reindex` repairs it."""
    make_folder(tmp_path / "photos")
    env = {**os.environ, **model_env, "VS_DATA_DIR": str(tmp_path / "data"), "VS_CAPTION_MAX_TOKENS": "8"}
    cli = [sys.executable, "-m", "visual_search"]
    proc = subprocess.Popen([*cli, "index", str(tmp_path / "photos")], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    images = tmp_path / "data" / "images"

    def recorded() -> int:  # finished records, not the temp files they are renamed from
        return sum(not p.name.startswith(".") for p in images.glob("??/*.json"))

    try:
        while proc.poll() is None and not recorded():
            time.sleep(0.002)
    finally:
        proc.kill()
        proc.wait()
    records = recorded()
    assert proc.returncode == -signal.SIGKILL and 0 < records < FOLDER_SIZE
    done = subprocess.run([*cli, "reindex"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    print(f"killed after {records} records; reindex says: {done.stdout.strip()}")
    assert done.returncode == 0 and "re-embedded" in done.stdout
    settings = Settings.from_env(data_dir=tmp_path / "data", **{
        "caption_model": model_env["VS_CAPTION_MODEL"], "text_model": model_env["VS_TEXT_MODEL"],
        "clip_model": model_env["VS_CLIP_MODEL"]})
    assert consistency.problems(settings) == []
    assert recorded() == records  # nothing lost that was recorded


def test_checker_sees_each_kind_of_damage_and_reconcile_repairs_what_a_crash_can_leave(engine, shared_models):
    """The checker must be able to fail; and the damages a kill can cause are the ones reconcile repairs."""
    settings = engine.settings
    engine.index_bytes([(f"{i}.jpg", jpeg(500 + i)) for i in range(4)])
    assert consistency.problems(settings, clip=shared_models["clip"]) == []
    a, b, c, d = sorted(r.id for r in engine.list())
    root = settings.images_dir

    engine.store.delete([a])  # killed between the record and its vectors
    ghost = engine.clip.encode_images([Image.new("RGB", (8, 8))])
    engine.store.upsert_visual(["e" * 64], ghost)  # an image removed, its vector kept
    (root / "ab").mkdir(exist_ok=True)
    (root / "ab" / ".tmp-123-x.jpg").write_bytes(b"half")  # killed mid-write
    orphan = "ab" + "0" * 62
    (root / "ab" / f"{orphan}.png").write_bytes(png(9))  # original written, record not yet
    old = engine.store.embeddings(CAPTION, [b])[b]
    engine.store._cols[CAPTION].update(ids=[b], embeddings=[old], documents=["not the caption"])  # stale caption
    found = consistency.problems(settings)
    for needle in (f"no vector for catalogued image {a[:12]}", f"vector {'e' * 12} has no image",
                   "temp file left behind", f"original without a record: {orphan}", f"stored caption of {b[:12]}"):
        assert any(needle in p for p in found), (needle, found)

    engine.reconcile()
    assert consistency.problems(settings, clip=shared_models["clip"]) == []
    assert engine.count() == 4

    # Damage no crash can cause is still seen: a visual vector that belongs to another image.
    vis = engine.store.embeddings(VISUAL, [c, d])
    engine.store.upsert_visual([c, d], np.stack([vis[d], vis[c]]))
    seen = consistency.problems(settings)  # the records keep the true vectors: the index disagrees with them
    assert len(seen) == 2 and all("is not the one its record keeps" in p for p in seen)
    swapped = consistency.problems(settings, clip=shared_models["clip"])  # and comparing with CLIP agrees
    assert sum("is not the vector of its original" in p for p in swapped) == 2
    (root / c[:2] / f"{c}.jpg").unlink()  # an original lost behind the engine's back
    assert any(f"record {c[:12]} points to a missing original" in p for p in consistency.problems(settings))


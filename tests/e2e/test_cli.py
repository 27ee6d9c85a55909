"""The CLI: JSON shapes, exit codes, and messages instead of tracebacks. Most calls run `main()`
in-process (same code as `python -m visual_search`); one runs real fresh processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, SAMPLES
from images import jpeg
from visual_search.cli import main

FEW = sorted(SAMPLES.glob("*.jpg"))[:3]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_index_json_shape_and_exit_codes(settings, tmp_path, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    code, out, _ = run(capsys, "index", *map(str, FEW), "--json")
    report = json.loads(out)
    assert code == 0 and report["count"] == 3 and not report["failed"] and not report["duplicates"]
    assert [set(a) for a in report["added"]] == [{"id", "path", "caption"}] * 3
    code, out, _ = run(capsys, "index", str(FEW[0]), str(bad), "--json")
    report = json.loads(out)
    assert code == 2
    assert report["duplicates"] == [{"id": hashlib.sha256(FEW[0].read_bytes()).hexdigest(), "path": str(FEW[0])}]
    assert report["failed"][0]["path"] == str(bad) and "text file" in report["failed"][0]["error"]
    assert report["count"] == 3


def test_search_similar_list_json_shapes(settings, capsys):
    run(capsys, "index", *map(str, FEW))
    code, out, _ = run(capsys, "search", "a photo", "-k", "2", "--alpha", "0.3", "--min-relevance", "0", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["query"] == "a photo" and isinstance(doc["elapsed_ms"], float)
    keys = {"id", "path", "filename", "caption", "added_at", "tags", "relevance", "caption_score", "visual_score"}
    assert len(doc["results"]) == 2 and all(keys <= set(r) for r in doc["results"])
    code, out, _ = run(capsys, "similar", str(FEW[1]), "-k", "1", "--json")
    top = json.loads(out)["results"][0]
    assert code == 0 and top["relevance"] == 1.0 and top["id"] == hashlib.sha256(FEW[1].read_bytes()).hexdigest()
    code, out, _ = run(capsys, "list", "--json")
    listed = json.loads(out)
    assert code == 0 and len(listed) == 3
    assert all(set(r) == {"id", "path", "caption", "width", "height", "added_at", "taken_at", "place", "camera",
                          "tags"} for r in listed)


def test_caption_and_remove(settings, capsys):
    run(capsys, "index", *map(str, FEW))
    _, out, _ = run(capsys, "list", "--json")
    first = json.loads(out)[0]["id"]
    code, out, _ = run(capsys, "caption", first[:10], "a lighthouse on a cliff")
    assert code == 0 and "a lighthouse on a cliff" in out
    _, out, _ = run(capsys, "search", "lighthouse", "-k", "1", "--alpha", "1", "--json")  # above the default cut-off
    assert json.loads(out)["results"][0]["id"] == first
    assert run(capsys, "remove", first)[0] == 0
    _, out, _ = run(capsys, "list", "--json")
    assert first not in {r["id"] for r in json.loads(out)}
    code, _, err = run(capsys, "remove", first)
    assert code == 2 and "No indexed image" in err


@pytest.mark.parametrize(
    "argv,message",
    [(["search", ""], "empty"), (["search", "cat", "-k", "0"], "from 1 to"), (["search", "cat", "--alpha", "7"], "0 to 1"),
     (["similar", "not-a-file-or-id"], "No indexed image"), (["caption", "deadbeefdeadbeef", "x"], "No indexed image")],
)
def test_refusals_are_messages_not_tracebacks(settings, capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err + out


def test_index_persists_across_fresh_processes(tmp_path, model_env):
    """Real `python -m visual_search` processes: what one indexes, the next one finds."""
    env = {**os.environ, **model_env, "VS_DATA_DIR": str(tmp_path / "data")}
    img = tmp_path / "photo.jpg"
    img.write_bytes(jpeg(11))

    def cli(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "visual_search", *argv], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)

    first = cli("index", str(img), "--json")
    assert first.returncode == 0, first.stderr
    image_id = json.loads(first.stdout)["added"][0]["id"]
    second = cli("search", "anything", "-k", "1", "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["results"][0]["id"] == image_id

"""Security boundaries (see SECURITY.md): what the app serves, where uploads can land, the upload size
limit enforced by the server itself (not only by a polite client), and model weights that are
never unpickled with code in them. test_app.py covers the ordinary cases; these are the attacks."""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

import consistency
from conftest import SAMPLES, launch_app
from images import png
from visual_search import ModelLoadError, SearchEngine

MAX_MB = 1.0


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_settings, shared_models):
    """The real Blocks of visual_search/web on loopback, with the launch options app.py uses."""
    engine = SearchEngine(tiny_settings(tmp_path_factory.mktemp("secure") / "data", max_file_mb=MAX_MB),
                          **shared_models)
    engine.index_bytes([("first.png", png(1))])
    demo = launch_app(engine)
    yield engine, demo.local_url
    demo.close()


def fetch(url: str, path: str) -> int:
    return httpx.get(f"{url}gradio_api/file={path}", timeout=30).status_code


def test_only_stored_images_and_samples_are_served_whatever_the_path_trick(app):
    engine, url = app
    data = engine.settings.data_dir.resolve()
    images = engine.settings.images_dir.resolve()
    record = engine.list()[0]
    assert fetch(url, record.path) == 200 and fetch(url, str(SAMPLES.resolve() / "cat.jpg")) == 200
    refused = [
        "/etc/passwd", str(data / "chroma" / "chroma.sqlite3"), str(data / ".writer.lock"),
        f"{images}/../chroma/chroma.sqlite3", quote(f"{images}/../chroma/chroma.sqlite3", safe=""),
        f"{images}/%2e%2e/chroma/chroma.sqlite3", f"{SAMPLES.resolve()}/../app.py", str(SAMPLES.parent / "app.py"),
        "../../../../etc/passwd", "%2Fetc%2Fpasswd",
    ]
    for path in refused:
        assert fetch(url, path) in (403, 404), path


def test_the_server_enforces_the_upload_size_itself(app, tmp_path):
    """gradio_client refuses big files before sending; a hostile client does not: the server must."""
    engine, url = app
    before = consistency.snapshot(engine.settings)
    big = png(2) + b"\0" * int(1.5 * MAX_MB * 2**20)
    r = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.png", big, "image/png")}, timeout=60)
    assert r.status_code == 413
    assert consistency.snapshot(engine.settings) == before


def test_an_upload_name_cannot_choose_where_the_file_is_written(app, tmp_path):
    engine, url = app
    target = tmp_path / "escaped.png"
    name = "../" * 12 + str(target).lstrip("/")
    r = httpx.post(f"{url}gradio_api/upload", files={"files": (name, png(3), "image/png")}, timeout=60)
    assert r.status_code == 200
    stored = Path(r.json()[0])
    assert not target.exists() and stored.name == "escaped.png"
    assert ".." not in stored.parts


def test_a_hostile_upload_through_the_app_changes_nothing(app, tmp_path):
    """One gradio_client upload of a bad file with a markup name: refused with its reason, store unchanged."""
    from gradio_client import Client, handle_file

    engine, url = app
    bad = tmp_path / "<img src=x onerror=alert(1)>.png"
    bad.write_bytes(png(4)[:90])  # a truncated PNG
    before = consistency.snapshot(engine.settings)
    client = Client(url, verbose=False)
    outcome, status, _ = client.predict([handle_file(str(bad))], api_name="/add_images")
    [row] = outcome["data"]
    assert row[1] == "rejected" and "corrupt or truncated" in row[2]
    assert "0 indexed" in status and "1 rejected" in status
    assert consistency.snapshot(engine.settings) == before


# ---- model weights: safetensors preferred, pickles with code never run ----------------------------
class _Payload:
    """A "weights" pickle that runs a command when unpickled without restrictions."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant_pickle(path: Path, marker: Path) -> None:
    with open(path, "wb") as fh:
        pickle.dump(_Payload(marker), fh)


def _linked_copy(src: Path, dst: Path) -> Path:
    """A model folder whose files link to the original (MiniLM is 90 MB)."""
    dst.mkdir()
    for item in src.iterdir():
        (dst / item.name).symlink_to(item.resolve(), target_is_directory=item.is_dir())
    return dst


@pytest.mark.parametrize("which", ["blip", "minilm", "clip"])
def test_safetensors_win_over_a_planted_pickle(which, tiny_blip, minilm, tiny_clip, tmp_path):
    from visual_search.stages.caption import BlipCaptioner
    from visual_search.stages.visual import ClipEncoder
    from visual_search.stages.embed import SentenceTransformerEncoder

    marker = tmp_path / "pwned"
    src = {"blip": Path(tiny_blip), "minilm": Path(minilm), "clip": Path(tiny_clip.removeprefix("local-dir:"))}[which]
    folder = _linked_copy(src, tmp_path / which)
    pickle_name = "open_clip_pytorch_model.bin" if which == "clip" else "pytorch_model.bin"
    _plant_pickle(folder / pickle_name, marker)
    if which == "blip":
        BlipCaptioner(str(folder), "cpu", max_new_tokens=4)
    elif which == "minilm":
        SentenceTransformerEncoder(str(folder), "cpu")
    else:
        ClipEncoder(f"local-dir:{folder}", None, "cpu")
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("which", ["blip", "clip"])
def test_a_pickle_only_model_with_code_in_it_is_refused_not_run(which, tiny_blip, tiny_clip, tmp_path):
    """No safetensors at all: the loaders fall back to torch.load(weights_only=True), which refuses code."""
    from visual_search.stages.caption import BlipCaptioner
    from visual_search.stages.visual import ClipEncoder

    marker = tmp_path / "pwned"
    src = Path(tiny_blip) if which == "blip" else Path(tiny_clip.removeprefix("local-dir:"))
    folder = tmp_path / which
    shutil.copytree(src, folder)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    _plant_pickle(folder / ("pytorch_model.bin" if which == "blip" else "open_clip_pytorch_model.bin"), marker)
    with pytest.raises(ModelLoadError):
        if which == "blip":
            BlipCaptioner(str(folder), "cpu", max_new_tokens=4)
        else:
            ClipEncoder(f"local-dir:{folder}", None, "cpu")
    assert not marker.exists()


def test_engine_writes_only_under_its_data_dir(tmp_path, shared_models, settings, monkeypatch):
    """Indexing, captions, removal and reconcile create files only under VS_DATA_DIR."""
    # the working dir, home and temp dir all inside tmp_path too, so a stray write there is seen
    for name in ("cwd", "home", "tmp"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    engine = SearchEngine(replace(settings, data_dir=tmp_path / "data"), **shared_models)
    outside = {p for p in tmp_path.rglob("*")}
    added = engine.index_bytes([("../../x.png", png(5)), ("/etc/y.png", png(6))]).added
    engine.set_caption(added[0].id, "a caption")
    engine.remove(added[1].id)
    engine.reconcile()
    new = {p for p in tmp_path.rglob("*")} - outside
    assert new and all(p.is_relative_to(tmp_path / "data") for p in new)

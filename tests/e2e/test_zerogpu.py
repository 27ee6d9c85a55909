"""The app as a ZeroGPU Space runs it: `python app.py` with `SPACES_ZERO_GPU=true` and the test
stand-in for the `spaces` package (tests/zerogpu/spaces), which runs every GPU call in a forked
worker and refuses a call outside a Gradio event. The app's process has run torch's CPU thread pool
before its first GPU call (`SPACES_STANDIN_WARM_THREADS`), and the stand-in runs in both of the real
scheduler's modes: a fresh fork for every call, and one reused worker. In the first, the first
gradio_client call starts the sample indexing (no browser at all); in the second a browser opens the
page and its load event does. Then gradio_client uploads, searches, finds similar, edits a caption
and deletes; three uploads of 20 images each follow, with no call hung or refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from conftest import REPO, SAMPLES, free_port
from images import encode

STANDIN = Path(__file__).resolve().parent.parent / "zerogpu"
CHROMIUM = Path("/usr/bin/chromium")
N_SAMPLES = len(list(SAMPLES.glob("*.jpg")))


def _wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    """Until this app says it is serving (not merely until something answers on the port) and answers."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"app.py exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if "Running on local URL" in log.read_text():
            try:
                urllib.request.urlopen(url, timeout=2)
                return
            except OSError:
                pass
        time.sleep(0.5)
    raise AssertionError(f"app.py did not answer within {seconds} s:\n{log.read_text()[-3000:]}")


def _visit(url: str, tries: int = 3) -> None:
    """Open the page in Chromium, as a visitor does: its load event starts the first-start job. A
    visitor whose page never showed the job at work reloads it (on a saturated machine a page-load
    event has been seen to go unanswered); every GPU call still has to come from such an event."""
    from playwright.sync_api import sync_playwright

    from browser import FLAGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        page = browser.new_page()
        for attempt in range(tries):
            page.goto(url, wait_until="load")
            try:  # stay until the page shows the job at work (or done): the load event has been handled
                page.wait_for_function(
                    "n => { const t = document.querySelector('#collection-status')?.innerText || '';"
                    " return t.includes('⏳') || t.startsWith(n + ' images'); }", arg=N_SAMPLES, timeout=60_000)
                break
            except Exception:
                print(f"visit {attempt + 1}: the page shows",
                      page.evaluate("document.querySelector('#collection-status')?.innerText"))
                if attempt == tries - 1:
                    raise
        browser.close()


def _calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module", params=["fresh", "reuse"])
def space(request, tmp_path_factory, model_env):
    mode = request.param
    if mode == "reuse" and not CHROMIUM.exists():
        pytest.skip("Debian chromium is needed to open the page (apt-get install -y chromium)")
    tmp = tmp_path_factory.mktemp(f"zerogpu-{mode}")
    calls, out = tmp / "gpu-calls.jsonl", tmp / "app.log"
    port = free_port()
    env = {**os.environ, **model_env, "SPACES_ZERO_GPU": "true", "SPACES_STANDIN_LOG": str(calls),
           "SPACES_STANDIN_WORKERS": mode, "SPACES_STANDIN_WARM_THREADS": "1", "SPACES_STANDIN_GRACE_S": os.environ.get("SPACES_STANDIN_GRACE_S", "60"),
           "PYTHONPATH": os.pathsep.join([str(STANDIN), str(REPO)]), "VS_DATA_DIR": str(tmp / "data"),
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    with open(out, "w") as fh:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for(url, proc, out)
        assert _calls(calls) == [], "no GPU call may run before a visitor's event"
        if mode == "reuse":
            try:
                _visit(url)
            except Exception:
                print("app log:", out.read_text()[-4000:], "\ncalls:", _calls(calls))
                raise
        client = Client(url, verbose=False)  # fresh: its first call is the first event, and starts the job
        end = time.monotonic() + 240
        while not client.predict(api_name="/status").startswith(f"**{N_SAMPLES} images**"):
            assert time.monotonic() < end, client.predict(api_name="/status") + out.read_text()[-3000:]
            time.sleep(1)
        yield client, calls, proc.pid, mode
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_first_visit_indexes_the_samples_in_gpu_workers(space):
    client, calls, app_pid, mode = space
    runs = _calls(calls)
    assert runs and all(c["refused"] is None and c.get("aborted") is None for c in runs), runs
    if mode == "fresh":
        assert all(c["fresh"] for c in runs) and len({c["pid"] for c in runs}) == len(runs)
    understood = [c for c in runs if c["fn"].endswith("understand_prepared")]
    assert sum(1 for _ in understood) >= 1
    assert all(c["pid"] != app_pid for c in runs)  # every model run was in a forked worker
    assert all(c["duration"] < 60 for c in understood)  # asked from the input, not the default 60 s


def test_upload_caption_edit_and_delete_are_seen_by_the_next_answers(space, tmp_path):
    client, calls, _, _mode = space
    path = tmp_path / "teal.png"
    path.write_bytes(encode(Image.new("RGB", (80, 60), (0, 128, 128)), "PNG"))
    outcome, status, _header = client.predict([handle_file(str(path))], api_name="/add_images")
    assert outcome["data"][0][1] == "indexed", outcome
    assert f"{N_SAMPLES + 1:,} images in the collection" in status

    gallery, _table, _status = client.predict(handle_file(str(path)), 3, api_name="/similar")
    assert gallery[0]["caption"].startswith("1.00 | ")  # itself, found in the main process's index

    words = "a teal rectangle on nothing at all"
    lib_before = client.predict(api_name="/library")
    table = lib_before[1]
    new_id = table["data"][0][table["headers"].index("id")]  # newest first
    client.predict(new_id, words, api_name="/set_caption")
    gallery, _table, _status, _ = client.predict(words, 3, 1.0, api_name="/search")
    assert gallery[0]["caption"].startswith(f"1.00 | {words}")  # then why: the words in its file name

    client.predict(new_id, api_name="/delete")
    gallery, _table, _status, _ = client.predict(words, 3, 1.0, api_name="/search")
    assert all(words not in g["caption"] for g in gallery)
    gallery, _table, _status = client.predict(handle_file(str(path)), 3, api_name="/similar")
    assert not gallery or not gallery[0]["caption"].startswith("1.00 | ")

    runs = _calls(calls)
    assert all(c["refused"] is None for c in runs), [c for c in runs if c["refused"]]
    assert any(c["fn"].endswith("embed_captions") for c in runs)  # the corrected caption, on the GPU


def test_three_uploads_of_20_images_each_with_no_call_hung_or_refused(space, tmp_path):
    client, calls, _, mode = space
    before = len(_calls(calls))
    for upload in range(3):
        files = []
        for i in range(20):
            path = tmp_path / f"u{upload}-{i}.jpg"
            colour = (upload * 80 + 10, i * 12, 255 - i * 12)
            path.write_bytes(encode(Image.new("RGB", (120 + i, 90), colour), "JPEG"))
            files.append(handle_file(str(path)))
        outcome, _status, _header = client.predict(files, api_name="/add_images")
        assert [row[1] for row in outcome["data"]] == ["indexed"] * 20, outcome
    runs = _calls(calls)[before:]
    assert runs and all(c["refused"] is None and c.get("aborted") is None for c in runs), runs
    understood = [c for c in runs if c["fn"].endswith("understand_prepared")]
    assert len(understood) == 3, understood  # one GPU call per upload job, not one per 8 images


def test_a_gpu_call_outside_an_event_is_refused(monkeypatch):
    """What the stand-in guarantees, so the app test above means something."""
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.syspath_prepend(str(STANDIN))
    import gradio as gr
    import spaces

    gpu_double = spaces.GPU(lambda x: 2 * x, duration=5)
    with pytest.raises(gr.Error, match="outside a Gradio event"):
        gpu_double(21)

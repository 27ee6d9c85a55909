"""Against a real Chroma server (`chroma run`, client-server mode via VS_CHROMA_URL): the whole
engine works, data survives a server restart, and a server that is down or hung gives a clear
StoreUnavailable instead of a hang."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import consistency
from conftest import REPO, SAMPLES, free_port
from images import jpeg
from visual_search import SearchEngine, Settings, StoreUnavailable
from visual_search.stages import store as store_module
from visual_search.stages.store import CAPTION, VISUAL

CHROMA = Path(sys.executable).with_name("chroma")
FEW = sorted(SAMPLES.glob("*.jpg"))[:4]
HANG_LIMIT_S = 60  # liveness bound for "does not hang", far above the configured timeouts


class ChromaServer:
    """`chroma run` on loopback, a free port and a temp path; stop() and start() keep both."""

    def __init__(self, path: Path) -> None:
        self.path, self.port = path, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import httpx

        log = open(self.path.parent / "chroma.log", "ab")
        self.proc = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.path.parent / "chroma.log").read_text()[-2000:]
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("chroma server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def server(tmp_path):
    if not CHROMA.exists():
        pytest.skip("the chroma CLI is not installed beside this Python")
    srv = ChromaServer(tmp_path / "chroma-server")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def remote(settings, server, shared_models, monkeypatch) -> SearchEngine:
    """An engine whose vectors live on the server (the catalog stays in the data dir)."""
    monkeypatch.setenv("VS_CHROMA_URL", server.url)
    return SearchEngine(Settings.from_env(), **shared_models)


def call_bounded(fn, *args):
    """Run fn in a thread; fail the test if it does not return (a hang), else return (result, exc, s)."""
    box: dict = {}

    def target():
        t0 = time.perf_counter()
        try:
            box["result"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["exc"] = exc
        box["seconds"] = time.perf_counter() - t0

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG_LIMIT_S)
    assert not thread.is_alive(), f"{fn} hung for {HANG_LIMIT_S} s"
    return box.get("result"), box.get("exc"), box["seconds"]


def test_index_search_similar_caption_remove_on_a_server(remote, shared_models):
    report = remote.index_paths(FEW)
    assert len(report.added) == 4 and report.count == 4 and not report.failed
    assert not (remote.settings.data_dir / "chroma").exists()  # the vectors are on the server
    assert consistency.problems(remote.settings, clip=shared_models["clip"]) == []

    dog = report.added[0].id
    remote.set_caption(dog, "a dog running on a beach")
    remote.set_caption(report.added[1].id, "a bowl of soup on a table")
    top = remote.search("puppy by the sea", k=2, alpha=1.0).results
    assert top[0].record.id == dog and top[0].record.caption == "a dog running on a beach"
    assert all(0 <= r.relevance <= 1 for r in top)

    same = remote.similar(report.added[2].id, k=4).results
    assert same[0].record.id == report.added[2].id and same[0].relevance == pytest.approx(1.0, abs=1e-4)
    by_bytes = remote.similar(FEW[3].read_bytes(), k=1, filename="q.jpg").results
    assert by_bytes[0].record.id == report.added[3].id

    removed = remote.remove(dog)
    assert not Path(removed.path).exists() and remote.count() == 3
    assert dog not in remote.store.ids(CAPTION) | remote.store.ids(VISUAL)
    assert all(r.record.id != dog for r in remote.search("dog", k=4).results)
    assert consistency.problems(remote.settings, clip=shared_models["clip"]) == []


def test_data_survives_a_server_restart(remote, server, shared_models):
    added = remote.index_paths(FEW[:3]).added
    remote.set_caption(added[0].id, "a hand written caption")
    server.stop()
    server.start()
    # The running engine reconnects, and a fresh one (a new process would do the same) finds it all.
    assert remote.count() == 3
    fresh = SearchEngine(remote.settings, **shared_models)
    assert fresh.count() == 3 and fresh.store.ids(VISUAL) == {a.id for a in added}
    top = fresh.search("a hand written caption", k=1, alpha=1.0).results[0]
    assert top.record.id == added[0].id and top.record.caption == "a hand written caption"
    assert consistency.problems(fresh.settings, clip=shared_models["clip"]) == []


def test_server_down_is_a_clear_message_not_a_hang(remote, server, settings, shared_models, monkeypatch):
    remote.index_paths(FEW[:2])
    server.stop()
    # A running engine whose server went away.
    for call in (lambda: remote.search("a photo"), lambda: remote.similar(remote.list()[0].id), remote.count):
        _, exc, seconds = call_bounded(call)
        print(f"running engine, server down: {type(exc).__name__} after {seconds:.2f} s")
        assert isinstance(exc, StoreUnavailable) and server.url in str(exc)
    # A new engine (a fresh start of the app or CLI) while the server is down.
    monkeypatch.setenv("VS_CHROMA_URL", server.url)
    fresh = SearchEngine(Settings.from_env(), **shared_models)
    _, exc, seconds = call_bounded(fresh.count)
    print(f"new engine, server down: {type(exc).__name__} after {seconds:.2f} s")
    assert isinstance(exc, StoreUnavailable) and "cannot reach the Chroma server" in str(exc)
    # The CLI says so in one line, exit 2, no traceback.
    env = {**os.environ, "VS_CHROMA_URL": server.url, "VS_DATA_DIR": str(settings.data_dir)}
    proc = subprocess.run([sys.executable, "-m", "visual_search", "search", "a cat"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=HANG_LIMIT_S)
    assert proc.returncode == 2 and "Chroma server" in proc.stderr and "Traceback" not in proc.stderr


def test_a_hung_server_times_out_with_a_message(remote, server, shared_models, monkeypatch):
    """A server that accepts connections but never answers (here: SIGSTOPped) must not block forever."""
    monkeypatch.setattr(store_module, "SERVER_TIMEOUT_S", 2.0)
    remote.index_paths(FEW[:1])
    server.proc.send_signal(signal.SIGSTOP)
    try:
        _, exc, seconds = call_bounded(lambda: remote.search("a photo"))
        print(f"running engine, server hung: {type(exc).__name__} after {seconds:.2f} s")
        assert isinstance(exc, StoreUnavailable) and seconds < 3 * 2.0  # the timeout, not the test's limit
        monkeypatch.setenv("VS_CHROMA_URL", server.url)
        _, exc, seconds = call_bounded(SearchEngine(Settings.from_env(), **shared_models).count)
        print(f"new engine, server hung: {type(exc).__name__} after {seconds:.2f} s")
        assert isinstance(exc, StoreUnavailable) and server.url in str(exc) and seconds < 3 * 2.0
    finally:
        server.proc.send_signal(signal.SIGCONT)


def test_a_write_cut_by_a_server_outage_is_finished_when_the_server_is_back(remote, server, shared_models):
    """Server down in the middle of indexing: once it is back, indexing the same files again must
    make them searchable (not report them as duplicates of half-written images)."""
    remote.index_paths(FEW[:1])
    server.stop()
    uploads = [("a.jpg", jpeg(41)), ("b.jpg", jpeg(42))]
    _, exc, _ = call_bounded(remote.index_bytes, uploads)
    assert isinstance(exc, StoreUnavailable)
    server.start()
    report = remote.index_bytes(uploads)
    assert not report.failed
    assert remote.count() == 3
    ids = {a.id for a in report.added} | {d.id for d in report.duplicates}
    assert ids <= remote.store.ids(VISUAL) and ids <= remote.store.ids(CAPTION)
    assert consistency.problems(remote.settings, clip=shared_models["clip"]) == []


def test_a_remove_cut_by_a_server_outage_never_shows_the_removed_image(remote, server, shared_models):
    """The record goes first, so an outage leaves vectors of a removed image on the server: search
    must not show it (its file is gone), and the next write must delete those vectors."""
    added = remote.index_paths(FEW[:3]).added
    server.stop()
    _, exc, _ = call_bounded(remote.remove, added[0].id)
    assert isinstance(exc, StoreUnavailable)
    server.start()
    assert all(r.record.id != added[0].id for r in remote.search("a photo", k=3).results)
    assert all(r.record.id != added[0].id for r in remote.similar(added[1].id, k=3).results)
    remote.index_bytes([("new.jpg", jpeg(43))])
    assert added[0].id not in remote.store.ids(VISUAL) | remote.store.ids(CAPTION)
    assert consistency.problems(remote.settings, clip=shared_models["clip"]) == []

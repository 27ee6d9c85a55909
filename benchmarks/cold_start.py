"""Cold start: how long `python app.py` takes until the page answers, with the default models' shapes.

Runs app.py in a fresh process on a temporary data dir (loopback, a free port) with full-size BLIP,
MiniLM and CLIP (random weights, offline: the files are already on disk, as `preload_from_hub` leaves
them on a Space), and reports the seconds until the page answers HTTP 200 and until `/status`
answers through gradio's queue. `--zerogpu` starts it the way a ZeroGPU Space does (the test stand-in
for `spaces`, every model loaded at start-up).

    python benchmarks/cold_start.py [--zerogpu]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zerogpu", action="store_true", help="start as on ZeroGPU (tests/zerogpu stand-in)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from gradio_client import Client

    from visual_search.measure.models import random_models

    tmp = Path(tempfile.mkdtemp(prefix="vs-cold-"))
    rm = random_models(Path(tempfile.gettempdir()) / "vs-random-models")
    port = _free_port()
    env = {**os.environ, "VS_CAPTION_MODEL": rm.caption_model, "VS_TEXT_MODEL": rm.text_model,
           "VS_CLIP_MODEL": rm.clip_model, "VS_CLIP_PRETRAINED": rm.clip_weights, "VS_DATA_DIR": str(tmp / "data"),
           "VS_SAMPLE_DIR": str(tmp / "no-samples"), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    if args.zerogpu:
        env.update(SPACES_ZERO_GPU="true", PYTHONPATH=os.pathsep.join([str(REPO / "tests" / "zerogpu"), str(REPO)]))
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"app.py exited with {proc.returncode}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        page_s = time.perf_counter() - t0
        Client(url, verbose=False).predict(api_name="/status")
        status_s = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(30)
    figures = {"mode": "zerogpu" if args.zerogpu else "local", "page_s": round(page_s, 1),
               "status_s": round(status_s, 1)}
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"{figures['mode']}: page answers after {figures['page_s']} s, /status after {figures['status_s']} s")


if __name__ == "__main__":
    main()

"""Crash driver for tests/robustness/test_crash_safety.py: SIGKILLs real indexer processes, many times, cheaply.

Starting a Python process that imports torch and loads the models costs ~10 s here, so this driver
loads the (tiny) models once through the production loaders and then, for every round, forks a
fresh child that builds its own SearchEngine (its own Chroma client, its own startup reconcile)
and runs the real library code: remove a few images, then index the folder. The driver SIGKILLs
the child either after a random delay, or a random few milliseconds after the child enters a
chosen write (a Chroma upsert/delete, a catalog write): kills inside Chroma's own writes happen on
purpose, not by luck. A second forked child then plays "the restart": it records what the kill
left behind, reconciles, and checks the invariant (tests/consistency.py). The driver prints one
JSON line per round; the test asserts on them.

Children write "B:<phase>" / "E:<phase>" markers to a pipe around each write, so the driver knows
where each kill landed. The markers wrap library methods; nothing in them is replaced or mocked.

Usage: python tests/crash_worker.py PLAN.json  (VS_* model variables and VS_DATA_DIR in the env)
"""

from __future__ import annotations

import functools
import json
import os
import random
import select
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import consistency  # noqa: E402
from visual_search import SearchEngine, Settings  # noqa: E402
from visual_search.library.catalog import Catalog  # noqa: E402
from visual_search.stages.store import VectorStore  # noqa: E402

CHROMA_WRITES = ("upsert_visual", "upsert_captions", "delete")
CATALOG_WRITES = ("put_original", "put_record", "remove")


def load_models() -> dict:
    from visual_search.stages.caption import BlipCaptioner
    from visual_search.stages.visual import ClipEncoder
    from visual_search.stages.embed import SentenceTransformerEncoder

    s = Settings.from_env()
    return {
        "captioner": BlipCaptioner(s.caption_model, "cpu", max_new_tokens=8),
        "clip": ClipEncoder(s.clip_model, s.clip_pretrained, "cpu"),
        "text_encoder": SentenceTransformerEncoder(s.text_model, "cpu"),
    }


def _instrument(fd: int) -> None:
    """Write B:/E: markers around every store and catalog write (in the forked child only)."""

    def wrap(cls, name: str) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        def marked(*args, **kwargs):
            os.write(fd, f"B:{name}\n".encode())
            result = original(*args, **kwargs)
            os.write(fd, f"E:{name}\n".encode())
            return result

        setattr(cls, name, marked)

    for name in CHROMA_WRITES:
        wrap(VectorStore, name)
    for name in CATALOG_WRITES:
        wrap(Catalog, name)


def _child(fd: int, body) -> None:
    """Run `body` in a forked child and leave without running the parent's cleanup."""
    code = 1
    try:
        import torch

        torch.set_num_threads(1)  # the parent's thread pools do not survive fork()
        body()
        code = 0
    except BaseException as exc:  # reported to the driver, which fails the round
        os.write(fd, f"X:{type(exc).__name__}: {exc}"[:2000].replace("\n", " ").encode() + b"\n")
    finally:
        os._exit(code)


def indexer_round(settings: Settings, models: dict, folder: Path, remove: int, seed: int, fd: int) -> None:
    """The killed process: a fresh engine removes `remove` random images, then indexes the folder."""
    _instrument(fd)
    engine = SearchEngine(settings, **models)
    ids = sorted(r.id for r in engine.catalog.records())
    for image_id in random.Random(seed).sample(ids, min(remove, len(ids))):
        engine.remove(image_id)
    report = engine.index_paths([folder])
    summary = {"added": len(report.added), "duplicates": len(report.duplicates), "failed": len(report.failed)}
    os.write(fd, ("I:" + json.dumps(summary) + "\n").encode())


def restart_round(settings: Settings, models: dict, fd: int) -> None:
    """The restart: what the kill left, then a fresh engine's reconcile, then the invariant."""
    left = consistency.problems(settings)
    engine = SearchEngine(settings, **models)
    repaired = engine.reconcile()
    after = consistency.problems(settings, client=engine.store._client, clip=models["clip"])
    doc = {"left": left, "repaired": repaired, "problems": after, "count": engine.count()}
    os.write(fd, ("R:" + json.dumps(doc) + "\n").encode())


def run_child(body, kill=None) -> dict:
    """Fork `body`; `kill(pid, lines)` may SIGKILL it. Returns the markers and how it ended."""
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _child(w, lambda: body(w))
    os.close(w)
    lines: list[tuple[float, str]] = []
    buf = b""
    killed_at = None

    def pump(timeout: float) -> bool:
        """Read what is there; False at end of file."""
        nonlocal buf
        ready, _, _ = select.select([r], [], [], timeout)
        if not ready:
            return True
        chunk = os.read(r, 65536)
        if not chunk:
            return False
        buf += chunk
        *done, buf = buf.split(b"\n")
        now = time.perf_counter() - t0
        lines.extend((now, d.decode(errors="replace")) for d in done)
        return True

    open_ = True
    while open_:
        open_ = pump(0.0005 if kill else 0.2)
        if kill and killed_at is None and kill(pid, lines, time.perf_counter() - t0):
            os.kill(pid, signal.SIGKILL)
            killed_at = time.perf_counter() - t0
    _, status = os.waitpid(pid, 0)
    os.close(r)
    return {
        "lines": lines,
        "killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL,
        "exit": os.waitstatus_to_exitcode(status),
        "seconds": time.perf_counter() - t0,
        "killed_at": killed_at,
    }


def where(lines: list[tuple[float, str]]) -> str:
    """The write a kill interrupted ('inside upsert_visual'), or the last one it finished."""
    markers = [m for _, m in lines if m[:2] in ("B:", "E:")]
    if not markers:
        return "before any write"
    last = markers[-1]
    return ("inside " if last.startswith("B:") else "after ") + last[2:]


def median_span(lines: list[tuple[float, str]], phases: tuple[str, ...], default: float) -> float:
    """Median seconds between B: and E: markers of the given phases."""
    spans, opened = [], {}
    for t, m in lines:
        if m.startswith("B:"):
            opened[m[2:]] = t
        elif m.startswith("E:") and m[2:] in phases and m[2:] in opened:
            spans.append(t - opened.pop(m[2:]))
    return sorted(spans)[len(spans) // 2] if spans else default


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    settings = Settings.from_env()
    folder = Path(plan["folder"])
    rng = random.Random(plan["seed"])
    models = load_models()

    def out(doc: dict) -> None:
        print(json.dumps(doc), flush=True)

    def restart(label: str) -> dict:
        res = run_child(lambda fd: restart_round(settings, models, fd))
        reports = [json.loads(m[2:]) for _, m in res["lines"] if m.startswith("R:")]
        errors = [m for _, m in res["lines"] if m.startswith("X:")]
        failed = {"problems": [f"restart of {label} failed: {errors}"], "left": [], "count": -1}
        return reports[0] if reports else failed

    # Calibration, uncut: a first round fills the index; a second (remove 10, re-index them) times
    # a typical round and the Chroma writes in it.
    first = run_child(lambda fd: indexer_round(settings, models, folder, 0, 0, fd))
    calib = run_child(lambda fd: indexer_round(settings, models, folder, 10, 0, fd))
    write_span = median_span(calib["lines"], CHROMA_WRITES, 0.005)
    record_span = median_span(calib["lines"], ("put_record",), 0.001)
    per_removed = calib["seconds"] / 10
    out({"calibration": True, "first_round_s": round(first["seconds"], 3), "round_s": round(calib["seconds"], 3),
         "median_chroma_write_s": round(write_span, 5), "median_record_write_s": round(record_span, 5),
         "errors": [m for _, m in first["lines"] + calib["lines"] if m.startswith("X:")],
         "check": restart("calibration")})

    def at_write(phases: tuple[str, ...], nth: int, after: float):
        """A kill rule: `after` seconds once the child entered its nth write among `phases`."""

        def kill(pid, lines, elapsed):
            starts = [t for t, m in lines if m.startswith("B:") and m[2:] in phases]
            return len(starts) >= nth and elapsed >= starts[nth - 1] + after

        return kill

    kills = 0
    for i in range(plan["max_rounds"]):
        if kills >= plan["min_kills"]:
            break
        remove = rng.randint(3, plan["remove_max"])
        seed = rng.randrange(1 << 30)
        groups = -(-remove // 8)
        kind = i % 4
        reconcile_kill = None
        if kind in (0, 2):  # a random moment anywhere in the round
            delay = rng.uniform(0.0, per_removed * remove * 1.2)
            mode = {"mode": "delay", "delay_s": round(delay, 4)}
            kill = lambda pid, lines, elapsed, delay=delay: elapsed >= delay  # noqa: E731
        elif kind == 1:  # inside a Chroma write: an upsert of the new vectors, or a delete
            phase = rng.choice(CHROMA_WRITES)
            nth = rng.randint(1, remove if phase == "delete" else groups)
            after = rng.uniform(0.0, write_span)
            mode = {"mode": "chroma write", "phase": phase, "nth": nth, "after_s": round(after, 5)}
            kill = at_write((phase,), nth, after)
        else:  # after a catalog record, before its vectors; then kill the repair (reconcile) too
            nth = rng.randint(1, remove)
            after = rng.uniform(0.0, record_span)
            mode = {"mode": "catalog write, then reconcile", "phase": "put_record", "nth": nth,
                    "after_s": round(after, 5)}
            kill = at_write(("put_record",), nth, after)
            reconcile_kill = (rng.choice(("upsert_visual", "upsert_captions")), rng.uniform(0.0, write_span / 2))

        res = run_child(lambda fd: indexer_round(settings, models, folder, remove, seed, fd), kill)
        line = {"round": i, **mode, "remove": remove, "child_seed": seed, "killed": res["killed"],
                "where": where(res["lines"]) if res["killed"] else "finished",
                "errors": [m for _, m in res["lines"] if m.startswith("X:")]}
        if reconcile_kill:
            phase, after = reconcile_kill

            def reconcile_body(fd: int) -> None:
                os.write(fd, ("L:" + json.dumps(consistency.problems(settings)) + "\n").encode())
                _instrument(fd)
                SearchEngine(settings, **models).reconcile()

            rec = run_child(reconcile_body, at_write((phase,), 1, after))
            left = [json.loads(m[2:]) for _, m in rec["lines"] if m.startswith("L:")]
            line["reconcile"] = {"phase": phase, "after_s": round(after, 5), "killed": rec["killed"],
                                 "where": where(rec["lines"]) if rec["killed"] else "finished",
                                 "left_by_indexer": left[0] if left else None}
            line["errors"] += [m for _, m in rec["lines"] if m.startswith("X:")]
        kills += res["killed"] + bool(reconcile_kill and line["reconcile"]["killed"])
        out({**line, **restart(f"round {i}")})

    # Re-running the index finishes the job.
    final = run_child(lambda fd: indexer_round(settings, models, folder, 0, 0, fd))
    reports = [json.loads(m[2:]) for _, m in final["lines"] if m.startswith("I:")]
    out({"final": True, "exit": final["exit"], "report": reports[0] if reports else None,
         "errors": [m for _, m in final["lines"] if m.startswith("X:")], "check": restart("final")})


if __name__ == "__main__":
    main()

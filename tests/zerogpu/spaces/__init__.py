"""A test stand-in for Hugging Face's `spaces` package, reproducing ZeroGPU's process model.

What the real package (0.51, `spaces/zero/wrappers.py`) does with `SPACES_ZERO_GPU=true`, and this
stand-in does too:
- `@spaces.GPU` / `spaces.GPU(fn, duration=...)` returns a wrapper; each call is scheduled against
  the Gradio request of the event it belongs to. Outside an event there is none, and here the call
  is refused (the real scheduler then has no visitor to charge).
- `duration` is seconds or a callable of the call's own arguments; a request above the maximum is
  refused before anything runs.
- The function runs in a worker process forked with `multiprocessing.get_context('fork')`, in a
  thread of that worker, which first closes the app's TCP sockets it inherited. Its arguments and its return value are pickled across; nothing it changes
  in memory comes back to the app's process.
- An idle worker is reused for the next call of the same function (and keeps whatever state it had
  when it was forked); a worker whose call failed is not reused. An exception in the worker comes
  back as `gr.Error("ZeroGPU worker error", <exception class name>)`, its message lost, unless it is
  a `gr.Error` itself.
Not reproduced: the GPU itself (torch's "cuda" placement patching), quotas beyond one call's duration.

Every call is logged as a JSON line to `$SPACES_STANDIN_LOG` when set, for tests to read: the
function, the duration asked, the worker's pid, and the refusal if any.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import wraps

import gradio as gr

MAX_DURATION_S = 120  # the largest request a free visitor's call may make here
_fork = multiprocessing.get_context("fork")
forked = False  # True inside a worker: a nested GPU call runs in place, as in the real package


def _enabled() -> bool:
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true")


def GPU(task=None, *, duration=None, size=None, **_ignored):  # noqa: N802 - the real package's name
    if not callable(task):
        if task is not None and duration is None:  # @spaces.GPU(45)
            duration = task
        return lambda fn: GPU(fn, duration=duration, size=size)
    if not _enabled():
        return task
    return _wrap(task, duration)


def _log(**entry) -> None:
    path = os.environ.get("SPACES_STANDIN_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


class _Worker:
    def __init__(self, task) -> None:
        self.conn, child = _fork.Pipe()
        self.process = _fork.Process(target=_serve, args=(task, child, os.getpid()), daemon=True)
        self.process.start()
        child.close()

    def call(self, args, kwargs):
        self.conn.send((args, kwargs))  # pickled, as the real arg queue does
        while not self.conn.poll(0.5):
            if not self.process.is_alive():
                raise gr.Error("GPU task aborted", title="ZeroGPU worker error")
        return self.conn.recv()


def _serve(task, conn, parent: int) -> None:
    global forked
    forked = True
    _close_inherited_sockets()
    while True:
        try:
            if not conn.poll(1.0):
                if os.getppid() != parent:  # the app is gone: so is its GPU worker
                    return
                continue
            args, kwargs = conn.recv()
        except (EOFError, OSError):
            return

        def run():
            try:
                conn.send(("ok", task(*args, **kwargs)))
            except Exception as exc:  # the real worker sends the class name and the traceback
                passed = exc if isinstance(exc, gr.Error) else None
                conn.send(("error", type(exc).__name__, traceback.format_exc(), passed))

        with ThreadPoolExecutor(1) as pool:
            pool.submit(run).result()


def _close_inherited_sockets() -> None:
    """As the real worker does first: drop the app's TCP sockets (its web server's), so that a worker
    never answers, or keeps open, the app's port."""
    import psutil

    for conn in psutil.Process().net_connections(kind="tcp"):
        try:
            os.close(conn.fd)
        except OSError:
            pass


def _wrap(task, duration):
    from gradio.context import LocalContext

    idle: list[_Worker] = []
    lock = threading.Lock()
    name = getattr(task, "__qualname__", repr(task))

    @wraps(task)
    def handler(*args, **kwargs):
        if forked:
            return task(*args, **kwargs)
        asked = duration(*args, **kwargs) if callable(duration) else duration
        asked = asked.total_seconds() if isinstance(asked, timedelta) else (60 if asked is None else asked)
        refusal = None
        if LocalContext.request.get(None) is None:
            refusal = "called outside a Gradio event: ZeroGPU has no visitor request to schedule it for"
        elif not 0 < asked <= MAX_DURATION_S:
            refusal = f"the requested GPU duration ({asked:.0f}s) is larger than the maximum allowed"
        if refusal:
            _log(fn=name, duration=asked, refused=refusal, pid=None)
            raise gr.Error(refusal, title="ZeroGPU")
        with lock:
            worker = idle.pop() if idle else None
        if worker is None or not worker.process.is_alive():
            worker = _Worker(task)
        t0 = time.perf_counter()
        result = worker.call(args, kwargs)
        _log(fn=name, duration=asked, refused=None, pid=worker.process.pid, seconds=time.perf_counter() - t0)
        if result[0] == "ok":
            with lock:
                idle.append(worker)
            return result[1]
        worker.process.kill()  # the real package releases a failed worker instead of reusing it
        _, cls, trace, passed = result
        print(trace)
        if passed is not None:
            raise passed
        raise gr.Error(cls, title="ZeroGPU worker error")

    return handler

"""A test stand-in for Hugging Face's `spaces` package, reproducing ZeroGPU's process model.

What the real package (0.51, `spaces/zero/wrappers.py`) does with `SPACES_ZERO_GPU=true`, and this
stand-in does too:
- `@spaces.GPU` / `spaces.GPU(fn, duration=...)` returns a wrapper; each call is scheduled against
  the Gradio request of the event it belongs to. Outside an event there is none, and here the call
  is refused (the real scheduler then has no visitor to charge).
- `duration` is seconds or a callable of the call's own arguments; a request above the maximum is
  refused before anything runs.
- The function runs in a worker process forked with `multiprocessing.get_context('fork')`, which
  first closes the app's TCP sockets it inherited. The real worker runs its set-up (unpickling the
  arguments, moving the models) in the child's main thread, the copy of the thread that forked it,
  and the function in a new thread; here the function runs in that main thread too: the worst case
  of the same process model (a torch thread pool the forking thread used is unusable there). Its arguments and its return value are pickled across; nothing it changes
  in memory comes back to the app's process.
- A worker is reused only when the scheduler answers "idle" for the same GPU; otherwise a NEW worker
  is forked from the app's process as it is at that moment (after whatever the app ran meanwhile:
  torch's thread pool, ONNX Runtime, Chroma, tokenizers). `$SPACES_STANDIN_WORKERS` says what this
  scheduler answers: `fresh` (the default: never idle, a fresh fork for every call, the hard case)
  or `reuse` (always idle: one worker per function, kept). A worker whose call failed is not
  reused. A call running past its requested duration (plus `$SPACES_STANDIN_GRACE_S`, 30 s) is
  aborted, its worker killed, as the real scheduler does: a hung worker is a failed call, not a
  hung test. An exception in the worker comes
  back as `gr.Error("ZeroGPU worker error", <exception class name>)`, its message lost, unless it is
  a `gr.Error` itself.
Not reproduced: the GPU itself (torch's "cuda" placement patching), quotas beyond one call's duration.

Every call is logged as a JSON line to `$SPACES_STANDIN_LOG` when set, for tests to read: the
function, the duration asked, the worker's pid, whether it was a fresh fork, the refusal or the
abort if any. With `$SPACES_STANDIN_WARM_THREADS=1` the thread that calls a GPU function runs
torch's CPU thread pool (a multi-threaded op) just before the fork, as an app that touched torch on
a CPU has: a child forked after that blocks for ever in its first multi-threaded torch op unless it
keeps torch to one thread.
"""

from __future__ import annotations

import faulthandler
import json
import multiprocessing
import os
import signal
import threading
import time
import traceback
from datetime import timedelta
from functools import wraps

import gradio as gr

MAX_DURATION_S = 120  # the largest request a free visitor's call may make here
_fork = multiprocessing.get_context("fork")
forked = False  # True inside a worker: a nested GPU call runs in place, as in the real package


def _enabled() -> bool:
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true")


def _idle() -> bool:
    """The scheduler's answer: is the GPU of the last worker idle (so that worker may be reused)?"""
    return os.environ.get("SPACES_STANDIN_WORKERS", "fresh").strip().lower() == "reuse"


def _grace_s() -> float:
    return float(os.environ.get("SPACES_STANDIN_GRACE_S", "30"))


def _warm_thread_pool() -> None:
    """A multi-threaded torch op in this thread (elementwise over 480k values: every thread works)."""
    if os.environ.get("SPACES_STANDIN_WARM_THREADS") != "1":
        return
    import torch

    if torch.get_num_threads() < 2:
        torch.set_num_threads(2)
    float((torch.rand(3, 400, 400) * 0.5).sum())


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

    def call(self, args, kwargs, seconds: float):
        self.conn.send((args, kwargs))  # pickled, as the real arg queue does
        end = time.monotonic() + seconds
        while not self.conn.poll(0.5):
            if not self.process.is_alive():
                raise gr.Error("GPU task aborted", title="ZeroGPU worker error")
            if time.monotonic() > end:
                os.kill(self.process.pid, signal.SIGUSR1)  # its stacks, into the app's log, then gone
                time.sleep(1.0)
                self.process.kill()
                raise TimeoutError(f"the GPU task ran past its {seconds:.0f} s")
        return self.conn.recv()


def _serve(task, conn, parent: int) -> None:
    global forked
    forked = True
    faulthandler.register(signal.SIGUSR1, all_threads=True)
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

        try:
            conn.send(("ok", task(*args, **kwargs)))
        except Exception as exc:  # the real worker sends the class name and the traceback
            passed = exc if isinstance(exc, gr.Error) else None
            conn.send(("error", type(exc).__name__, traceback.format_exc(), passed))


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
        fresh = worker is None or not worker.process.is_alive() or not _idle()
        if fresh:
            if worker is not None:
                worker.process.kill()  # not idle: its GPU is another's now (the real package drops it)
            _warm_thread_pool()
            worker = _Worker(task)
        t0 = time.perf_counter()
        try:
            result = worker.call(args, kwargs, asked + _grace_s())
        except TimeoutError as exc:
            _log(fn=name, duration=asked, refused=None, pid=worker.process.pid, fresh=fresh, aborted=str(exc),
                 seconds=time.perf_counter() - t0)
            raise gr.Error("GPU task aborted", title="ZeroGPU worker error") from exc
        _log(fn=name, duration=asked, refused=None, pid=worker.process.pid, fresh=fresh, aborted=None,
             seconds=time.perf_counter() - t0)
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

"""What a GPU worker forked from the app's process must not inherit half-working.

ZeroGPU forks a NEW worker from the app's process for a GPU call whenever its scheduler does not
answer "idle" (spaces 0.51.3, `zero/wrappers.py`), at any moment, from whichever thread makes the
call. A fork copies that one thread: torch's OpenMP thread pool (libgomp), used before by the forking
thread or busy in another one, does not exist in the child, and the child's first multi-threaded
torch CPU op waits for it for ever (seen in transformers' image processor). So in every child forked
after `install()`, torch keeps to one CPU thread before anything else runs there (the worker's own
set-up moves tensors too), and Hugging Face tokenizers keep off their Rust pool. The GPU work needs
no CPU pool: its inputs are prepared in the app's process (`Models.prepare`). ONNX Runtime sessions
(the query encoders) and Chroma's threads are never used in a GPU call: the compute functions touch
neither.
"""

from __future__ import annotations

import os
import sys

_installed = False


def after_fork_in_child() -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    torch = sys.modules.get("torch")
    if torch is not None:  # not imported yet: a later import starts with the environment's setting
        torch.set_num_threads(1)


def install() -> None:
    """Make every later fork of this process safe for torch (once; on ZeroGPU, before any model)."""
    global _installed
    if not _installed:
        os.register_at_fork(after_in_child=after_fork_in_child)
        _installed = True

"""Where exported encoders live (VS_ONNX_DIR, default VS_DATA_DIR/onnx) and when one is stale.

An export is a folder named after what it was made from: the model identity, the files of a
local model, and the versions of every library that took part in exporting and running it. Any
of those changing gives a new folder, so an old export is never used with a new model or
exporter. `meta.json` is written last: a folder without it is unfinished. A failed verification
is kept too (with its reason), so the next process falls back to torch at once instead of
exporting again; upgrading a library retries.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from contextlib import contextmanager
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Iterator

FORMAT = 1  # bump when the exported graphs or the folder layout change
LIBRARIES = ("torch", "transformers", "open_clip_torch", "onnx", "onnxscript", "onnxruntime", "tokenizers")
META = "meta.json"


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Installed versions, read from package metadata: no library is imported for this."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def local_files(path: str) -> list[list]:
    """(relative name, size, mtime) of a local model's files, so editing a model in place re-exports it."""
    root = Path(path.removeprefix("local-dir:")).expanduser()
    if root.is_file():
        return [[root.name, root.stat().st_size, root.stat().st_mtime_ns]]
    if not root.is_dir():
        return []  # a hub id or a pretrained tag: its identity names it
    return sorted([str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns]
                  for p in root.rglob("*") if p.is_file())


class Entry:
    """One export folder: `kind` ("text", "clip-text"), the model it comes from, and its files."""

    def __init__(self, root: Path, kind: str, identity: str, sources: list[str]) -> None:
        key = {"format": FORMAT, "kind": kind, "identity": identity, "versions": library_versions(),
               "files": [local_files(s) for s in sources if s]}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        slug = re.sub(r"[^a-z0-9]+", "-", identity.rsplit("/", 1)[-1].lower()).strip("-")[:40] or "model"
        self.root = root
        self.folder = root / f"{kind}-{slug}-{digest}"
        self.key = key

    def read(self) -> dict | None:
        """The finished export's metadata, or None when there is none yet (or it is unreadable)."""
        try:
            return json.loads((self.folder / META).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One exporter at a time for this folder, across processes."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{self.folder.name}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """An empty folder to export into; it replaces the entry's folder only if the block succeeds."""
        tmp = self.root / f".tmp-{os.getpid()}-{self.folder.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            yield tmp
            shutil.rmtree(self.folder, ignore_errors=True)
            os.replace(tmp, self.folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def write_meta(folder: Path, meta: dict) -> None:
    (folder / META).write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")

"""Durable whole-file writes: a temp file, fsynced, renamed over the old one, then the folder fsynced.

A killed process or a power cut leaves either the old file or the new one, never half of one.

Large payloads (a phone's 4 MB original) skip the page cache with O_DIRECT: the kernel then reads them
straight from an aligned buffer instead of copying them into cache pages that the fsync writes out
anyway. That copy cost ~8 ms of CPU per photo here, 71 -> 63 ms for a whole intake (docs/benchmarks.md).
Where O_DIRECT is refused (tmpfs, some network or FUSE mounts, macOS has no flag) the plain buffered
write runs instead; the result on disk is the same bytes either way.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
from pathlib import Path

TMP_PREFIX = ".tmp-"  # what a killed writer may leave behind; the catalog sweeps these
DIRECT_MIN_BYTES = 256 * 1024  # below this (a record, a thumbnail) the page-cache copy costs next to nothing
_ALIGN = 4096  # the largest logical block size in common use: O_DIRECT writes whole blocks of it
_CHUNK = 1 << 20  # one aligned buffer per thread; 256 KB to 4 MB measured the same
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_local = threading.local()
_refused: set[int] = set()  # st_dev of file systems that refused O_DIRECT: not asked again
_REFUSALS = {errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}  # what a file system without O_DIRECT answers


def atomic_write(path: Path, data: bytes) -> bool:
    """Write `data` to `path` durably. True when the bytes went around the page cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{path.name}"
    direct = len(data) >= DIRECT_MIN_BYTES and _write_direct(tmp, data)
    if not direct:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return direct


def fsync_dir(folder: Path) -> None:
    """Make the rename itself durable: without this a power cut can lose the new directory entry."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # a platform or mount that cannot open folders: the file itself is synced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_direct(tmp: Path, data: bytes) -> bool:
    """Write and fsync `tmp` with O_DIRECT; False where the file system refuses it (the plain write
    that follows then replaces whatever `tmp` holds).

    Whole blocks go through the aligned buffer; the last partial block is written plainly (O_DIRECT
    turned off on the same descriptor), so the file never holds a byte that is not `data`'s: no
    padding to cut back, which a write-once store (a mounted bucket) could not do."""
    if not _O_DIRECT:
        return False
    dev = os.stat(tmp.parent).st_dev
    if dev in _refused:
        return False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_DIRECT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno not in _REFUSALS:
            raise
        _refused.add(dev)
        return False
    try:
        view = memoryview(data)
        whole = len(data) - len(data) % _ALIGN
        buf = _buffer()
        for offset in range(0, whole, _CHUNK):
            n = min(_CHUNK, whole - offset)
            buf[:n] = view[offset:offset + n]
            _write_all(fd, memoryview(buf)[:n])
        if whole < len(data):
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_O_DIRECT)
            _write_all(fd, view[whole:])
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _REFUSALS:
            raise
        _refused.add(dev)  # opened, but its block size or alignment is not ours: written the plain way
        os.close(fd)
        fd = -1
        tmp.unlink(missing_ok=True)
        return False
    finally:
        if fd >= 0:
            os.close(fd)
    return True


def _write_all(fd: int, data: memoryview) -> None:
    done = 0
    while done < len(data):
        done += os.write(fd, data[done:])


def _buffer() -> mmap.mmap:
    """This thread's page-aligned buffer (an anonymous mapping always starts on a page)."""
    buf = getattr(_local, "buffer", None)
    if buf is None:
        buf = _local.buffer = mmap.mmap(-1, _CHUNK)
    return buf

"""Durable writes: the bytes on disk are exactly the bytes given, whichever way they went."""

from __future__ import annotations

import errno
import fcntl
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from visual_search.library import durable

SIZES = [0, 1, 4095, 4096, 4097, durable.DIRECT_MIN_BYTES - 1, durable.DIRECT_MIN_BYTES,
         (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3_900_001]


def _accepts_direct(folder: Path) -> bool:
    """Whether this file system takes O_DIRECT at all (tmpfs before Linux 6.6 did not): asked without our code."""
    if not hasattr(os, "O_DIRECT"):
        return False
    probe = folder / "probe"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644))
    except OSError:
        return False
    probe.unlink()
    return True


def _leftovers(folder: Path) -> list[str]:
    return [n for n in os.listdir(folder) if n.startswith(durable.TMP_PREFIX)]


@pytest.mark.parametrize("size", SIZES)
def test_bytes_round_trip_exactly(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "shard" / "photo.jpg"
    direct = durable.atomic_write(path, data)
    assert path.read_bytes() == data  # no zero padding left at the end, nothing lost at a chunk edge
    assert direct == (size >= durable.DIRECT_MIN_BYTES and _accepts_direct(tmp_path))
    assert _leftovers(path.parent) == []


def test_a_large_write_replaces_the_old_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    durable.atomic_write(path, b"x" * (3 << 20))
    new = os.urandom(300_000)  # shorter than the old file: nothing of the old one may remain past it
    durable.atomic_write(path, new)
    assert path.read_bytes() == new
    assert _leftovers(tmp_path) == []


def test_a_file_system_refusing_o_direct_gets_the_plain_write(tmp_path: Path, monkeypatch) -> None:
    real_open = os.open
    asked: list[int] = []

    def refusing(path, flags, *args):  # what tmpfs and some FUSE mounts answer
        if flags & getattr(os, "O_DIRECT", 0):
            asked.append(flags)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refusing)
    monkeypatch.setattr(durable, "_refused", set())
    data = os.urandom(2_000_000)
    for name in ("a.jpg", "b.jpg"):
        assert durable.atomic_write(tmp_path / name, data) is False
        assert (tmp_path / name).read_bytes() == data
    assert len(asked) == (1 if hasattr(os, "O_DIRECT") else 0)  # refused once: not asked again
    assert _leftovers(tmp_path) == []


def test_a_write_refused_after_the_open_is_redone_the_plain_way(tmp_path: Path, monkeypatch) -> None:
    if not _accepts_direct(tmp_path):
        pytest.skip("this file system refuses O_DIRECT at the open; the test above covers that")
    real_write = os.write

    def misaligned(fd, data):  # a block size larger than ours: the kernel answers EINVAL
        if _is_direct(fd):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", misaligned)
    monkeypatch.setattr(durable, "_refused", set())
    data = os.urandom(1_500_000)
    assert durable.atomic_write(tmp_path / "a.jpg", data) is False
    assert (tmp_path / "a.jpg").read_bytes() == data
    assert _leftovers(tmp_path) == []


def _is_direct(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)


@pytest.mark.skipif(not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK), reason="no tmpfs here")
def test_tmpfs_stores_the_bytes_either_way() -> None:
    """tmpfs refused O_DIRECT before Linux 6.6 and takes it since: a Space's /tmp may be either."""
    with tempfile.TemporaryDirectory(dir="/dev/shm") as folder:
        path = Path(folder) / "photo.jpg"
        data = os.urandom(1_000_003)
        durable.atomic_write(path, data)
        assert path.read_bytes() == data
        assert _leftovers(Path(folder)) == []


_CHILD = """
import random, sys
from pathlib import Path
from visual_search.library import durable
path = Path(sys.argv[1])
for k in range(1_000_000):
    durable.atomic_write(path, random.Random(k).randbytes(1_300_000 + k))
    print(k, flush=True)
"""


def test_a_killed_writer_leaves_the_old_file_or_the_new_one_whole(tmp_path: Path) -> None:
    """SIGKILL in the middle of large (O_DIRECT) writes over one file: what is there is one whole version."""
    path = tmp_path / "photo.jpg"
    rng = random.Random()
    repo = Path(__file__).resolve().parents[2]
    for _ in range(8):
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": str(repo)})
        assert child.stdout is not None
        assert child.stdout.readline()  # one write done: the next ones are under way
        time.sleep(rng.uniform(0.0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait()
        data = path.read_bytes()
        k = len(data) - 1_300_000
        assert k >= 0 and data == random.Random(k).randbytes(len(data)), "a torn or padded file"
    durable.atomic_write(path, b"after")  # a temp file a kill left behind is no obstacle to the next write
    assert path.read_bytes() == b"after"

"""One writer at a time per data dir, and a stamp that tells other processes something changed.

Every write (index, edit, delete, repair) runs inside `Writer()`: a thread lock for this process and
a file lock for every process sharing the data dir (the app, a CLI `index` beside it). Each write
replaces the stamp file, so a process holding state derived from the store (the in-memory filter
table, search/filter_table.py) can tell that someone else wrote since it last looked.
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..errors import NotFound

# (stamp before, stamp after) of one write: lets a reader of the store follow this process's own writes
Listener = Callable[[str, str], None]


class Writer:
    """The data dir's writer lock. `reconciled` is False until a repair ran in this process, and again after
    a write was cut short (a store outage): the next write repairs first."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._lock = threading.RLock()
        self.listeners: list[Listener] = []
        self.reconciled = False
        self.changes = 0  # writes made (or tried) by this process: views drawn earlier know they are stale

    @property
    def _stamp_path(self) -> Path:
        return self.data_dir / ".changed"

    def stamp(self) -> str:
        """A token every writer of this data dir replaces; '' before the first write."""
        try:
            return self._stamp_path.read_text()
        except OSError:
            return ""

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock, open(self.data_dir / ".writer.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            before = self.stamp()
            try:
                yield
            except BaseException as exc:
                if not isinstance(exc, NotFound):  # a write cut short (store outage): repair first next time
                    self.reconciled = False
                raise
            finally:
                self.changes += 1
                self._stamp_path.write_text(os.urandom(8).hex())
                after = self.stamp()
                for listener in self.listeners:
                    listener(before, after)
                fcntl.flock(fh, fcntl.LOCK_UN)

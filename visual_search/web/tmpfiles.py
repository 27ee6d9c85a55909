"""gradio's upload folder (`GRADIO_TEMP_DIR`; app.py puts it in VS_DATA_DIR/uploads-tmp), kept small.

`/gradio_api/upload` writes there for anyone, with or without a page, and gradio never cleans it while
the app runs. An indexed upload's copy is removed by its job (uploads.py); what is left (query images
of Find similar and How it works, uploads nobody used) is swept once older than VS_VISITOR_TTL_HOURS,
the same promise as for visitors' uploads; when the folder is full (VS_UPLOADS_TMP_MAX_MB), anything
older than an hour goes at once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

UNDER_PRESSURE_S = 3600.0  # the age past which files go when the folder is full


def folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except OSError:
            pass  # removed meanwhile
    return total


def sweep(folder: Path, max_age_s: float, now: float | None = None) -> int:
    """Remove files in `folder` last modified more than `max_age_s` ago, then the folders left empty.
    Returns how many files went."""
    now = time.time() if now is None else now
    removed = 0
    for path in list(folder.rglob("*")):
        try:
            if path.is_file() and not path.is_symlink() and now - path.stat().st_mtime > max_age_s:
                path.unlink()
                removed += 1
        except OSError:
            pass  # removed meanwhile, or not ours to remove
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            os.rmdir(sub)  # only if empty
        except OSError:
            pass
    return removed

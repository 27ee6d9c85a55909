"""A tqdm bar on stderr behind the engine's `progress(done, total, label)` callback (CLI commands)."""

from __future__ import annotations

import sys
from typing import Callable


def progress_bar(desc: str) -> Callable[[int, int, str], None]:
    """The bar opens on the first call and closes itself when done reaches total."""
    from tqdm import tqdm

    bar: list = []

    def update(done: int, total: int, _label: str) -> None:
        if not bar:
            bar.append(tqdm(total=total, desc=desc, unit="img", file=sys.stderr))
        bar[0].total, bar[0].n = total, done
        bar[0].refresh()
        if done >= total:
            bar[0].close()

    return update

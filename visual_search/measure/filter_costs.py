"""What a filter costs: the same queries searched unfiltered and under each kind of filter, side by side.

The target (issue 11): a filtered search costs no more than 1.5 x an unfiltered one at 10,000 images.
Run alone on a synthetic collection (random vectors; the query encoders are the configured models):

    python -m visual_search.measure.filter_costs --size 10000 --queries 30
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from ..search.filters import SearchFilter

TARGET_RATIO = 1.5


def _filters(n: int) -> dict[str, SearchFilter]:
    """Filters of the synthetic collection (measure/synthetic.py): the newer half, 1 in 10 by tag, 1 in 10 by name."""
    from .synthetic import SYNTHETIC_EPOCH

    half = SYNTHETIC_EPOCH + timedelta(minutes=n // 2)
    return {
        "after (half pass)": SearchFilter(after=half),
        "tag (1 in 10)": SearchFilter(tag="tag-3"),
        "name (1 in 10)": SearchFilter(name="3.jpg"),
        "after + tag": SearchFilter(after=half, tag="tag-3"),
    }


def filter_costs(engine, texts: list[str], n: int, k: int = 10) -> dict:
    """Median ms of warm searches (encoders cached) per filter, and each one's ratio to no filter.

    The filters are decided in memory, as in the app, which loads the facets when it starts (the
    load is timed too); each query is searched under every filter in turn, so that a busy machine
    slows them alike.
    """
    from .synthetic import pct

    for t in texts:  # warm the query cache: what is compared is the search, not the encoders
        engine.search(t, k=k, min_relevance=0.0)
    t0 = time.perf_counter()
    engine.load_facets()
    load_ms = (time.perf_counter() - t0) * 1000
    runs = {"none": None, **_filters(n)}
    times: dict[str, list[float]] = {label: [] for label in runs}
    found: dict[str, list[int]] = {label: [] for label in runs}
    for j, t in enumerate(texts):
        labels = list(runs)[j % len(runs):] + list(runs)[: j % len(runs)]
        for label in labels:
            t0 = time.perf_counter()
            response = engine.search(t, k=k, min_relevance=0.0, filter=runs[label])
            times[label].append((time.perf_counter() - t0) * 1000)
            found[label].append(len(response.results))
    base = pct(times["none"])["p50"]
    out = {label: {**pct(times[label]), "results": min(found[label]),  # k, unless fewer images pass (tiny N)
                   "ratio": round(pct(times[label])["p50"] / base, 2)} for label in runs}
    out["none"]["facets_load_ms"] = round(load_ms, 1)
    return out


def format_rows(n: int, costs: dict) -> list[str]:
    lines = [f"Filtered search at {n:,} images (warm, p50 ms; ratio to unfiltered; target <= {TARGET_RATIO}x; "
             f"filters in memory, loaded in {costs['none'].get('facets_load_ms', 0):,.0f} ms)"]
    for label, v in costs.items():
        lines.append(f"  {label:<18} {v['p50']:>7.1f} ms  {v['ratio']:>5.2f}x  ({v['results']} results)")
    return lines


def main(argv: list[str] | None = None) -> int:
    from ..config import Settings
    from ..engine import SearchEngine
    from .synthetic import fill, queries

    import numpy as np

    p = argparse.ArgumentParser(prog="python -m visual_search.measure.filter_costs", description=__doc__)
    p.add_argument("--size", type=int, default=10_000)
    p.add_argument("--queries", type=int, default=30)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vs-filters-") as tmp:
        engine = SearchEngine(replace(Settings.from_env(), data_dir=Path(tmp)))
        fill(engine, 0, args.size, np.random.default_rng(0))
        print("\n".join(format_rows(args.size, filter_costs(engine, queries(args.queries), args.size))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

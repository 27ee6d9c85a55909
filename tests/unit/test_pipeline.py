"""The intake pipeline: results in the input's order, never more than `ahead` in flight."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from visual_search.library.pipeline import ordered_map, workers


def test_results_come_in_order_and_at_most_ahead_run_in_front():
    running, most, lock = [0], [0], threading.Lock()
    taken: list[int] = []

    def slow(i: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02 if i % 3 else 0.05)  # later items often finish first
        with lock:
            running[0] -= 1
        return i * i

    def items():
        for i in range(20):
            yield i
            taken.append(i)

    with ThreadPoolExecutor(4) as pool:
        for got, i in zip(ordered_map(pool, slow, items(), ahead=3), range(20)):
            assert got == i * i
            assert len(taken) <= i + 3  # the source is read no further than `ahead` in front
    assert most[0] <= 3


def test_without_a_pool_it_is_a_plain_map():
    assert list(ordered_map(None, str, range(3), ahead=2)) == ["0", "1", "2"]
    assert 1 <= workers() <= 4


def test_with_the_models_on_a_gpu_every_core_but_one_prepares():
    import os

    cores = len(os.sched_getaffinity(0))
    assert workers(gpu=True) == max(1, min(16, cores - 1))

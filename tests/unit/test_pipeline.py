"""The intake pipeline: results in the input's order, never more than `ahead` in flight; the writes behind
the models: in order, one at a time, their errors raised to the caller."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from visual_search.library.pipeline import Behind, ordered_map, workers


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


def test_jobs_behind_run_in_order_one_at_a_time_while_the_caller_goes_on():
    done: list[int] = []
    running, most = [0], [0]
    release = threading.Event()

    def job(i: int) -> None:
        running[0] += 1
        most[0] = max(most[0], running[0])
        if i == 0:
            assert release.wait(10)
        time.sleep(0.01)
        done.append(i)
        running[0] -= 1

    with Behind() as behind:
        behind.submit(job, 0)
        release.set()  # the caller got here while job 0 waited for it
        for i in range(1, 5):
            behind.submit(job, i)
    assert done == [0, 1, 2, 3, 4] and most[0] == 1


def test_a_failed_job_is_raised_at_the_next_submit_and_nothing_after_it_runs():
    ran: list[int] = []

    def job(i: int) -> None:
        if i == 1:
            raise OSError("disk full")
        ran.append(i)

    with pytest.raises(OSError, match="disk full"):
        with Behind() as behind:
            for i in range(4):
                behind.submit(job, i)
    assert ran == [0]


def test_when_the_caller_fails_the_job_in_progress_still_ends_first():
    ended = threading.Event()

    def job() -> None:
        time.sleep(0.2)
        ended.set()

    with pytest.raises(RuntimeError, match="model failed"):
        with Behind() as behind:
            behind.submit(job)
            raise RuntimeError("model failed")
    assert ended.is_set()


def test_inline_jobs_run_in_the_callers_thread():
    threads: list[str] = []
    with Behind(inline=True) as behind:
        behind.submit(lambda: threads.append(threading.current_thread().name))
        assert threads == [threading.current_thread().name]

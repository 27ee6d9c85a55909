"""A search's two channels at once (search/lanes.py): both answers come back, errors are not lost, a busy
lane never makes a search wait, and a forked ZeroGPU-style child gets a lane that runs."""

import multiprocessing
import threading
import time

import numpy as np
import pytest

from visual_search.search.candidates import Lanes
from visual_search.stages.query import QueryEncoder
from visual_search.stages.rank import Calibration


def _where() -> str:
    return threading.current_thread().name


def test_both_calls_answer_and_the_second_runs_beside_the_first():
    lanes = Lanes()
    started = threading.Event()

    def second():
        started.set()
        return _where()

    def first():
        assert started.wait(5), "the second call did not start while the first ran"
        return _where()

    here, there = lanes.both(first, second)
    assert here == threading.current_thread().name and there != here


def test_while_another_search_holds_the_lane_a_pair_runs_here_in_order():
    lanes, held, release, order = Lanes(), threading.Event(), threading.Event(), []
    holder = threading.Thread(target=lambda: lanes.both(lambda: held.set() or release.wait(5), lambda: None))
    holder.start()
    assert held.wait(5)  # the other search holds the lane now
    try:
        got = lanes.both(lambda: order.append("first") or _where(), lambda: order.append("second") or _where())
    finally:
        release.set()
        holder.join()
    assert order == ["first", "second"] and got == (_where(), _where())


@pytest.mark.parametrize("failing", ["first", "second"])
def test_an_error_in_either_is_raised_after_both_have_finished(failing):
    lanes, finished = Lanes(), []

    def call(name):
        def run():
            time.sleep(0.05 if name == "second" else 0)
            finished.append(name)
            if name == failing:
                raise ValueError(name)
            return name
        return run

    with pytest.raises(ValueError, match=failing):
        lanes.both(call("first"), call("second"))
    assert sorted(finished) == ["first", "second"]
    assert lanes.both(lambda: 1, lambda: 2) == (1, 2)  # the lane is free again


def _in_child(lanes: Lanes, conn) -> None:
    conn.send(lanes.both(lambda: "here", _where))
    conn.close()


def test_a_forked_child_gets_a_lane_of_its_own():
    """ZeroGPU forks its workers from the app's process: the parent's lane thread is not in the child."""
    lanes = Lanes()
    assert lanes.both(lambda: 1, lambda: 2) == (1, 2)  # the parent's lane thread exists now
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_in_child, args=(lanes, child))
    p.start()
    assert parent.poll(20), "the child's search waited for a lane thread that was never there"
    here, there = parent.recv()
    p.join(5)
    assert here == "here" and there.startswith("vs-lane")


class _Encoder:
    """A query encoder that says which thread ran it."""

    def __init__(self, concurrent: bool, dim: int = 4) -> None:
        self.concurrent, self.dim, self.threads = concurrent, dim, []
        self.calibration = Calibration(floor=0.0, ceiling=1.0)

    def encode(self, texts):
        self.threads.append(_where())
        return np.ones((len(texts), self.dim), np.float32) / 2

    encode_texts = encode


@pytest.mark.parametrize("concurrent", [True, False])
def test_the_two_query_encoders_run_at_once_only_where_both_allow_it(concurrent):
    """ONNX Runtime's encoders say they may run beside each other; torch's do not."""
    text, clip = _Encoder(concurrent), _Encoder(True)
    queries = QueryEncoder(text, clip)
    caption, visual = queries.encode("a dog", Lanes().both)
    assert caption.shape == (4,) and visual.shape == (4,)
    assert (text.threads[0] != clip.threads[0]) is concurrent
    queries.encode("a dog", Lanes().both)  # a repeated query comes from the cache, in whichever lane
    assert len(text.threads) == len(clip.threads) == 1

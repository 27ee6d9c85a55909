"""A search's two channels at once (lanes.py): both answers come back, errors are not lost, a busy
lane never makes a search wait, and a forked ZeroGPU-style child gets a lane that runs."""

import multiprocessing
import threading
import time

import numpy as np
import pytest

from visual_search import retrieval
from visual_search.lanes import SEQUENTIAL, Lanes
from visual_search.ranking import Calibration
from visual_search.store import CAPTION, VISUAL, Hit


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
    lanes, release, order = Lanes(), threading.Event(), []
    holder = threading.Thread(target=lambda: lanes.both(lambda: release.wait(5), lambda: None))
    holder.start()
    time.sleep(0.05)
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


class _Store:
    """Just enough of a VectorStore: 3 images on each channel."""

    def __init__(self, rng):
        self.ids = [c * 64 for c in "abc"]
        self.vectors = {CAPTION: rng.standard_normal((3, 4)), VISUAL: rng.standard_normal((3, 4))}
        for kind in self.vectors:
            self.vectors[kind] /= np.linalg.norm(self.vectors[kind], axis=1, keepdims=True)
        self.threads = set()

    def query(self, kind, vector, n, where=None, ids=None):
        self.threads.add(_where())
        cos = self.vectors[kind] @ vector
        return [Hit(self.ids[i], float(cos[i])) for i in np.argsort(-cos)[:n]]

    def embeddings(self, kind, ids):
        return {i: self.vectors[kind][self.ids.index(i)] for i in ids}


def test_a_vector_given_as_its_encoder_is_encoded_once_in_its_own_lane():
    rng = np.random.default_rng(0)
    store, calls = _Store(rng), []
    qc, qv = rng.standard_normal(4), rng.standard_normal(4)
    qc, qv = qc / np.linalg.norm(qc), qv / np.linalg.norm(qv)

    def encoder(name, v):
        def run():
            calls.append((name, _where()))
            return v
        return run

    cal = Calibration(floor=-1.0, ceiling=1.0)
    eager = retrieval.gather(store, retrieval.Query(qc, qv, cal, cal, 0.5), 2, 0.0, False, lanes=SEQUENTIAL)
    pending = retrieval.Query(encoder("caption", qc), encoder("visual", qv), cal, cal, 0.5)
    lazy = retrieval.gather(store, pending, 2, 0.0, False, lanes=Lanes())
    assert lazy.ids == eager.ids and np.allclose(lazy.total, eager.total)
    assert sorted(name for name, _ in calls) == ["caption", "visual"]  # each once, though read again to score
    assert len({where for _, where in calls}) == 2  # each in its own lane

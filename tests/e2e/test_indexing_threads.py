"""Where indexing makes the models' inputs: on the intake threads when a GPU runs the models (spread
over the cores, never on the GPU's time), on the models' own thread when they run on this CPU (an
intake thread's torch operations would start a second set of spinning OpenMP threads beside BLIP's)."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from images import jpeg
from visual_search import SearchEngine


class Recording:
    """A real model whose `prepare` notes the thread it ran on."""

    def __init__(self, model, threads: list[str]) -> None:
        self._model, self._threads = model, threads

    def prepare(self, images):
        self._threads.append(threading.current_thread().name)
        return self._model.prepare(images)

    def __getattr__(self, name):
        return getattr(self._model, name)


def _index(settings, shared_models, tmp_path, gpu) -> tuple[SearchEngine, list[str], list[str]]:
    threads: list[str] = []
    models = {**shared_models, "captioner": Recording(shared_models["captioner"], threads),
              "clip": Recording(shared_models["clip"], threads)}
    engine = SearchEngine(settings, **models, gpu=gpu)
    files = []
    tmp_path.mkdir(parents=True, exist_ok=True)
    for i in range(11):
        path = tmp_path / f"photo-{i}.jpg"
        path.write_bytes(jpeg(seed=i, size=(400, 300)))
        files.append(path)
    report = engine.index_paths(files)
    assert len(report.added) == 11 and not report.failed
    return engine, threads, [a.caption for a in report.added]


@pytest.fixture
def two_intake_threads(monkeypatch):
    from visual_search.library import indexer

    monkeypatch.setattr(indexer, "workers", lambda gpu=False: 2)  # a pool, whatever this machine's cores


def test_with_the_models_on_this_cpu_their_inputs_are_made_where_they_run(settings, shared_models, tmp_path,
                                                                          two_intake_threads):
    _, threads, captions = _index(settings, shared_models, tmp_path, gpu=None)
    assert threads and set(threads) == {threading.current_thread().name}
    assert len(threads) == 2 * 2  # captioner and CLIP, once per group of 8: two groups for 11 photos


def test_with_a_gpu_the_intake_threads_make_them_and_the_models_get_the_same(settings, shared_models, tmp_path,
                                                                             two_intake_threads):
    _, on_cpu, cpu_captions = _index(settings, shared_models, tmp_path / "cpu", gpu=None)
    gpu_engine, threads, gpu_captions = _index(replace(settings, data_dir=tmp_path / "gpu-data"), shared_models,
                                               tmp_path / "gpu", gpu=lambda fn, duration: fn)
    assert gpu_engine.compute.on_gpu and threads and all(t.startswith("vs-intake") for t in threads)
    assert len(threads) == 2 * 11  # each image alone, then joined per group
    assert gpu_captions == cpu_captions  # the same inputs: the same captions


def test_a_groups_writes_go_on_while_the_next_group_is_in_the_models(settings, shared_models, tmp_path,
                                                                     two_intake_threads):
    """The first group's first write waits (10 s at most) for the second group's captioning to begin: it
    can only begin if the writes run beside the models."""
    second_group_captioning = threading.Event()
    overlapped, writers = [], []

    class Watching(Recording):
        calls = 0

        def caption_prepared(self, inputs):
            Watching.calls += 1
            if Watching.calls == 2:
                second_group_captioning.set()
            return self._model.caption_prepared(inputs)

    engine = SearchEngine(settings, **{**shared_models, "captioner": Watching(shared_models["captioner"], [])})
    put_original = engine.catalog.put_original

    def watched_put_original(*args):
        writers.append(threading.current_thread().name)
        if len(writers) == 1:
            overlapped.append(second_group_captioning.wait(10))
        return put_original(*args)

    engine.catalog.put_original = watched_put_original
    files = [tmp_path / f"photo-{i}.jpg" for i in range(11)]
    for i, path in enumerate(files):
        path.write_bytes(jpeg(seed=i, size=(400, 300)))
    report = engine.index_paths(files)
    assert overlapped == [True]
    assert set(writers) == {"vs-write_0"} and len(writers) == 11
    assert [a.path for a in report.added] == [str(p) for p in files] and not report.failed
    assert engine.count() == 11

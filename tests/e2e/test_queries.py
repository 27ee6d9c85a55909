"""Hostile queries: empty, 10,000 characters, control and invisible characters, lone surrogates, other
scripts (CJK, Arabic, Hindi, emoji), wrong types. Each is answered with well-formed results or
refused with an InvalidQuery message - through the library and the CLI (exit 2, one line on
stderr, no traceback). Basic refusals (empty, k/alpha out of range) are in test_engine/test_cli."""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from conftest import REPO
from consistency import snapshot
from images import jpeg
from visual_search import InvalidQuery, NotFound, RejectedImage, SearchEngine
from visual_search.cli import main

CAPTIONS = ["a dog running on a beach", "一只猫坐在沙发上", "قطة على الأريكة", "🐱 on a 🛋️", "a bowl of soup"]

ANSWERED = {  # query -> the text the engine actually searches for
    "cjk": ("一只猫", "一只猫"),
    "arabic": ("قطة على الأريكة", "قطة على الأريكة"),
    "hindi": ("सोफे पर बिल्ली", "सोफे पर बिल्ली"),
    "emoji": ("🐱🛋️", "🐱🛋️"),
    "emoji-zwj": ("👨\u200d👩\u200d👧 family", "👨 👩 👧 family"),  # U+200D, a format character: a space
    "mixed-rtl": ("cat قطة 猫 кошка", "cat قطة 猫 кошка"),
    "combining": ("cafe\u0301 de\u0301cor", "cafe\u0301 de\u0301cor"),
    "control-chars": ("\x1b[31mred\x1b[0m\x00 dog\x07", "[31mred [0m dog"),
    "bidi-override": ("\u202edog\u202c on beach", "dog on beach"),
    "zero-width": ("d\u200bo\u200bg", "d o g"),
    "lone-surrogate": ("dog \ud800 beach", "dog beach"),
    "private-use": ("\ue000cat\uf8ff", "cat"),
    "whitespace-soup": ("\u00a0\u2003dog\u3000\t\r\nbeach\u2028", "dog beach"),
    "limit": ("a" * 1000, "a" * 1000),
    "limit-cjk": ("猫" * 1000, "猫" * 1000),  # far beyond both tokenizers' windows: truncated, not an error
    "markup": ("<script>alert(1)</script> **cat**", "<script>alert(1)</script> **cat**"),
    "sql-ish": ("'; DROP TABLE images; --", "'; DROP TABLE images; --"),
}

REFUSED = {  # query -> a fragment of the message
    "empty": ("", "empty"),
    "10k": ("x" * 10_000, "10,000 characters long; the limit is 1,000"),
    "10k-cjk": ("猫" * 10_000, "10,000 characters long"),
    "1001": ("a" * 1001, "1,001 characters long"),
    "only-controls": ("\x00\x01\x02\x1b\x7f", "empty"),
    "only-invisible": ("\u200b\u200d\u2060\ufeff", "empty"),
    "only-surrogates": ("\ud800\udfff", "empty"),
    "none": (None, "must be text"),
    "bytes": (b"a dog", "must be text"),
    "number": (42, "must be text"),
    "list": (["a", "dog"], "must be text"),
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_settings, shared_models):
    """One small index for the whole module (tests that change a caption put it back)."""
    # every result, whatever its relevance: these tests are about which queries are answered, not the cut-off
    engine = SearchEngine(tiny_settings(tmp_path_factory.mktemp("queries") / "data", min_relevance=0.0),
                          **shared_models)
    report = engine.index_bytes([(f"{i}.jpg", jpeg(700 + i)) for i in range(len(CAPTIONS))])
    for added, caption in zip(report.added, CAPTIONS):
        engine.set_caption(added.id, caption)
    return engine


def assert_well_formed(response, k: int, n: int) -> None:
    results = response.results
    assert len(results) == min(k, n) and len({r.record.id for r in results}) == len(results)
    for r in results:
        for score in (r.relevance, r.caption_score, r.visual_score):
            assert math.isfinite(score) and 0.0 <= score <= 1.0
        assert r.record.caption in CAPTIONS and r.record.width > 0
    assert [r.relevance for r in results] == sorted((r.relevance for r in results), reverse=True)
    json.dumps(response.to_dict(), ensure_ascii=False)  # serialisable as the CLI and app send it


@pytest.mark.parametrize("query,searched", ANSWERED.values(), ids=ANSWERED.keys())
def test_odd_but_meaningful_queries_are_answered(indexed, query, searched):
    for alpha in (0.0, 0.5, 1.0):
        response = indexed.search(query, k=3, alpha=alpha)
        assert response.query == searched
        assert_well_formed(response, 3, len(CAPTIONS))


@pytest.mark.parametrize("query,message", REFUSED.values(), ids=REFUSED.keys())
def test_unanswerable_queries_are_refused_with_a_message(indexed, query, message):
    with pytest.raises(InvalidQuery) as err:
        indexed.search(query, k=3)
    assert message in str(err.value) and len(str(err.value)) < 200  # the query is not echoed back at length


def test_a_query_in_another_language_finds_the_caption_written_in_it(indexed):
    """Non-Latin text goes through the encoders intact: the exact Arabic caption is its own best match."""
    top = indexed.search("قطة على الأريكة", k=1, alpha=1.0).results[0]
    assert top.record.caption == "قطة على الأريكة"
    top = indexed.search("一只猫坐在沙发上", k=1, alpha=1.0).results[0]
    assert top.record.caption == "一只猫坐在沙发上"


@pytest.mark.parametrize(
    "k,alpha,ok",
    [(np.int64(3), np.float32(0.5), True), ("3", "0.5", True), (3, "inf", False), (3, "-0", True),
     ("three", 0.5, False), (3, None, True), (3.0, 0.5, True), (-1, 0.5, False), (3, 1e-320, True)],
)
def test_k_and_alpha_of_odd_types(indexed, k, alpha, ok):
    if ok:
        assert_well_formed(indexed.search("a dog", k=k, alpha=alpha), 3, len(CAPTIONS))
    else:
        with pytest.raises(InvalidQuery):
            indexed.search("a dog", k=k, alpha=alpha)


@pytest.mark.parametrize(
    "image_id", ["../../etc/passwd", "*", "[0-9a-f]*", "????????", "0" * 7, "0" * 65, "\x00" * 64, "猫" * 64, "   "]
)
def test_ids_that_are_not_ids_are_not_found_and_touch_no_file(indexed, image_id):
    before = snapshot(indexed.settings)
    for call in (indexed.get, indexed.similar, indexed.remove, lambda i: indexed.set_caption(i, "x")):
        with pytest.raises(NotFound):
            call(image_id)
    assert indexed.count() == len(CAPTIONS) and snapshot(indexed.settings) == before


def test_a_glob_like_prefix_matching_several_images_is_not_a_match(indexed):
    ids = [r.id for r in indexed.list()]
    assert len(ids) == len(CAPTIONS)
    with pytest.raises(NotFound):
        indexed.get(ids[0][:7])  # below the 8-character minimum
    assert indexed.get(ids[0][:8]).id == ids[0]
    # a second record sharing the first 60 characters: every shorter prefix now matches two images
    twin_id = ids[0][:60] + "".join(f"{(int(c, 16) + 1) % 16:x}" for c in ids[0][60:])
    indexed.catalog.put_record(replace(indexed.get(ids[0]), id=twin_id, filename="twin.jpg",
                                               path=str(indexed.catalog.original_path(twin_id, ".jpg"))))
    try:
        for prefix in (ids[0][:8], ids[0][:60]):
            with pytest.raises(NotFound):
                indexed.get(prefix)
        assert indexed.get(ids[0][:61]).id == ids[0] and indexed.get(twin_id[:61]).id == twin_id
    finally:
        indexed.catalog.remove(twin_id)  # the module's collection stays as the other tests expect


def test_similar_to_bad_bytes_is_refused_like_an_upload(indexed):
    for data in (b"", b"GIF89a", b"<svg/>", jpeg(1)[:100]):
        with pytest.raises(RejectedImage):
            indexed.similar(data, k=3)


def test_captions_get_the_same_cleaning_and_limits(indexed):
    record = indexed.list()[0]
    image_id = record.id
    assert indexed.set_caption(image_id, "\x1b[1mbold\x1b[0m\u202e cat\u200b").caption == "[1mbold [0m cat"
    assert indexed.set_caption(image_id, "<b>html</b> & 猫").caption == "<b>html</b> & 猫"  # stored as text
    for text, message in (("\u200b\x00", "empty"), ("x" * 501, "limit is 500"), (None, "must be text")):
        with pytest.raises(InvalidQuery, match=message):
            indexed.set_caption(image_id, text)
    assert indexed.get(image_id).caption == "<b>html</b> & 猫"
    indexed.set_caption(image_id, record.caption)


@pytest.mark.parametrize(
    "argv,message",
    [(["search", "x" * 10_000], "10,000 characters"), (["search", "\x01\x02\x1b"], "empty"),
     (["search", "猫" * 1001], "1,001 characters"), (["search", "cat", "-k", "1e9"], "invalid int value"),
     (["caption", "0" * 64, "\u200b"], "empty")],
)
def test_cli_refuses_in_one_line(settings, capsys, argv, message):
    by_argparse = "invalid int" in message  # argparse prints its usage, then the error
    with pytest.raises(SystemExit) if by_argparse else contextlib.nullcontext() as stopped:
        assert main(argv) == 2
    assert not by_argparse or stopped.value.code == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert message in lines[-1] and "Traceback" not in err + out and not out
    assert by_argparse or len(lines) == 1  # argparse: its usage lines, then this one


def test_cli_answers_other_scripts(indexed, capsys, monkeypatch, model_env):
    for key, value in model_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VS_DATA_DIR", str(indexed.settings.data_dir))
    assert main(["search", "قطة على الأريكة", "-k", "2", "--alpha", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["query"] == "قطة على الأريكة" and doc["results"][0]["caption"] == "قطة على الأريكة"


def test_cli_refusal_in_a_real_process_has_no_traceback(tmp_path, model_env):
    """The same through `python -m visual_search` (argv cannot hold NUL; control characters it can)."""
    env = {**os.environ, **model_env, "VS_DATA_DIR": str(tmp_path / "data")}
    for query, message in (("x" * 10_000, "10,000 characters"), ("\x01\x1b\x7f", "empty")):
        proc = subprocess.run([sys.executable, "-m", "visual_search", "search", query], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and message in proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

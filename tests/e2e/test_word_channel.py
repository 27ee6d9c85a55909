"""The word channel through the real search (issue 23, parts 3-4): the 20 samples with their
hand-written captions and the real all-MiniLM-L6-v2, plus photos whose only clue is a word they carry."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES, captioned_samples
from visual_search import SearchEngine
from visual_search.cli import main
from visual_search.search.filters import SearchFilter
from visual_search.stages import rank

NAMED = ["black cat at night.jpg", "BlackCat_02.jpg"]  # their captions never say "black cat"


def _variant(sample: str, n: int) -> bytes:
    """A sample photo, cropped a little: new bytes, so indexed as an image of its own."""
    with Image.open(SAMPLES / sample) as im:
        out = io.BytesIO()
        im.convert("RGB").crop((n, n, im.width - n, im.height - n)).save(out, "JPEG", quality=90)
        return out.getvalue()


@pytest.fixture(scope="module")
def engine(tmp_path_factory, tiny_settings, shared_models) -> SearchEngine:
    settings = tiny_settings(tmp_path_factory.mktemp("words") / "data", min_relevance=0.2)
    engine = captioned_samples(settings, shared_models)
    report = engine.index_bytes([(NAMED[0], _variant("mountains.jpg", 7)), (NAMED[1], _variant("flower.jpg", 9)),
                                 ("IMG_0042.jpg", _variant("pier_in_fog.jpg", 5))])
    for added, caption in zip(report.added, ["a dark room with a window", "a blurry photo of a garden",
                                             "a wooden pier in the fog"]):
        engine.set_caption(added.id, caption)
    return engine


def _names(response) -> list[str]:
    return [r.record.filename for r in response.results]


def test_a_file_name_query_ranks_the_files_named_so_first(engine):
    response = engine.search("black cat", k=5, alpha=1.0)
    assert sorted(_names(response)[:2]) == sorted(NAMED)
    top = response.results[0]
    assert top.word_score == pytest.approx(1.0) and top.relevance >= rank.WORD_WEIGHT
    (m,) = [m for m in top.matched if m.field == "name"]
    assert m.marked("[", "]").startswith("file name: [black cat]") or "[Black" in m.marked("[", "]")
    # the sample cat (a tabby, "cat.jpg") is still found: by meaning and by the one word it carries
    assert "cat.jpg" in _names(response)


def test_an_image_without_the_words_keeps_its_meaning_score_exactly(engine):
    response = engine.search("a wooden pier in the fog", k=3, alpha=1.0)
    for r in response.results:
        meaning = rank.hybrid(r.caption_score, r.visual_score, 1.0)
        assert r.relevance == pytest.approx(float(rank.fuse(meaning, r.word_score)))
    nothing = engine.search("zzqx blorft", k=3, alpha=1.0)
    assert nothing.results == [] and nothing.missing_phrases == ()


def test_a_quoted_phrase_must_match_and_says_so_when_nothing_holds_it(engine):
    response = engine.search('"black cat"', k=10, alpha=1.0)
    assert sorted(_names(response)) == sorted(NAMED)  # nothing without the phrase, whatever its meaning
    none = engine.search('a "purple elephant" on the beach', k=10, alpha=1.0)
    assert none.results == [] and none.missing_phrases == ("purple elephant",)


def test_filters_and_paging_apply_to_word_finds(engine):
    first, second = (engine.search("black cat", k=1, alpha=1.0, offset=o).results[0].record.filename for o in (0, 1))
    assert {first, second} == set(NAMED)
    only = engine.search("black cat", k=5, alpha=1.0, filter=SearchFilter(name="BlackCat"))
    assert _names(only) == ["BlackCat_02.jpg"]
    tagged = engine.search("black cat", k=5, alpha=1.0, filter=SearchFilter(tag="no-such-tag"))
    assert tagged.results == [] and tagged.passing == 0


def test_a_visitor_never_finds_another_visitors_words(tmp_path, tiny_settings, shared_models):
    engine = SearchEngine(replace(tiny_settings(tmp_path / "data"), public_demo=True), **shared_models)
    a, b = "visitor-a-0123456789abcdef", "visitor-b-0123456789abcdef"
    path = tmp_path / "upload.jpg"
    path.write_bytes(_variant("raccoon.jpg", 3))
    engine.index_files([("secret_zanzibar_plan.jpg", str(path))], visitor=a)
    assert _names(engine.search("zanzibar", k=5, visitor=a)) == ["secret_zanzibar_plan.jpg"]
    assert engine.search("zanzibar", k=5, visitor=b).results == []
    assert engine.search('"zanzibar plan"', k=5, visitor=b).missing_phrases == ("zanzibar plan",)


def test_the_word_index_is_rebuilt_from_the_catalog(tmp_path, tiny_settings, shared_models):
    settings = tiny_settings(tmp_path / "data")
    engine = SearchEngine(settings, **shared_models)
    engine.index_bytes([("harbour_lights.jpg", _variant("pier_in_fog.jpg", 2))])
    assert _names(engine.search("harbour", k=3)) == ["harbour_lights.jpg"]
    settings.words_path.unlink()
    for extra in ("-wal", "-shm"):
        settings.words_path.with_name(settings.words_path.name + extra).unlink(missing_ok=True)
    fresh = SearchEngine(settings, **shared_models)
    fresh.reconcile()
    assert _names(fresh.search("harbour", k=3)) == ["harbour_lights.jpg"]


def test_semantic_queries_are_not_hurt(engine):
    """R@1 and MRR of the other hand-written captions as queries, on the meaning alone and fused."""
    import csv

    from conftest import REPO
    from visual_search.measure.evaluate import score

    every: dict[str, list[str]] = {}
    with open(REPO / "docs" / "sample_captions.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            every.setdefault(row["image"], []).append(row["caption"])
    records = [r for r in engine.list() if r.filename in every]
    texts, truth = [], []
    for column, r in enumerate(records):
        texts += every[r.filename][1:]
        truth += [column] * len(every[r.filename][1:])
    result = score(engine, [r.id for r in records], texts, np.asarray(truth), [1.0])["channels"]
    assert result["hybrid@1+words"]["recall@1"] >= result["hybrid@1"]["recall@1"] - 0.01
    assert result["hybrid@1+words"]["mrr"] >= result["hybrid@1"]["mrr"] - 0.01


def test_the_cli_says_why_and_json_carries_it(engine, monkeypatch, capsys):
    monkeypatch.setenv("VS_DATA_DIR", str(engine.settings.data_dir))
    for key, value in (("VS_CAPTION_MODEL", engine.settings.caption_model), ("VS_CLIP_MODEL", engine.settings.clip_model),
                       ("VS_TEXT_MODEL", engine.settings.text_model)):
        monkeypatch.setenv(key, value)
    assert main(["search", "black cat", "-k", "2", "--alpha", "1"]) == 0
    out = capsys.readouterr().out
    assert "file name: «black cat» at night.jpg" in out and "file name: «BlackCat»_02.jpg" in out
    assert main(["search", "black cat", "-k", "1", "--alpha", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert {"ocr_text", "taken_at", "place", "camera", "word_score", "matched"} <= result.keys()
    assert result["matched"][0]["field"] == "name" and result["matched"][0]["words"]
    assert main(["search", '"purple elephant"']) == 0
    assert 'No image holds "purple elephant"' in capsys.readouterr().out


def test_a_tile_shows_the_text_in_the_picture_and_why_it_matched():
    from visual_search.records import ImageRecord, Matched, SearchResult
    from visual_search.web.common import tile_label

    record = ImageRecord(id="f" * 64, path="x.jpg", filename="IMG_0001.jpg", caption="a shop front", width=1,
                         height=1, added_at="2026-12-05T00:00:00+00:00", ocr_text="FRESH BREAD\nBAKERY " + "x" * 80)
    plain = SearchResult(record, 0.5, 0.5, 0.5, 0.5, 0.5)
    assert tile_label(plain) == f"0.50 | a shop front — text in picture: FRESH BREAD BAKERY {'x' * 41}…"
    hit = Matched("text", "text in picture", record.ocr_text, ((12, 18),))
    found = SearchResult(record, 0.9, 0.5, 0.5, 0.5, 0.5, 1.0, (hit,))
    assert tile_label(found).startswith("0.90 | a shop front — text in picture: FRESH BREAD «BAKERY» xxx")

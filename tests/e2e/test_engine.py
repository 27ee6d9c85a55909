"""The engine end to end on tiny random BLIP/CLIP and the real MiniLM: indexing, search, similar,
caption edits, removal, duplicates, bad input, model change and repair."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import consistency
from conftest import SAMPLES
from images import jpeg, png
from visual_search import IndexOutOfDate, InvalidQuery, NotFound, SearchEngine
from visual_search.stages.store import CAPTION, VISUAL

FEW = sorted(SAMPLES.glob("*.jpg"))[:4]


def snapshot(engine: SearchEngine) -> dict:
    """Everything a write could change: catalog files with their hashes, ids in every collection."""
    return consistency.snapshot(engine.settings)


def test_index_then_search_returns_well_formed_results(engine):
    report = engine.index_paths(FEW)
    assert len(report.added) == len(FEW) and report.count == len(FEW) and not report.failed
    response = engine.search("a photo", k=3)
    assert len(response.results) == 3
    for r in response.results:
        assert 0.0 <= r.relevance <= 1.0 and 0.0 <= r.caption_score <= 1.0 and 0.0 <= r.visual_score <= 1.0
        assert Path(r.record.path).is_file() and r.record.path.startswith(str(engine.settings.images_dir))
        assert r.record.caption and r.record.filename in {p.name for p in FEW}
        assert r.record.width > 0 and r.record.height > 0 and r.record.added_at
    relevances = [r.relevance for r in response.results]
    assert relevances == sorted(relevances, reverse=True)


def test_same_image_twice_is_a_duplicate_and_adds_nothing(engine):
    engine.index_paths(FEW[:1])
    before = snapshot(engine)
    report = engine.index_bytes([("copy.jpg", FEW[0].read_bytes())])
    assert [d.path for d in report.duplicates] == ["copy.jpg"] and not report.added
    assert snapshot(engine) == before


def test_captions_rank_by_meaning(engine):
    """Stage 2-4 with real semantics: 'puppy by the sea' finds the beach dog before the soup."""
    report = engine.index_bytes([("dog.jpg", jpeg(1)), ("soup.jpg", jpeg(2)), ("car.jpg", jpeg(3))])
    dog, soup, car = (a.id for a in report.added)
    engine.set_caption(dog, "a dog running on a beach")
    engine.set_caption(soup, "a bowl of soup")
    engine.set_caption(car, "a quarterly financial report spreadsheet")
    results = engine.search("puppy by the sea", k=3, alpha=1.0).results
    assert [r.record.id for r in results[:2]] == [dog, soup]
    assert results[0].relevance > results[1].relevance
    assert results[0].record.caption == "a dog running on a beach"


def test_caption_edit_is_searchable_at_once_and_survives(engine):
    image_id = engine.index_bytes([("a.jpg", jpeg(4)), ("b.jpg", jpeg(5))]).added[0].id
    engine.set_caption(image_id, "  a red bicycle\nleaning on a wall ")
    assert engine.get(image_id).caption == "a red bicycle leaning on a wall"
    assert engine.get(image_id).caption_edited
    top = engine.search("bicycle", k=1, alpha=1.0).results[0]
    assert top.record.id == image_id and top.record.caption == "a red bicycle leaning on a wall"
    with pytest.raises(InvalidQuery):
        engine.set_caption(image_id, "   ")


def test_remove_deletes_vectors_and_stored_file(engine):
    report = engine.index_bytes([("a.jpg", jpeg(6)), ("b.png", png(7))])
    gone = engine.get(report.added[0].id)
    engine.remove(gone.id[:12])  # a unique prefix, as `list` prints it
    assert not Path(gone.path).exists()
    assert gone.id not in engine.store.ids(CAPTION) | engine.store.ids(VISUAL)
    assert engine.count() == 1
    assert all(r.record.id != gone.id for r in engine.search("anything", k=5).results)
    with pytest.raises(NotFound):
        engine.remove(gone.id)


def test_similar_finds_the_image_itself_first_with_full_relevance(engine):
    engine.index_paths(FEW)
    target = engine.list()[2]
    by_id = engine.similar(target.id, k=3).results
    assert by_id[0].record.id == target.id and round(by_id[0].relevance, 2) == 1.00
    by_bytes = engine.similar(Path(target.path).read_bytes(), k=3).results
    assert by_bytes[0].record.id == target.id and round(by_bytes[0].relevance, 2) == 1.00


def test_a_batch_with_bad_files_indexes_the_good_ones_and_keeps_nothing_of_the_bad(engine):
    engine.index_paths(FEW[:1])
    report = engine.index_bytes(
        [("good.png", png(8)), ("empty.jpg", b""), ("notes.jpg", b"just text"), ("cut.jpg", jpeg(9)[:100])]
    )
    assert [a.path for a in report.added] == ["good.png"]
    assert {f.path for f in report.failed} == {"empty.jpg", "notes.jpg", "cut.jpg"}
    assert all(f.error for f in report.failed) and report.count == 2
    before = snapshot(engine)
    report = engine.index_bytes([("bad.gif", b"GIF89a broken")])
    assert report.failed and snapshot(engine) == before


@pytest.mark.parametrize(
    "query,k,alpha,says",
    [("", 5, 0.5, "is empty"), ("   \n\t ", 5, 0.5, "is empty"), ("x" * 5000, 5, 0.5, "5,000 characters"),
     ("ok", 0, 0.5, "from 1 to 100"), ("ok", 10_000, 0.5, "from 1 to 100"), ("ok", 2.5, 0.5, "whole number"),
     ("ok", 5, 1.5, "from 0 to 1"), ("ok", 5, float("nan"), "from 0 to 1")],
)
def test_absurd_queries_get_a_message(engine, query, k, alpha, says):
    with pytest.raises(InvalidQuery, match=says):
        engine.search(query, k=k, alpha=alpha)


def test_empty_index_answers_with_no_results(engine):
    assert engine.search("a cat", k=5).results == []


def test_model_change_opens_new_collections_and_rebuilds_from_stored_originals(engine, settings, shared_models):
    engine.index_paths(FEW)
    engine.set_caption(engine.list()[0].id, "a hand written caption")
    captions = {r.id: r.caption for r in engine.list()}
    # Same captioner, CLIP's text tower as caption encoder: a different identity, so new collections.
    other = SearchEngine(settings.__class__.from_env(text_model="clip"), captioner=shared_models["captioner"],
                         clip=shared_models["clip"])
    assert other.store.names[CAPTION] != engine.store.names[CAPTION]
    assert other.count() == 0
    with pytest.raises(IndexOutOfDate, match="reindex"):
        other.search("anything")
    assert other.reconcile() == len(FEW)
    assert other.count() == len(FEW)
    assert {r.id: r.caption for r in other.list()} == captions  # nothing re-captioned, the edit kept
    assert other.search("a hand written caption", k=1, alpha=1.0).results[0].record.caption == "a hand written caption"
    assert engine.count() == len(FEW)  # the first model's collection is untouched


def test_reconcile_repairs_missing_vectors_and_drops_orphans(engine):
    engine.index_paths(FEW)
    victim = engine.list()[0]
    engine.store.delete([victim.id])  # as if killed between catalog write and vector writes
    orphan = "f" * 64  # a vector whose image is not in the catalog
    engine.store.upsert_visual([orphan], engine.clip.encode_images([Image.new("RGB", (8, 8))]))
    assert engine.reconcile() == 1
    assert orphan not in engine.store.ids(VISUAL)
    assert victim.id in engine.store.ids(CAPTION) and victim.id in engine.store.ids(VISUAL)
    assert engine.count() == len(FEW)

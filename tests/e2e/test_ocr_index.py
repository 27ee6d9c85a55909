"""The words in the picture through the real engine: read at indexing by the real OCR models (tiny random
BLIP/CLIP beside them), corrected by a person, kept through `reindex --ocr`, off when VS_OCR=off, read
later for images indexed without it, and a page of 10,000 words kept in part."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest

from printed_words import page_of_words, sign
from visual_search import InvalidQuery, SearchEngine
from visual_search.errors import NotAllowed, NotFound
from visual_search.cli import main
from visual_search.stages.ocr import MAX_OCR_CHARS, shared_reader

A, B = "visitor-a-0123456789abcdef", "visitor-b-0123456789abcdef"


def jpeg_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


@pytest.fixture
def ocr_engine(settings, shared_models) -> SearchEngine:
    return SearchEngine(replace(settings, ocr="on"), **shared_models)


def bakery(engine: SearchEngine) -> str:
    report = engine.index_bytes([("shop.jpg", jpeg_bytes(sign("BAKERY")))])
    assert not report.failed
    return report.added[0].id


def test_a_sign_is_read_at_indexing_and_kept_with_the_record(ocr_engine):
    record = ocr_engine.get(bakery(ocr_engine))
    assert "BAKERY" in record.ocr_text.upper().split()
    assert record.ocr_model == shared_reader().identity and not record.ocr_edited
    # the catalog is the truth: a fresh engine on the same data dir reads the same record
    again = SearchEngine(ocr_engine.settings, captioner=ocr_engine.captioner, clip=ocr_engine.clip,
                         text_encoder=ocr_engine.text_encoder)
    assert again.get(record.id).ocr_text == record.ocr_text


def test_a_persons_text_is_kept_through_reindex_ocr(ocr_engine, monkeypatch):
    image_id = bakery(ocr_engine)
    ocr_engine.set_ocr_text(image_id, "  Bakery   Müller\nopen 7-18 \x07")
    record = ocr_engine.get(image_id)
    assert record.ocr_text == "Bakery Müller\nopen 7-18" and record.ocr_edited
    monkeypatch.setenv("VS_DATA_DIR", str(ocr_engine.settings.data_dir))
    monkeypatch.setenv("VS_OCR", "on")
    # an older OCR read every picture: reindex --ocr reads them again, but never a person's text
    stored = ocr_engine.catalog
    stored.put_record(replace(stored.get(image_id), ocr_model="rapidocr-1.0/older@960"))
    assert main(["reindex", "--ocr"]) == 0
    kept = SearchEngine(ocr_engine.settings).get(image_id)
    assert kept.ocr_text == "Bakery Müller\nopen 7-18" and kept.ocr_edited


def test_reindex_ocr_reads_images_indexed_with_ocr_off(settings, shared_models, monkeypatch, capsys):
    off = SearchEngine(settings, **shared_models)  # the tests' settings: VS_OCR=off
    image_id = bakery(off)
    record = off.get(image_id)
    assert record.ocr_text == "" and record.ocr_model == ""
    monkeypatch.setenv("VS_OCR", "on")
    assert main(["reindex"]) == 0  # plain reindex leaves the OCR alone
    assert SearchEngine(settings, **shared_models).get(image_id).ocr_model == ""
    assert main(["reindex", "--ocr"]) == 0
    assert "1 images had the text in the picture read again" in capsys.readouterr().out
    read = SearchEngine(replace(settings, ocr="on"), **shared_models)
    assert "BAKERY" in read.get(image_id).ocr_text.upper().split()
    assert read.read_text_again() == 0  # nothing left to read
    # and the word index follows the catalog: the word is searchable
    assert image_id in {r.record.id for r in read.search("bakery", k=5).results}


def test_ocr_off_never_reads(settings, shared_models):
    engine = SearchEngine(replace(settings, ocr="off"), **shared_models)
    record = engine.get(bakery(engine))
    assert (record.ocr_text, record.ocr_model, record.ocr_edited) == ("", "", False)
    with pytest.raises(Exception, match="OCR is off"):
        engine.read_text_again()


def test_a_page_of_10000_words_is_indexed_with_what_can_be_read(ocr_engine):
    """At the OCR's size its 11 px print is too small to read: the page is indexed, with no text (a page
    the OCR can read past MAX_OCR_CHARS is kept in part: tests/unit/test_ocr.py)."""
    report = ocr_engine.index_bytes([("page.png", _png(page_of_words(10_000)))])
    assert not report.failed and len(report.added) == 1
    assert len(ocr_engine.get(report.added[0].id).ocr_text) <= MAX_OCR_CHARS


def test_the_text_edit_follows_the_caption_edits_rules(ocr_engine, capsys, monkeypatch):
    image_id = bakery(ocr_engine)
    with pytest.raises(InvalidQuery, match="limit"):
        ocr_engine.set_ocr_text(image_id, "word " * MAX_OCR_CHARS)
    assert ocr_engine.set_ocr_text(image_id, "").ocr_text == ""  # clearing it is allowed
    monkeypatch.setenv("VS_DATA_DIR", str(ocr_engine.settings.data_dir))
    assert main(["text", image_id[:12], "Fresh bread daily"]) == 0
    assert "Fresh bread daily" in capsys.readouterr().out
    assert ocr_engine.get(image_id).ocr_text == "Fresh bread daily"


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_in_a_public_demo_a_visitor_corrects_only_their_own_pictures(settings, shared_models, tmp_path):
    engine = SearchEngine(replace(settings, public_demo=True), **shared_models)
    shared = engine.index_bytes([("shop.jpg", jpeg_bytes(sign("BAKERY")))]).added[0].id
    upload = tmp_path / "mine.jpg"
    upload.write_bytes(jpeg_bytes(sign("EXIT 12")))
    mine = engine.index_files([("mine.jpg", upload)], visitor=A).added[0].id
    with pytest.raises(NotAllowed, match="read-only"):
        engine.set_ocr_text(shared, "vandalised", visitor=A)
    with pytest.raises(NotFound):
        engine.set_ocr_text(mine, "vandalised", visitor=B)
    assert engine.get(shared).ocr_text == "" and engine.get(mine).ocr_text == ""
    assert engine.set_ocr_text(mine, "Exit 12", visitor=A).ocr_text == "Exit 12"
    assert engine.set_ocr_text(shared, "Bakery", visitor=B, admin=True).ocr_edited

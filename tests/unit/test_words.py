"""The word channel's index alone (stages/words.py): what a person types against the words an image
carries, without any model."""

from __future__ import annotations

import sqlite3

import pytest

from visual_search.records import ImageRecord
from visual_search.stages.words import WEIGHTS, WordIndex, idf, parse, token_spans, tokens


def record(i: int, **fields) -> ImageRecord:
    base = dict(id=f"{i:064x}", path=f"/x/{i}.jpg", filename=f"IMG_{i:04d}.jpg", caption="a photo",
                width=10, height=10, added_at="2026-01-01T00:00:00+00:00")
    return ImageRecord(**{**base, **fields})


@pytest.fixture
def index(tmp_path) -> WordIndex:
    return WordIndex(tmp_path / "words.sqlite")


def test_file_names_split_where_people_see_words():
    assert tokens("IMG_2041BlackCat-at.night.jpg") == ["IMG", "2041", "Black", "Cat", "at", "night", "jpg"]
    assert tokens("HDRPhoto") == ["HDR", "Photo"]
    text = "black_cat at night.jpg"
    assert [text[a:b] for a, b in token_spans(text)] == ["black", "cat", "at", "night", "jpg"]


def test_queries_drop_stop_words_and_keep_quoted_phrases():
    terms = parse('a photo of the "Central Station" at night')
    assert terms.words == ("night",) and terms.phrases == (("central", "station"),)
    assert parse("a the of").empty and parse('"" "').empty  # nothing to look up: meaning alone
    assert parse('an "unclosed quote').words == ("unclosed", "quote")


def test_a_word_printed_in_the_picture_finds_it_and_says_where(index):
    index.put([record(1, ocr_text="FRESH BREAD\nBAKERY"), record(2, caption="a bakery window with bread"),
               record(3, caption="a dog")])
    found = index.lookup("bakery")
    ranked = found.ranked()
    # the caption's words are the caption channel's (its meaning): not counted here
    assert [i for i, _ in ranked] == [record(1).id] and ranked[0][1] == pytest.approx(WEIGHTS["text"])
    (m,) = found.matched(record(1, ocr_text="FRESH BREAD\nBAKERY"))
    assert (m.label, [m.text[a:b] for a, b in m.spans]) == ("text in picture", ["BAKERY"])


def test_stems_and_accents_match_as_people_expect(index):
    index.put([record(1, filename="dogs_in_the_park.jpg"), record(2, place="Bogotá, Bogota D.C., Colombia")])
    assert set(index.lookup("dog park").scores) == {record(1).id}
    assert set(index.lookup("bogota").scores) == {record(2).id}


def test_rare_words_count_more_than_common_ones(index):
    index.put([record(i, filename=f"beach_{i}.jpg") for i in range(1, 9)] + [record(9, filename="beach_sunset.jpg")])
    found = index.lookup("beach sunset")
    best, score = found.ranked()[0]
    assert best == record(9).id and score == pytest.approx(1.0)
    # an image with only the common word gets idf(beach) / (idf(beach) + idf(sunset)) of the weight
    expected = idf(9, 9) / (idf(9, 9) + idf(1, 9))
    assert found.scores[record(1).id] == pytest.approx(expected) and expected < 0.2


def test_a_quoted_phrase_must_appear_in_order(index):
    index.put([record(1, ocr_text="EXIT 12 Central Station"), record(2, ocr_text="Station Central"),
               record(3, title="The central station at dawn"), record(4, caption="the central station at noon")])
    found = index.lookup('"central station"')
    assert found.required == {record(1).id, record(3).id, record(4).id}  # a caption holding it counts as held
    assert set(found.scores) == {record(1).id, record(3).id}  # ... and scores nothing: its meaning is scored
    assert index.lookup('"station exit"').required == set()


def test_visibility_counts_and_finds_only_what_a_visitor_may_see(index):
    index.put([record(1, filename="secret_plan.jpg", owner="alice"), record(2, filename="plan_b.jpg")])
    assert set(index.lookup("plan", owners=("", "bob")).scores) == {record(2).id}
    assert set(index.lookup("plan", owners=("", "alice")).scores) == {record(1).id, record(2).id}


def test_edits_and_deletes_reach_the_index(index):
    index.put([record(1, caption="a cat")])
    before = index.digests()[record(1).id]
    assert index.lookup("cat").scores == {}  # a caption is highlighted, not counted
    index.put([record(1, caption="a cat", tags=("tabby",))])
    assert index.digests()[record(1).id] != before and set(index.lookup("tabby").scores) == {record(1).id}
    index.delete([record(1).id])
    assert index.lookup("tabby").scores == {} and index.count() == 0


def test_hostile_text_is_indexed_and_looked_up_without_harm(index):
    flood = " ".join("".join(chr(97 + (i // 26 ** k) % 26) for k in range(3)) + "q" for i in range(10_000))
    flood = "zebra " + flood + " okapi"
    index.put([record(1, ocr_text=flood), record(2, filename="x'); DROP TABLE words; --.jpg"),
               record(3, ocr_text="\x00\udcff bad \u202e bidi"), record(4, title="NEAR OR AND NOT * ^ :")])
    assert set(index.lookup("zebra").scores) == {record(1).id}
    assert index.lookup("okapi").scores == {}  # past MAX_FIELD_CHARS: a field is indexed up to a cap
    assert set(index.lookup("drop table").scores) == {record(2).id}
    assert set(index.lookup('NEAR OR "AND NOT" *').scores) == {record(4).id}  # FTS5 syntax is only words here
    assert index.lookup("x" * 100_000) is not None and index.count() == 4


def test_a_file_of_another_layout_is_rebuilt_not_trusted(tmp_path):
    path = tmp_path / "words.sqlite"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE about(key TEXT PRIMARY KEY, value TEXT); INSERT INTO about VALUES ('schema', '0');"
                     "CREATE TABLE images(x);")
    db.close()
    index = WordIndex(path)
    assert index.count() == 0  # emptied: the reconciler fills it from the catalog
    index.put([record(1, filename="kite.jpg")])
    assert set(index.lookup("kite").scores) == {record(1).id}

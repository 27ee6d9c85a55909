"""What the files say, through the real engine and CLI: indexed with each photo, newest first and the
taken filters by the photo's own time, lying files indexed with a note, old records backfilled from
the stored originals without loading a model, and `--json` carrying taken_at, place and camera."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from photo_files import LISBON, exif, iptc, long, photo, raw_exif, rationals, text, xmp
from visual_search import SearchEngine
from visual_search.errors import InvalidQuery
from visual_search.cli import main
from visual_search.library.metadata import METADATA_VERSION
from visual_search.search.filters import SearchFilter
from visual_search.stages.store import CAPTION, VISUAL

FILES = {
    "tram.jpg": photo(1, exif_block=exif(taken="2019:07:01 18:30:00", offset="+01:00", position=LISBON,
                                         make=b"Canon", model=b"Canon EOS R5"),
                      xmp_packet=xmp(title="Tram 28", description="The yellow tram up to the castle",
                                     subjects=("Tram", "Alfama"))),
    "spring.jpg": photo(2, exif_block=exif(taken="2024:03:10 09:00:00"),
                        iptc_segment=iptc((5, b"Cherry blossom"), (25, b"blossom"))),
    "screenshot.png": photo(3, fmt="PNG"),  # says nothing: counts from when it was added (today)
}
LIES = {
    "year0.jpg": photo(10, exif_block=exif(taken="0000:01:01 12:00:00", model=b"X100V")),
    "year9999.jpg": photo(11, exif_block=exif(taken="9999:12:31 23:59:59", model=b"X100V")),
    "gps200.jpg": photo(12, exif_block=exif(model=b"X100V", gps_ifd={
        1: b"N", 2: ((200, 1), (0, 1), (0, 1)), 3: b"E", 4: ((10, 1), (0, 1), (0, 1))})),
    "xmp1mb.webp": photo(13, fmt="WEBP", exif_block=exif(model=b"X100V"), xmp_packet=xmp(title="x", padding=1 << 20)),
    "latin1.jpg": photo(14, exif_block=exif(model=b"X100V", description=b"caf\xe9 \xff", artist=b"\xff\xfe\xc3")),
    "types.jpg": photo(15, exif_block=raw_exif({0x010F: long(7), 0x0110: text("X100V")},
                                               {0x9003: rationals((2019, 1), (7, 1), (1, 1))})),
}
METADATA = ("taken_at", "place", "latitude", "longitude", "camera", "title", "description", "keywords",
            "metadata_notes")


def by_name(engine: SearchEngine) -> dict:
    return {r.filename: r for r in engine.list()}


def names(response) -> list[str]:
    return [r.record.filename for r in response.results]


def test_indexing_reads_the_date_place_camera_and_the_owners_words(engine):
    engine.index_bytes(list(FILES.items()))
    got = by_name(engine)
    tram = got["tram.jpg"]
    assert tram.taken_at == "2019-07-01T18:30:00+01:00" and "Lisbon" in tram.place and tram.camera == "Canon EOS R5"
    assert (tram.title, tram.keywords) == ("Tram 28", ("Tram", "Alfama"))
    assert tram.tags[:2] == ("tram", "alfama") and not tram.tags_edited  # keywords first, the model's after
    assert got["spring.jpg"].title == "Cherry blossom" and "blossom" in got["spring.jpg"].tags
    assert got["screenshot.png"].taken_at == "" and all(r.metadata_version == METADATA_VERSION for r in got.values())


@pytest.mark.parametrize("in_memory", [False, True])
def test_newest_first_and_the_taken_filters_use_the_photos_time_else_when_it_was_added(engine, in_memory):
    engine.index_bytes(list(FILES.items()))
    if in_memory:
        engine.load_facets()  # filters decided from the in-memory table, not a Chroma `where`
    newest = engine.search("a photo", k=10, sort="newest", min_relevance=0)
    assert names(newest) == ["screenshot.png", "spring.jpg", "tram.jpg"]  # all three were added today

    def found(**clauses: str) -> set[str]:
        return set(names(engine.search("a photo", k=10, min_relevance=0, filter=SearchFilter.parse(**clauses))))

    assert found(taken_before="2020-01-01") == {"tram.jpg"}
    assert found(taken_after="2024-01-01") == {"spring.jpg", "screenshot.png"}
    assert found(taken_after="2024-01-01", taken_before="2025-01-01") == {"spring.jpg"}
    assert found(taken_after="2019-07-01", taken_before="2019-07-02") == {"tram.jpg"}  # its own day, 18:30 +01:00
    today = datetime.now(timezone.utc).date().isoformat()
    assert found(after=today) == set(FILES)  # "added after" still means added


def test_a_place_is_found_by_its_name(engine):
    engine.index_bytes(list(FILES.items()))
    assert names(engine.search("Lisbon", k=3, min_relevance=0))[0] == "tram.jpg"


def test_files_that_lie_are_indexed_with_what_can_be_trusted_and_a_note(engine):
    report = engine.index_bytes(list(LIES.items()))
    assert not report.failed and len(report.added) == len(LIES)
    got = by_name(engine)
    for name in LIES:
        assert got[name].metadata_notes, name
        assert got[name].camera == "X100V", name
    assert got["year9999.jpg"].taken_at == "" and "out of range" in got["year9999.jpg"].metadata_notes[0]
    assert got["gps200.jpg"].latitude is None and "latitude 200" in got["gps200.jpg"].metadata_notes[0]
    assert got["xmp1mb.webp"].title == "" and "1.0 MB" in got["xmp1mb.webp"].metadata_notes[0]
    assert got["latin1.jpg"].description == "café ÿ"
    assert got["types.jpg"].taken_at == "" and "not text (tuple)" in " ".join(got["types.jpg"].metadata_notes)


def _forget_metadata(engine: SearchEngine, version: int = 0) -> None:
    """Records as an older version wrote them: no metadata fields, and an index without `taken_ts`."""
    for record in engine.list():
        old = replace(record, taken_at="", place="", latitude=None, longitude=None, camera="", title="",
                      description="", keywords=(), metadata_notes=(), metadata_version=version,
                      tags=tuple(t for t in record.tags if t not in {k.lower() for k in record.keywords}))
        engine.catalog.put_record(old)
        engine.store.update_metadata([old])
    for kind in (CAPTION, VISUAL):  # chromadb removes a key updated to None
        engine.store._cols[kind].update(ids=[r.id for r in engine.list()],
                                        metadatas=[{"taken_ts": None} for _ in engine.list()])


def test_old_records_are_filled_from_the_stored_originals_without_loading_a_model(settings, shared_models):
    first = SearchEngine(settings, **shared_models)
    first.index_bytes(list(FILES.items()))
    before = by_name(first)
    _forget_metadata(first)
    assert by_name(first)["tram.jpg"].place == ""

    engine = SearchEngine(settings)  # loads its models only when something needs one
    engine.reconcile()
    assert not any(engine.models.loaded(m) for m in ("captioner", "clip", "text_encoder"))
    after = by_name(engine)
    for name, record in before.items():
        assert {f: getattr(after[name], f) for f in METADATA} == {f: getattr(record, f) for f in METADATA}
        assert after[name].caption == record.caption and after[name].tags == record.tags
        assert after[name].metadata_version == METADATA_VERSION
    assert set(engine.store.stored_metadata(VISUAL)[before["tram.jpg"].id]) >= {"taken_ts"}
    engine.load_facets()
    assert {r.record.filename for r in engine.search("a photo", k=10, filter=SearchFilter.parse(
        taken_before="2020-01-01")).results} == {"tram.jpg"}
    assert names(engine.search("Lisbon", k=3))[0] == "tram.jpg"  # the word index follows


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_cli_reindex_metadata_reads_every_file_again_and_json_carries_the_fields(settings, tmp_path, capsys):
    paths = []
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    assert run(capsys, "index", *paths)[0] == 0
    engine = SearchEngine(settings)
    _forget_metadata(engine, version=METADATA_VERSION)  # current version: only an explicit re-read fills them
    code, out = run(capsys, "reindex", "--metadata")
    assert code == 0 and "metadata read again" in out
    code, out = run(capsys, "search", "a photo", "--json", "--sort", "newest", "--taken-before", "2025-01-01")
    results = json.loads(out)["results"]
    assert [r["filename"] for r in results] == ["spring.jpg", "tram.jpg"]
    assert results[1]["taken_at"] == "2019-07-01T18:30:00+01:00" and "Lisbon" in results[1]["place"]
    assert results[1]["camera"] == "Canon EOS R5" and results[0]["camera"] == ""
    code, out = run(capsys, "search", "a photo", "--taken-after", "2019-08-01", "--taken-before", "2019-07-01")
    assert code == 2


def test_a_persons_title_and_description_stay_when_the_files_are_read_again(engine):
    engine.index_bytes(list(FILES.items()))
    tram = by_name(engine)["tram.jpg"]
    edited = engine.set_details(tram.id[:12], title="  Grandma's\ttram ride ", description=None)
    assert (edited.title, edited.description) == ("Grandma's tram ride", tram.description) and edited.details_edited
    engine.reconcile(metadata=True)
    again = engine.get(tram.id)
    assert again.title == "Grandma's tram ride" and again.place == tram.place
    assert names(engine.search("grandma", k=3))[0] == "tram.jpg"  # searchable by its words at once
    with pytest.raises(InvalidQuery, match="limit is 200"):
        engine.set_details(tram.id, title="x" * 201)

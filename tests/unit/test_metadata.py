"""library/metadata.py: what a photo's file says, read from bytes written here (tests/photo_files.py);
a file that lies is read for what can be trusted, with a note per thing left out, never a crash."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from photo_files import (LISBON, compressed_xmp_chunk, exif, iptc, long, photo, png_with_late_chunks, raw_exif,
                         rationals, text, xmp)
from visual_search.library.embedded_text import MAX_XMP_BYTES
from visual_search.library.metadata import (MAX_KEYWORDS, MAX_NOTES, MAX_TITLE_CHARS, METADATA_VERSION, apply,
                                            read_metadata, with_keywords)
from visual_search.errors import InvalidQuery
from visual_search.records import ImageRecord
from visual_search.search.filters import SearchFilter, taken_ts
from visual_search.times import timestamp

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)


def read(data: bytes):
    return read_metadata(data, now=NOW)


def test_a_camera_photo_gives_its_time_with_offset_place_and_camera():
    got = read(photo(exif_block=exif(taken="2019:07:01 18:30:00", offset="+01:00", position=LISBON,
                                     make=b"Canon", model=b"Canon EOS R5")))
    assert got.taken_at == "2019-07-01T18:30:00+01:00"
    assert got.latitude == pytest.approx(38.72, abs=1e-4) and got.longitude == pytest.approx(-9.14, abs=1e-4)
    assert "Lisbon" in got.place and got.place.endswith("Portugal")
    assert got.camera == "Canon EOS R5" and got.notes == () and got.version == METADATA_VERSION


@pytest.mark.parametrize("make,model,camera", [
    (b"NIKON CORPORATION", b"NIKON D750", "NIKON D750"),
    (b"OLYMPUS IMAGING CORP.", b"E-M10", "OLYMPUS E-M10"),
    (b"EASTMAN KODAK COMPANY", b"KODAK EASYSHARE C713", "KODAK EASYSHARE C713"),
    (b"Apple", b"iPhone 12", "Apple iPhone 12"),
    (b"  FUJIFILM \x00", b"X100V\x00\x00", "FUJIFILM X100V"),
    (None, b"Pixel 8", "Pixel 8"),
])
def test_camera_is_make_and_model_with_the_make_said_once(make, model, camera):
    assert read(photo(exif_block=exif(make=make, model=model))).camera == camera


def test_without_an_offset_the_time_stays_the_cameras_own_and_later_dates_stand_in():
    assert read(photo(exif_block=exif(taken="2019:07:01 18:30:00"))).taken_at == "2019-07-01T18:30:00"
    assert read(photo(exif_block=exif(digitized="2018:05:05 10:00:00"))).taken_at == "2018-05-05T10:00:00"
    assert read(photo(exif_block=exif(modified="2017-03-04 09:08:07"))).taken_at == "2017-03-04T09:08:07"
    unknown = read(photo(exif_block=exif(taken="0000:00:00 00:00:00")))
    assert unknown.taken_at == "" and unknown.notes == ()  # the camera's "I do not know" is no lie


def test_iptc_title_caption_and_keywords_in_either_encoding():
    got = read(photo(iptc_segment=iptc((5, "Straßenbahn".encode("cp1252")), (120, "Tram 28 in Alfama".encode()),
                                       (25, b"tram"), (25, "Lisboa, cidade".encode()))))
    assert (got.title, got.description) == ("Straßenbahn", "Tram 28 in Alfama")
    assert got.keywords == ("tram", "Lisboa, cidade")
    assert got.notes == ("IPTC text is not valid UTF-8: read as Windows-1252",)
    utf8 = read(photo(iptc_segment=iptc((5, "Straßenbahn".encode()))))
    assert utf8.title == "Straßenbahn" and utf8.notes == ()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_xmp_title_description_and_keywords_in_every_format(fmt):
    packet = xmp(title="Tram 28", description="Yellow tram going uphill", subjects=("Tram", "yellow"),
                 hierarchical=("Places|Portugal|Alfama", "tram"))
    got = read(photo(fmt=fmt, xmp_packet=packet, exif_block=exif(taken="2019:07:01 18:30:00")))
    assert got.title == "Tram 28" and got.description == "Yellow tram going uphill"  # x-default, not German
    assert got.keywords == ("Tram", "yellow", "Alfama") and got.taken_at == "2019-07-01T18:30:00"


def test_xmp_outranks_iptc_and_the_headline_and_exif_description_stand_in():
    both = read(photo(xmp_packet=xmp(title="From XMP"), iptc_segment=iptc((5, b"From IPTC"), (25, b"iptc word"))))
    assert both.title == "From XMP" and both.keywords == ("iptc word",)
    assert read(photo(xmp_packet=xmp(headline="A headline"))).title == "A headline"
    described = read(photo(exif_block=exif(description="Grandma's garden".encode())))
    assert described.description == "Grandma's garden"
    assert read(photo(exif_block=exif(description=b"OLYMPUS DIGITAL CAMERA         "))).description == ""


def test_keywords_become_tags_a_person_set_before_the_models_and_are_replaced_when_read_again():
    assert with_keywords(("street", "tram"), (" Tram ", "Old\x07Town")) == ("tram", "old town", "street")
    record = ImageRecord("a", "/x.jpg", "x.jpg", "a tram", 64, 48, "2026-12-05T00:00:00+00:00", tags=("street",))
    first = apply(record, read(photo(xmp_packet=xmp(subjects=("Tram", "Lisbon")))))
    assert first.tags == ("tram", "lisbon", "street") and first.keywords == ("Tram", "Lisbon")
    again = apply(first, read(photo(xmp_packet=xmp(subjects=("Porto",)))))
    assert again.tags == ("porto", "street")  # the file's old keywords go, the model's tag stays
    edited = ImageRecord("b", "/y.jpg", "y.jpg", "c", 64, 48, "2026-12-05T00:00:00+00:00", tags=("mine",),
                         tags_edited=True)
    assert apply(edited, read(photo(xmp_packet=xmp(subjects=("Tram",))))).tags == ("mine",)


def test_a_persons_title_and_description_are_kept_when_the_file_is_read_again():
    mine = ImageRecord("c", "/z.jpg", "z.jpg", "c", 64, 48, "2026-12-05T00:00:00+00:00", title="Mine",
                       description="", details_edited=True)
    got = apply(mine, read(photo(xmp_packet=xmp(title="The file's", description="The file's words"),
                                 exif_block=exif(model=b"X100V"))))
    assert (got.title, got.description, got.camera) == ("Mine", "", "X100V")


def test_a_png_says_what_follows_its_pixels_too():
    late = png_with_late_chunks((b"eXIf", exif(taken="2019:07:01 18:30:00")[6:]),
                                compressed_xmp_chunk(xmp(title="late")))
    got = read(late)
    assert (got.taken_at, got.title, got.notes) == ("2019-07-01T18:30:00", "late", ())


# ---- files that lie ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("taken,note", [
    ("0000:01:01 12:00:00", "is not a date"),
    ("9999:12:31 23:59:59", "out of range"),
    ("1825:12:31 23:59:59", "out of range"),
    ("2026:12:08 10:00:00", "out of range"),  # three days after NOW
    ("2019:02:30 10:00:00", "is not a date"),
    ("yesterday", "is not a date"),
])
def test_an_impossible_date_is_left_out_with_a_note_and_the_rest_kept(taken, note):
    got = read(photo(exif_block=exif(taken=taken, model=b"X100V", position=LISBON)))
    assert got.taken_at == "" and got.camera == "X100V" and "Lisbon" in got.place
    assert len(got.notes) == 1 and note in got.notes[0] and "DateTimeOriginal" in got.notes[0]


def test_a_lying_original_date_gives_way_to_the_digitized_one():
    got = read(photo(exif_block=exif(taken="9999:12:31 23:59:59", digitized="2018:05:05 10:00:00")))
    assert got.taken_at == "2018-05-05T10:00:00" and "out of range" in got.notes[0]
    bad_offset = read(photo(exif_block=exif(taken="2019:07:01 18:30:00", offset="+25:00")))
    assert bad_offset.taken_at == "2019-07-01T18:30:00" and "not an offset" in bad_offset.notes[0]


@pytest.mark.parametrize("gps,note", [
    ({1: b"N", 2: ((200, 1), (0, 1), (0, 1)), 3: b"E", 4: ((10, 1), (0, 1), (0, 1))}, "latitude 200 is out of range"),
    ({1: b"N", 2: ((38, 1), (0, 1), (0, 1)), 3: b"E", 4: ((181, 1), (0, 1), (0, 1))}, "longitude 181 is out of range"),
    ({2: ((38, 1), (0, 1), (0, 1)), 3: b"E", 4: ((9, 1), (0, 1), (0, 1))}, "no N/S reference"),
    ({1: b"N", 2: ((38, 1), (0, 0), (0, 1)), 3: b"W", 4: ((9, 1), (0, 1), (0, 1))}, "latitude is not a number"),
    ({1: b"N", 2: ((0, 1), (0, 1), (0, 1)), 3: b"E", 4: ((0, 1), (0, 1), (0, 1))}, "0, 0"),
])
def test_a_position_that_cannot_be_is_left_out_with_a_note(gps, note):
    got = read(photo(exif_block=exif(taken="2019:07:01 18:30:00", gps_ifd=gps)))
    assert (got.latitude, got.longitude, got.place) == (None, None, "")
    assert got.taken_at == "2019-07-01T18:30:00" and any(note in n for n in got.notes)


def test_far_from_any_town_there_is_a_position_but_no_place():
    got = read(photo(exif_block=exif(position=(-48.0, -123.0))))  # Point Nemo, the South Pacific
    assert got.latitude == pytest.approx(-48.0) and got.place == "" and got.notes == ()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_a_megabyte_of_xmp_is_not_parsed(fmt):
    got = read(photo(fmt=fmt, xmp_packet=xmp(title="hidden", padding=1 << 20), exif_block=exif(model=b"X100V")))
    assert got.title == "" and got.camera == "X100V"
    assert got.notes == (f"XMP of 1.0 MB not read (over {MAX_XMP_BYTES // 1024} KB)",)


def test_a_compressed_xmp_bomb_is_inflated_no_further_than_the_cap():
    got = read(png_with_late_chunks(compressed_xmp_chunk(b" " * (64 << 20))))  # 64 MB of spaces in ~64 KB
    assert got.title == "" and len(got.notes) == 1 and "not read (over 256 KB)" in got.notes[0]


@pytest.mark.parametrize("packet,reason", [
    (b"<x:xmpmeta><unclosed>", "ParseError"),
    (b"<!DOCTYPE x [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;'>]><x>&b;</x>", "EntitiesForbidden"),
])
def test_broken_or_hostile_xmp_is_left_out(packet, reason):
    got = read(photo(fmt="WEBP", xmp_packet=packet, exif_block=exif(model=b"X100V")))
    assert got.camera == "X100V" and got.notes == (f"XMP unreadable ({reason}): left out",)


def test_invalid_utf8_is_read_as_latin1_with_a_note():
    got = read(photo(exif_block=exif(description=b"caf\xe9 \xff bad", artist=b"\xff\xfe\x00\xc3", model=b"X\xe9")))
    assert got.description == "café ÿ bad" and got.camera == "Xé"
    assert "EXIF ImageDescription is not UTF-8: read as Latin-1" in got.notes
    assert "EXIF Model is not UTF-8: read as Latin-1" in got.notes
    assert read(photo(exif_block=exif(description="Straße".encode()))).description == "Straße"  # UTF-8 stays


def test_wrong_types_in_exif_are_left_out_and_the_rest_kept():
    block = raw_exif({0x010F: long(12345), 0x0110: text("EOS 5D"), 0x010E: rationals((1, 2)), 0x0132: long(2019)},
                     {0x9003: rationals((2019, 1), (7, 1), (1, 1)), 0x9004: text("2017:01:01 10:00:00")},
                     {1: long(7), 2: text("north"), 3: text("W"), 4: rationals((9, 1), (8, 1), (24, 1))})
    got = read(photo(exif_block=block))
    assert got.taken_at == "2017-01-01T10:00:00" and got.camera == "EOS 5D" and got.latitude is None
    assert "EXIF DateTimeOriginal is not text (tuple): left out" in got.notes
    assert "EXIF Make is not text (int): left out" in got.notes
    assert any("latitude" in n for n in got.notes)


def test_long_text_is_cut_many_keywords_and_notes_are_capped_and_nothing_raises():
    got = read(photo(xmp_packet=xmp(title="t" * 1000, subjects=tuple(f"k{i}" for i in range(80)))))
    assert len(got.title) == MAX_TITLE_CHARS and f"title cut to {MAX_TITLE_CHARS} characters" in got.notes
    assert len(got.keywords) == MAX_KEYWORDS and "30 keywords beyond the first 50 left out" in got.notes
    assert read(b"not an image at all").notes == ("metadata unreadable (UnidentifiedImageError): left out",)
    assert read(photo()).fields()["metadata_version"] == METADATA_VERSION and len(read(photo()).notes) <= MAX_NOTES


# ---- the time a search sorts and filters by ---------------------------------------------------------------
def test_taken_ts_is_the_photos_own_clock_else_the_added_time():
    added = "2026-12-05T10:00:00+00:00"
    assert taken_ts("2019-07-01T18:30:00+01:00", added) == taken_ts("2019-07-01T18:30:00", added)
    assert taken_ts("2019-07-01T18:30:00", added) == timestamp("2019-07-01T18:30:00+00:00")
    assert taken_ts("", added) == timestamp(added)


def test_taken_filters_parse_as_dates_in_order():
    f = SearchFilter.parse(taken_after="2019-07-01", taken_before="2019-08-01")
    assert f.taken_after == datetime(2019, 7, 1, tzinfo=timezone.utc) and f.after is None
    with pytest.raises(InvalidQuery, match="'taken after' date must be earlier"):
        SearchFilter.parse(taken_after="2019-08-01", taken_before="2019-07-01")
    with pytest.raises(InvalidQuery, match="taken before"):
        SearchFilter.parse(taken_before="summer")

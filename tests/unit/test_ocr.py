"""stages/ocr.py with the real PP-OCRv6 models: words printed on busy photos are read, the text is bounded,
the console stays quiet, EXIF orientation is honoured, and VS_OCR chooses whether it runs at all."""

from __future__ import annotations

import io
import re
import threading

import pytest
from PIL import Image

from images import encode, picture
from printed_words import page_of_words, printed, sign
from test_intake_formats import _close, photo
from visual_search import ModelLoadError, Settings
from visual_search.library.intake import decode_at
from visual_search.library.ocr import read_fields
from visual_search.models import registry
from visual_search.stages import ocr
from visual_search.stages.ocr import TRUNCATED, RapidTextReader, bounded, shared_reader

GENERATED = 50  # photos, 6 words each


def words_in(text: str) -> set[str]:
    return {w.lower() for w in re.split(r"[^0-9A-Za-z]+", text) if w}


@pytest.fixture(scope="module")
def reader() -> RapidTextReader:
    return shared_reader()


@pytest.fixture(scope="module")
def generated(reader) -> list[tuple[list[str], str]]:
    """(words printed, text read) for each generated photo, read once for the module."""
    out = []
    for seed in range(GENERATED):
        image, words = printed(seed)
        out.append((words, reader.read(image)))
    return out


def test_at_least_90_percent_of_printed_words_are_read_exactly(generated):
    total = sum(len(words) for words, _ in generated)
    found = sum(w.lower() in words_in(text) for words, text in generated for w in words)
    assert len(generated) >= 50 and total >= 250
    assert found / total >= 0.90, f"{found}/{total} words read"


def test_a_photo_without_words_reads_nothing_and_prints_nothing(reader, capfd):
    image = printed(1, words=0)[0]
    assert reader.read(image) == ""
    assert reader.read(Image.new("RGB", (3, 3))) == ""
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # rapidocr's own log lines stay out of the user's console


def test_lines_come_in_reading_order(reader):
    image = Image.new("RGB", (900, 600), (255, 255, 255))
    from PIL import ImageDraw, ImageFont

    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 60)
    for y, word in ((60, "FIRST"), (260, "SECOND"), (460, "THIRD")):
        draw.text((100, y), word, font=font, fill=(0, 0, 0))
    assert reader.read(image).split("\n") == ["FIRST", "SECOND", "THIRD"]


def test_readers_on_several_threads_read_what_one_reads(reader):
    images = [sign(w) for w in ("BAKERY", "EXIT 12", "Central Station")]
    alone = [reader.read(im) for im in images]
    got: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, reader.read(images[i % 3]))) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(6)] == alone * 2
    assert "BAKERY" in alone[0] and "12" in alone[1]


def test_a_page_read_past_the_limit_is_cut_at_a_word_with_a_note():
    small = RapidTextReader(limit=400)
    text = small.read(page_of_words(400, size=(960, 300), px=16))
    assert text.endswith(TRUNCATED) and len(text) <= 400
    body = text[: -len(TRUNCATED)]
    assert len(words_in(body)) > 5 and not body.endswith(" ")


def test_bounded_keeps_lines_and_cuts_10000_words_at_a_whole_word():
    lines = [" ".join(["bakery"] * 10) for _ in range(1000)]  # 10,000 words
    text = bounded(lines, limit=4000)
    assert len(text) <= 4000 and text.endswith(TRUNCATED)
    assert set(text[: -len(TRUNCATED)].split()) == {"bakery"}
    assert bounded(["  Hello \t world ", "", "EXIT  12"]) == "Hello world\nEXIT 12"


def test_exif_orientation_is_honoured(reader):
    """A phone photo stored sideways with EXIF orientation 6 is read upright, from the original's bytes."""
    upright = sign("BAKERY")
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    upright.transpose(Image.Transpose.ROTATE_90).save(buf, format="JPEG", quality=92, exif=exif)
    decoded = decode_at(buf.getvalue(), 960)
    assert decoded.size == (960, 640) and decoded.mode == "RGB"
    fields = read_fields(reader, buf.getvalue())
    assert "BAKERY" in fields["ocr_text"].split() and fields["ocr_model"] == reader.identity


def test_decode_at_never_enlarges_and_shrinks_a_jpeg_by_draft():
    small = io.BytesIO()
    Image.new("RGB", (300, 200), (9, 9, 9)).save(small, format="PNG")
    assert decode_at(small.getvalue(), 960).size == (300, 200)
    big = io.BytesIO()
    Image.new("RGB", (4000, 3000), (9, 9, 9)).save(big, format="JPEG")
    assert decode_at(big.getvalue(), 960).size == (960, 720)


def test_identity_names_the_package_models_and_size(reader):
    assert re.fullmatch(r"rapidocr-\d+\.\d+\.\d+/ppocrv6-small@960-det736", reader.identity)


def test_vs_ocr_chooses_whether_the_reader_runs(monkeypatch):
    assert registry.text_reader(Settings(ocr="off")) is None
    assert registry.text_reader(Settings(ocr="auto")) is shared_reader()
    assert registry.text_reader(Settings(ocr="on")) is shared_reader()
    monkeypatch.setattr(ocr, "rapidocr_version", lambda: None)  # as when the package is not installed
    assert registry.text_reader(Settings(ocr="auto")) is None
    with pytest.raises(ModelLoadError, match="rapidocr"):
        registry.text_reader(Settings(ocr="on"))


def test_vs_ocr_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("VS_OCR", "OFF")
    assert Settings.from_env().ocr == "off"
    monkeypatch.delenv("VS_OCR")
    assert Settings.from_env().ocr == "auto"
    monkeypatch.setenv("VS_OCR", "sometimes")
    with pytest.raises(ValueError, match="VS_OCR"):
        Settings.from_env()


def test_a_failing_read_loses_nothing_but_the_text():
    class Broken:
        identity, side = "broken", 960

        def read(self, image):
            raise RuntimeError("onnxruntime fell over")

    photo = io.BytesIO()
    sign("BAKERY").save(photo, format="JPEG")
    assert read_fields(Broken(), photo.getvalue()) == {}
    assert read_fields(shared_reader(), b"GIF89a not really") == {}  # bytes that do not decode
    assert read_fields(None, b"anything") == {}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "AVIF", "HEIF"])
def test_the_ocrs_own_decode_is_upright_like_the_working_bitmap(fmt, orientation):
    """decode_at (the OCR's copy) and load_image (the models' and thumbnail's) agree on which way is up."""
    data = photo(fmt, orientation)
    copy = decode_at(data, 960)
    assert copy.size == (60, 30) and copy.mode == "RGB" and not copy.info
    px = copy.getpixel
    assert _close(px((10, 20)), (0, 0, 255)) and _close(px((50, 20)), (255, 0, 0)) and _close(px((30, 2)), (0, 255, 0))


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "I;16", "CMYK", "1"])
def test_the_ocrs_own_decode_makes_rgb_of_any_mode(mode):
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode == "I;16" else "PNG"
    image = picture((1200, 800), mode="RGB").convert(mode)
    copy = decode_at(encode(image, fmt), 960)
    assert copy.mode == "RGB" and copy.size == (960, 640)

"""Intake: formats identified by content, every mode normalised to RGB, bad input refused clearly."""

from __future__ import annotations

import hashlib

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from images import encode, jpeg, picture, png
from visual_search.errors import RejectedImage
from visual_search.library.intake import display_name, load_image, walk

MB = 1 << 20


def load(data: bytes, name: str = "x.jpg", max_bytes: int = 20 * MB, max_pixels: int = 40_000_000):
    return load_image(data, name, max_bytes, max_pixels)


@pytest.mark.parametrize(
    "fmt,kwargs,ext",
    [("JPEG", {}, ".jpg"), ("PNG", {}, ".png"), ("WEBP", {"lossless": True}, ".webp"), ("GIF", {}, ".gif"),
     ("BMP", {}, ".bmp"), ("TIFF", {}, ".tif")],
)
def test_every_accepted_format_decodes_to_rgb_whatever_the_name(fmt, kwargs, ext):
    data = encode(picture((40, 30)), fmt, **kwargs)
    img = load(data, name="misleading.txt")  # the extension is ignored; the content decides
    assert (img.format, img.ext) == (fmt, ext)
    assert img.image.mode == "RGB" and (img.width, img.height) == (40, 30)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "L", "1", "I;16"])
def test_modes_are_normalised_to_rgb(mode):
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode == "I;16" else "PNG"
    img = load(encode(picture((20, 10), mode="RGB").convert(mode), fmt))
    assert img.image.mode == "RGB" and img.image.size == (20, 10)


def test_transparency_is_flattened_onto_white():
    clear = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert load(encode(clear, "PNG")).image.getpixel((3, 3)) == (255, 255, 255)


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    arr = np.full((8, 8), 32768, dtype=np.uint16)  # mid grey in 16 bits
    data = encode(Image.fromarray(arr), "PNG")
    r, g, b = load(data).image.getpixel((0, 0))
    assert 120 <= r <= 135 and r == g == b


def test_exif_orientation_is_applied():
    img = picture((60, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    loaded = load(encode(img, "JPEG", exif=exif.tobytes()))
    assert (loaded.width, loaded.height) == (20, 60)


def test_gif_takes_the_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    r, g, b = load(buf.getvalue()).image.getpixel((5, 5))
    assert r > 200 and b < 50


def test_id_is_content_hash_and_name_does_not_matter():
    data = jpeg(1)
    assert load(data, "a.jpg").id == load(data, "b.png").id == hashlib.sha256(data).hexdigest() != load(jpeg(2)).id


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
            + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        (b"hello, this is just some text\n" * 3, "text file"),
        (b"<!DOCTYPE html><html><body>hi</body></html>", "HTML"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
        (b"\x00\x01\x02\x03garbage\xff" * 10, "not a known image format"),
        (jpeg(3)[:200], "corrupt or truncated"),
        (png(3)[:120], "corrupt or truncated"),
        (_png_header_only(100_000, 100_000), "megapixels"),
        (_png_header_only(1, 100_000), "too elongated"),
    ],
    ids=["empty", "text", "html", "pdf", "svg", "binary", "truncated-jpeg", "truncated-png", "bomb", "absurd"],
)
def test_bad_input_is_refused_with_a_message(data, message):
    with pytest.raises(RejectedImage, match=message):
        load(data)


def test_png_with_bad_crc_is_refused():
    data = bytearray(png(4))
    data[30] ^= 0xFF  # IHDR's checksum no longer matches
    with pytest.raises(RejectedImage, match="PNG file is corrupt or truncated"):
        load(bytes(data))


def test_size_and_pixel_limits_are_configurable():
    data = jpeg(5, size=(100, 100))
    with pytest.raises(RejectedImage, match="limit is 0 MB"):
        load(data, max_bytes=100)
    with pytest.raises(RejectedImage, match="megapixels"):
        load(data, max_pixels=5_000)


def test_display_name_strips_folders_and_control_characters():
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("a\x00b\nc.jpg") == "abc.jpg"
    assert display_name("C:\\Users\\x\\cat.png") == "cat.png"
    assert len(display_name("é" * 300 + ".jpg")) == 200


def test_walk_recurses_sorted_and_does_not_follow_links_outside(tmp_path):
    root = tmp_path / "photos"
    (root / "b").mkdir(parents=True)
    (root / "b" / "2.jpg").write_bytes(jpeg(1))
    (root / "1.jpg").write_bytes(jpeg(2))
    (root / ".hidden.jpg").write_bytes(jpeg(3))
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(jpeg(4))
    (root / "link.jpg").symlink_to(outside)
    walked = walk([root, tmp_path / "missing"])
    assert [p.name for p, _ in walked] == ["1.jpg", "link.jpg", "2.jpg", "missing"]  # files, then subfolders
    found = {p.name: problem for p, problem in walked}
    assert found["1.jpg"] is None and found["2.jpg"] is None
    assert "outside" in found["link.jpg"]
    assert found["missing"] == "no such file or folder"
    assert ".hidden.jpg" not in found
